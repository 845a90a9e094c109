//! The builder's three optional layers — timeout, retry, reconnect — each a
//! setting that is either there (and configured) or not there at all.
//!
//! A setting that is not there adds no type and no cost to the stack: the
//! builder's states are types ([`Duration`] or [`NoTimeout`],
//! [`RetryConfig`] or [`NoRetry`], [`ReconnectConfig`] or [`NoReconnect`]),
//! and each knows the service it wraps around its inner one.

use crate::deadline::Deadline;
use crate::hedge::SharedBudget;
use crate::reconnect::error::Disconnected;
use crate::reconnect::{Reconnect, ReconnectConfig, ReconnectHandle};
use crate::retry::{Retry, RetryBudget, RetryConfig, RetryHandle, RetryPolicy};
use crate::BoxError;
use std::future::Future;
use std::time::Duration;
use tower::{Service, ServiceExt};

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
    /// A retry budget that a hedge under the retry layer can share, if
    /// there is a retry layer.
    #[doc(hidden)]
    fn shared_budget(&self) -> Option<SharedBudget>;
    /// [`wrap`](Self::wrap), with the retry layer drawing from `budget`
    /// (one [`shared_budget`](Self::shared_budget) made) if it is given.
    #[doc(hidden)]
    fn wrap_sharing<S>(
        &self,
        inner: S,
        budget: Option<SharedBudget>,
    ) -> (Self::Service<S>, Option<RetryHandle>);
}

impl RetrySetting for RetryConfig {
    type Service<S> = Retry<S>;
    fn wrap<S>(&self, inner: S) -> (Retry<S>, Option<RetryHandle>) {
        self.wrap_sharing(inner, None)
    }

    fn shared_budget(&self) -> Option<SharedBudget> {
        let budget = RetryBudget::new(self.budget_window, self.min_retries_per_sec, self.retry_ratio);
        Some(SharedBudget::new(budget))
    }

    fn wrap_sharing<S>(&self, inner: S, budget: Option<SharedBudget>) -> (Retry<S>, Option<RetryHandle>) {
        let policy = match budget {
            Some(budget) => RetryPolicy::with_budget(self.clone(), budget),
            None => RetryPolicy::new(self.clone()),
        };
        let handle = policy.handle();
        (Retry::new(policy, inner), Some(handle))
    }
}

impl RetrySetting for NoRetry {
    type Service<S> = S;
    fn wrap<S>(&self, inner: S) -> (S, Option<RetryHandle>) {
        (inner, None)
    }

    fn shared_budget(&self) -> Option<SharedBudget> {
        None
    }

    fn wrap_sharing<S>(&self, inner: S, _: Option<SharedBudget>) -> (S, Option<RetryHandle>) {
        (inner, None)
    }
}

/// What [`ReconnectSetting::connect`] ends with: the connection service and
/// a handle on the reconnect layer if there is one, or why it did not connect.
type Connected<S> = Result<(S, Option<ReconnectHandle>), Disconnected>;

/// The connection's setting: a [`ReconnectConfig`] (a [`Reconnect`] that
/// replaces the connection service — a [`Pipeline`](crate::pipeline::Pipeline)
/// — when it breaks) or [`NoReconnect`] (the bare connection service,
/// broken for good when its connection fails). It works with whatever
/// connector of connection services it is given, and names none. Sealed.
pub trait ReconnectSetting: sealed::Sealed {
    /// The service over connection services `P`.
    type Service<P>;
    #[doc(hidden)]
    fn connect<N, A>(
        &self,
        connector: N,
        target: A,
    ) -> impl Future<Output = Connected<Self::Service<N::Response>>> + Send
    where
        N: Service<A, Error: Into<BoxError>, Future: Send> + Send + 'static,
        N::Response: Clone + Send + Sync + 'static,
        A: Clone + Send + 'static;
}

impl ReconnectSetting for ReconnectConfig {
    type Service<P> = Reconnect<P>;
    async fn connect<N, A>(&self, connector: N, target: A) -> Connected<Reconnect<N::Response>>
    where
        N: Service<A, Error: Into<BoxError>, Future: Send> + Send + 'static,
        N::Response: Clone + Send + Sync + 'static,
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
    async fn connect<N, A>(&self, connector: N, target: A) -> Connected<N::Response>
    where
        N: Service<A, Error: Into<BoxError>, Future: Send> + Send + 'static,
        N::Response: Clone + Send + Sync + 'static,
        A: Clone + Send + 'static,
    {
        connector
            .oneshot(target)
            .await
            .map(|connection| (connection, None))
            .map_err(|error| Disconnected::because(error.into()))
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
