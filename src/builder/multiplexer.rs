//! [`Multiplexer`]: the multiplexer a [`ClientBuilder`](super::ClientBuilder)
//! puts over each connection, named with the bounds it needs.

use crate::pipeline::{self, MakePipeline, Pipeline};
use crate::transport::{MakeTransport, Target};
use crate::BoxError;
use tower::Service;

/// The multiplexer over each connection of a built stack, configured by
/// its builder: [`pipeline::Builder`] (answers in order, the default) or
/// [`multiplex::Builder`](crate::multiplex::Builder) (answers by tag). For
/// the transports a connector `M` makes for requests `Req`, it names the
/// connection service it makes and the connector of those services that
/// the reconnect layer, the pool and the router call.
///
/// Implemented by the two multiplexer builders of this crate; sealed.
pub trait Multiplexer<M, Req>: Clone + Send + Sync + 'static + sealed::Sealed {
    /// The service over one connection: a [`Pipeline`] or a
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

impl<M, Req> Multiplexer<M, Req> for pipeline::Builder
where
    M: MakeTransport<Target, Req> + Sync,
    Req: Send + 'static,
{
    type Connection = Pipeline<Req, M::Item>;
    type Connector = MakePipeline<M, Req>;

    fn connector(&self, transports: M) -> MakePipeline<M, Req> {
        MakePipeline::new(transports, self.clone())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::pipeline::Builder {}
}
