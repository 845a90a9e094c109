//! [`MakeMultiplex`]: a connector of tagged multiplexers, from a connector
//! of transports — the pipeline's connector with this room's builder.

use super::client::{Builder, Multiplex};
use super::protocol::{Outgoing, Tagged};
use crate::pipeline::{MakeMultiplexer, Spawn, SpawnFuture};
use crate::transport::Transport;
use crate::BoxError;

/// Puts a [`Multiplex`] on every transport a connector makes: the
/// connector the [reconnect](crate::reconnect) layer needs, as
/// [`MakePipeline`](crate::pipeline::MakePipeline) is for pipelines (both
/// are a [`MakeMultiplexer`]).
///
/// `M` is any `Service<Target>` whose transports carry
/// [`Outgoing<Req>`](Outgoing) and read [`Tagged`] responses; `Req` is the
/// request type the multiplexers send.
pub type MakeMultiplex<M, Req> = MakeMultiplexer<M, Builder, Req>;

/// The future of [`MakeMultiplex`]: connects, then spawns the multiplexer's
/// connection task.
pub type MakeFuture<F, Req> = SpawnFuture<F, Builder, Req>;

impl<T, Req> Spawn<T, Req> for Builder
where
    T: Transport<Outgoing<Req>> + Send + 'static,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    T::Response: Tagged + Send + 'static,
    Req: Send + 'static,
{
    type Service = Multiplex<Req, T::Response>;

    fn spawn_on(self, transport: T) -> Self::Service {
        self.spawn(transport)
    }
}
