//! [`Builds`]: what a [`ClientBuilder`]'s settings need to connect a stack
//! for a request type, named once.

use super::{Built, ClientBuilder, Multiplexer, ReconnectSetting, RetrySetting, TimeoutSetting};
use crate::reconnect::error::Disconnected;
use crate::reconnect::ReconnectHandle;
use crate::transport::Target;
use std::future::Future;
use tower::Layer;

/// A builder whose codec, connector, settings and layers can build a stack
/// for requests `Req`: the bounds of [`ClientBuilder::connect`] and
/// [`ClientBuilder::connect_pinned`], written once. Implemented for every
/// [`ClientBuilder`] that meets them; it cannot be implemented otherwise.
///
/// They are: the multiplexer `X` works over the transports the connector
/// `M` makes for `Req` ([`Multiplexer`]: for a pipeline, `M`'s transports
/// take `Req`; for a tagged multiplexer, they take
/// [`Outgoing<Req>`](crate::multiplex::Outgoing)), and your layers wrap the
/// connection service the reconnect setting puts at the bottom.
pub trait Builds<Req>: sealed::Sealed<Req> {
    /// The stack built: the builder's [`Built`].
    type Stack;
    /// The service at the bottom of the stack: a reconnecting pipeline, or
    /// the bare pipeline.
    #[doc(hidden)]
    type Connection;

    /// Makes the bottom of the stack, connected to `target`.
    #[doc(hidden)]
    fn connection(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<(Self::Connection, Option<ReconnectHandle>), Disconnected>> + Send;

    /// Stacks the layers over `connection`.
    #[doc(hidden)]
    fn finish(self, connection: (Self::Connection, Option<ReconnectHandle>)) -> Self::Stack;
}

impl<C, L, T, R, K, M, X, Req> Builds<Req> for ClientBuilder<C, L, T, R, K, M, X>
where
    X: Multiplexer<M, Req>,
    M: Clone + Sync,
    T: TimeoutSetting,
    R: RetrySetting,
    K: ReconnectSetting + Sync,
    L: Layer<K::Service<X::Connection>>,
    C: Sync,
{
    type Stack = Built<Req, L, T, R, K, M, X>;
    type Connection = K::Service<X::Connection>;

    fn connection(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<(Self::Connection, Option<ReconnectHandle>), Disconnected>> + Send {
        self.reconnect.connect(self.connections(), target)
    }

    fn finish(self, connection: (Self::Connection, Option<ReconnectHandle>)) -> Self::Stack {
        self.assemble(connection)
    }
}

mod sealed {
    pub trait Sealed<Req> {}
    impl<C, L, T, R, K, M, X, Req> Sealed<Req> for super::ClientBuilder<C, L, T, R, K, M, X> {}
}
