//! What [`Server::serve`](super::Server::serve) needs of a codec and of a
//! service maker, named: [`ServeCodec`] and [`MakeConnectionService`].
//!
//! Both only name sets of bounds, so that the server's signature stays
//! readable; each is implemented for every type that has them and cannot be
//! implemented otherwise.

use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use tokio_util::codec::{Decoder, Encoder};
use tower::{MakeService, Service};

/// A codec the server frames each connection with: it decodes
/// [`Request`](ServeCodec::Request)s and encodes `Resp`.
pub trait ServeCodec<Resp>:
    Decoder<Item = Self::Request, Error = Self::DecodeError>
    + Encoder<Resp, Error = Self::EncodeError>
    + Clone
    + Send
    + 'static
    + sealed::Sealed<Resp>
{
    /// What the codec decodes: the peer's requests.
    type Request: Send + 'static;
    /// Why a frame could not be decoded (logged; the connection then
    /// answers what it has and closes).
    type DecodeError: fmt::Display + From<io::Error> + Send;
    /// Why a response could not be encoded (the connection ends with it).
    type EncodeError: Into<BoxError> + From<io::Error> + Send;
}

impl<C, Resp> ServeCodec<Resp> for C
where
    C: Decoder + Encoder<Resp> + Clone + Send + 'static,
    C::Item: Send + 'static,
    <C as Decoder>::Error: fmt::Display + Send,
    <C as Encoder<Resp>>::Error: Into<BoxError> + Send,
{
    type Request = C::Item;
    type DecodeError = <C as Decoder>::Error;
    type EncodeError = <C as Encoder<Resp>>::Error;
}

/// Makes the service of each connection from its peer's address: a tower
/// [`MakeService`] whose services and futures can run on a connection's
/// task. Use [`tower::make::Shared`] to serve clones of one service.
pub trait MakeConnectionService<Req>: sealed::Sealed<Req> {
    /// What the services answer.
    type Response: Send + 'static;
    /// Why a service failed a request (the connection then closes).
    type Error: Into<BoxError> + Send;
    /// The service of one connection.
    type Service: Service<Req, Response = Self::Response, Error = Self::Error, Future: Send> + Send + 'static;
    /// Why no service could be made (the connection is dropped).
    type MakeError: Into<BoxError>;
    /// The future of a service being made.
    type Future: Future<Output = Result<Self::Service, Self::MakeError>> + Send;

    /// Whether a service can be made now; see [`MakeService::poll_ready`].
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::MakeError>>;

    /// Makes the service for a connection from `peer`.
    fn make_service(&mut self, peer: SocketAddr) -> Self::Future;
}

impl<M, Req> MakeConnectionService<Req> for M
where
    M: MakeService<SocketAddr, Req>,
    M::Response: Send + 'static,
    M::Error: Into<BoxError> + Send,
    M::Service: Send + 'static,
    <M::Service as Service<Req>>::Future: Send,
    M::MakeError: Into<BoxError>,
    M::Future: Send,
{
    type Response = M::Response;
    type Error = M::Error;
    type Service = M::Service;
    type MakeError = M::MakeError;
    type Future = M::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::MakeError>> {
        MakeService::poll_ready(self, cx)
    }

    fn make_service(&mut self, peer: SocketAddr) -> M::Future {
        MakeService::make_service(self, peer)
    }
}

mod sealed {
    pub trait Sealed<T> {}
    impl<C, T> Sealed<T> for C {}
}
