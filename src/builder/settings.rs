//! The builder's three optional layers — timeout, retry, reconnect — each a
//! setting that is either there (and configured) or not there at all.
//!
//! A setting that is not there adds no type and no cost to the stack: the
//! builder's states are types ([`Duration`] or [`NoTimeout`],
//! [`RetryConfig`] or [`NoRetry`], [`ReconnectConfig`] or [`NoReconnect`]),
//! and each knows the service it wraps around its inner one.

use crate::deadline::Deadline;
use crate::pipeline::{MakePipeline, Pipeline};
use crate::reconnect::error::Disconnected;
use crate::reconnect::{Reconnect, ReconnectConfig, ReconnectHandle};
use crate::retry::{Retry, RetryConfig, RetryHandle, RetryPolicy};
use crate::transport::MakeTransport;
use crate::BoxError;
use std::future::Future;
use std::time::Duration;
use tower::Service;

/// The builder's state for "no deadline per request": see
/// [`ClientBuilder::no_timeout`](super::ClientBuilder::no_timeout).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTimeout;

/// The builder's state for "no retry layer": see
/// [`ClientBuilder::no_retry`](super::ClientBuilder::no_retry).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

/// The builder's state for "one connection, never replaced": see
/// [`ClientBuilder::no_reconnect`](super::ClientBuilder::no_reconnect).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReconnect;

/// The outermost layer's setting: a [`Duration`] (a [`Deadline`]: one
/// deadline per request, kept by the pipeline's timer) or [`NoTimeout`].
/// Sealed.
pub trait TimeoutSetting: sealed::Sealed {
    /// The service this setting makes around `S`.
    type Service<S>;
    #[doc(hidden)]
    fn wrap<S>(&self, inner: S) -> Self::Service<S>;
}

impl TimeoutSetting for Duration {
    type Service<S> = Deadline<S>;
    fn wrap<S>(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, *self)
    }
}

impl TimeoutSetting for NoTimeout {
    type Service<S> = S;
    fn wrap<S>(&self, inner: S) -> S {
        inner
    }
}

/// The retry layer's setting: a [`RetryConfig`] (a [`Retry`] with a
/// [`RetryPolicy`]) or [`NoRetry`]. Sealed.
pub trait RetrySetting: sealed::Sealed {
    /// The service this setting makes around `S`.
    type Service<S>;
    #[doc(hidden)]
    fn wrap<S>(&self, inner: S) -> (Self::Service<S>, Option<RetryHandle>);
}

impl RetrySetting for RetryConfig {
    type Service<S> = Retry<S>;
    fn wrap<S>(&self, inner: S) -> (Retry<S>, Option<RetryHandle>) {
        let policy = RetryPolicy::new(self.clone());
        let handle = policy.handle();
        (Retry::new(policy, inner), Some(handle))
    }
}

impl RetrySetting for NoRetry {
    type Service<S> = S;
    fn wrap<S>(&self, inner: S) -> (S, Option<RetryHandle>) {
        (inner, None)
    }
}

/// What [`ReconnectSetting::connect`] ends with: the connection service and
/// a handle on the reconnect layer if there is one, or why it did not connect.
type Connected<S> = Result<(S, Option<ReconnectHandle>), Disconnected>;

/// The connection's setting: a [`ReconnectConfig`] (a [`Reconnect`] that
/// replaces the [`Pipeline`] when it breaks) or [`NoReconnect`] (the bare
/// `Pipeline`, broken for good when its connection fails). Sealed.
pub trait ReconnectSetting: sealed::Sealed {
    /// The connection service over pipelines `P`.
    type Service<P>;
    #[doc(hidden)]
    fn connect<M, Req, A>(
        &self,
        connector: MakePipeline<M, Req>,
        target: A,
    ) -> impl Future<Output = Connected<Self::Service<Pipeline<Req, M::Item>>>> + Send
    where
        M: MakeTransport<A, Req>,
        Req: Send + 'static,
        A: Clone + Send + 'static;
}

impl ReconnectSetting for ReconnectConfig {
    type Service<P> = Reconnect<P>;
    async fn connect<M, Req, A>(
        &self,
        connector: MakePipeline<M, Req>,
        target: A,
    ) -> Connected<Reconnect<Pipeline<Req, M::Item>>>
    where
        M: MakeTransport<A, Req>,
        Req: Send + 'static,
        A: Clone + Send + 'static,
    {
        let reconnect = Reconnect::new(connector, target, self.clone());
        reconnect.wait_connected().await?;
        let handle = reconnect.handle();
        Ok((reconnect, Some(handle)))
    }
}

impl ReconnectSetting for NoReconnect {
    type Service<P> = P;
    async fn connect<M, Req, A>(
        &self,
        mut connector: MakePipeline<M, Req>,
        target: A,
    ) -> Connected<Pipeline<Req, M::Item>>
    where
        M: MakeTransport<A, Req>,
        Req: Send + 'static,
        A: Clone + Send + 'static,
    {
        let ready: Result<(), BoxError> = std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Into::into);
        let connected = match ready {
            Ok(()) => connector.call(target).await.map_err(Into::into),
            Err(error) => Err(error),
        };
        connected
            .map(|pipeline| (pipeline, None))
            .map_err(Disconnected::because)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::time::Duration {}
    impl Sealed for super::NoTimeout {}
    impl Sealed for crate::retry::RetryConfig {}
    impl Sealed for super::NoRetry {}
    impl Sealed for crate::reconnect::ReconnectConfig {}
    impl Sealed for super::NoReconnect {}
}
