//! [`MakeTransport`]: what a client needs of a connector, named.

use super::Transport;
use crate::BoxError;
use std::future::Future;
use tower::Service;

/// A connector of transports for requests `Req`: a tower `Service<Target>`
/// whose response is a [`Transport`], as [`TcpConnector`](super::TcpConnector),
/// [`OnConnect`](super::OnConnect) and, with the `tls` feature,
/// `tls::TlsConnector` are.
///
/// This only names a set of bounds, so that signatures stay short: it is
/// implemented for every type that has them, and cannot be implemented
/// otherwise.
pub trait MakeTransport<Target, Req>:
    Service<Target, Response = Self::Transport, Error = Self::MakeError, Future = Self::MakeFuture>
    + Clone
    + Send
    + 'static
    + sealed::Sealed<Target, Req>
{
    /// The transport it makes.
    type Transport: Transport<Req, Response = Self::Item, Error = Self::TransportError> + Send + 'static;
    /// What the transport yields: the peer's answers.
    type Item: Send + 'static;
    /// What a failed read or write of the transport reports.
    type TransportError: Into<BoxError>;
    /// Why no transport could be made.
    type MakeError: Into<BoxError>;
    /// The future of a transport being made.
    type MakeFuture: Future<Output = Result<Self::Transport, Self::MakeError>> + Send + 'static;
}

impl<M, Target, Req, T, R, E> MakeTransport<Target, Req> for M
where
    M: Service<Target, Response = T> + Clone + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send + 'static,
    T: Transport<Req, Response = R, Error = E> + Send + 'static,
    R: Send + 'static,
    E: Into<BoxError>,
{
    type Transport = T;
    type Item = R;
    type TransportError = E;
    type MakeError = M::Error;
    type MakeFuture = M::Future;
}

mod sealed {
    pub trait Sealed<Target, Req> {}
    impl<M, Target, Req> Sealed<Target, Req> for M {}
}
