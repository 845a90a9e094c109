//! [`Multiplexer`]: the multiplexer a [`ClientBuilder`](super::ClientBuilder)
//! puts over each connection, named with the bounds it needs.

use crate::pipeline::{MakeMultiplexer, Spawn};
use crate::transport::Target;
use crate::BoxError;
use tower::Service;

/// The multiplexer over each connection of a built stack, given by its
/// builder: a [`pipeline::Builder`](crate::pipeline::Builder) (answers in
/// order, the default) or a [`multiplex::Builder`](crate::multiplex::Builder)
/// (answers by tag). For the transports a connector `M` makes, it names the
/// connection service it starts on each and the connector of those
/// services that the reconnect layer, the pool and the router call.
///
/// This only names a set of bounds, so that signatures stay short: it is
/// implemented for every builder that can [`Spawn`] a service of `Req`s on
/// `M`'s transports, and cannot be implemented otherwise.
pub trait Multiplexer<M, Req>: Clone + Send + Sync + 'static + sealed::Sealed<M, Req> {
    /// The service over one connection: a
    /// [`Pipeline`](crate::pipeline::Pipeline) or a
    /// [`Multiplex`](crate::multiplex::Multiplex).
    type Connection: Service<Req> + Clone + Send + Sync + 'static;
    /// Makes a connection service over each transport `M` makes.
    type Connector: Service<Target, Response = Self::Connection, Error: Into<BoxError>, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static;

    /// The connector of connection services over `transports`.
    fn connector(&self, transports: M) -> Self::Connector;
}

impl<M, Req, B> Multiplexer<M, Req> for B
where
    M: Service<Target, Error: Into<BoxError>, Future: Send + 'static> + Clone + Send + Sync + 'static,
    B: Spawn<M::Response, Req, Service: Service<Req> + Clone + Send + Sync + 'static> + Send + Sync + 'static,
    Req: 'static,
{
    type Connection = B::Service;
    type Connector = MakeMultiplexer<M, B, Req>;

    fn connector(&self, transports: M) -> Self::Connector {
        MakeMultiplexer::new(transports, self.clone())
    }
}

mod sealed {
    pub trait Sealed<M, Req> {}
    impl<M, Req, B> Sealed<M, Req> for B {}
}
