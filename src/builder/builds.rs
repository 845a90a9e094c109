//! [`Builds`]: what a [`ClientBuilder`]'s settings need to connect a stack
//! for a request type, named once.

use super::{Built, ClientBuilder, ReconnectSetting, RetrySetting, TimeoutSetting};
use crate::pipeline::Pipeline;
use crate::reconnect::error::Disconnected;
use crate::reconnect::ReconnectHandle;
use crate::transport::{Codec, MakeTransport, Target};
use std::future::Future;
use tower::Layer;

/// A builder whose codec, connector, settings and layers can build a stack
/// for requests `Req`: the bounds of [`ClientBuilder::connect`] and
/// [`ClientBuilder::connect_pinned`], written once. Implemented for every
/// [`ClientBuilder`] that meets them; it cannot be implemented otherwise.
///
/// They are: the codec encodes `Req` ([`Codec`]), the connector makes
/// transports of that codec ([`MakeTransport`]), and your layers wrap the
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

impl<C, L, T, R, K, M, Req> Builds<Req> for ClientBuilder<C, L, T, R, K, M>
where
    C: Codec<Req>,
    M: MakeTransport<Target, Req, Item = C::Response>,
    Req: Send + 'static,
    T: TimeoutSetting,
    R: RetrySetting,
    K: ReconnectSetting + Sync,
    L: Layer<K::Service<Pipeline<Req, C::Response>>>,
{
    type Stack = Built<C, Req, L, T, R, K>;
    type Connection = K::Service<Pipeline<Req, C::Response>>;

    fn connection(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<(Self::Connection, Option<ReconnectHandle>), Disconnected>> + Send {
        self.reconnect.connect(self.make_pipeline(), target)
    }

    fn finish(self, connection: (Self::Connection, Option<ReconnectHandle>)) -> Self::Stack {
        self.assemble(connection)
    }
}

mod sealed {
    pub trait Sealed<Req> {}
    impl<C, L, T, R, K, M, Req> Sealed<Req> for super::ClientBuilder<C, L, T, R, K, M> {}
}
