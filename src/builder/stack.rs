//! [`Stack`]: the stack a [`ClientBuilder`](super::ClientBuilder) built, with
//! handles on its layers' counters.

use crate::balance::BalanceHandle;
use crate::hedge::{HedgeHandle, HedgeStats};
use crate::reconnect::{ReconnectHandle, ReconnectStats};
use crate::retry::{RetryHandle, RetryStats};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// A client stack built by [`ClientBuilder`](super::ClientBuilder): a
/// `Service` (delegating to the stack `S`) that also reads the reconnect and
/// retry counters.
///
/// Cheap to clone; clones share the connection, the reconnect task, the retry
/// budget and the counters.
#[derive(Clone)]
pub struct Stack<S> {
    service: S,
    /// One reference count per clone, however many handles.
    handles: Arc<Handles>,
}

struct Handles {
    reconnect: Option<ReconnectHandle>,
    retry: Option<RetryHandle>,
    balance: Option<BalanceHandle>,
    hedge: Option<HedgeHandle>,
}

impl<S> Stack<S> {
    pub(super) fn new(service: S, reconnect: Option<ReconnectHandle>, retry: Option<RetryHandle>) -> Self {
        Stack {
            service,
            handles: Arc::new(Handles {
                reconnect,
                retry,
                balance: None,
                hedge: None,
            }),
        }
    }

    /// This stack, with handles on its balancer and hedge (before it is
    /// cloned).
    pub(super) fn with_balance(mut self, balance: BalanceHandle, hedge: Option<HedgeHandle>) -> Self {
        if let Some(handles) = Arc::get_mut(&mut self.handles) {
            handles.balance = Some(balance);
            handles.hedge = hedge;
        }
        self
    }

    /// A handle on the balancer's endpoints — their state and load; adding
    /// and removing them — if the stack is a
    /// [balanced](super::ClientBuilder::balance) one.
    pub fn balance_handle(&self) -> Option<&BalanceHandle> {
        self.handles.balance.as_ref()
    }

    /// What the hedge layer has done (all zero without one).
    pub fn hedge_stats(&self) -> HedgeStats {
        self.handles
            .hedge
            .as_ref()
            .map(HedgeHandle::stats)
            .unwrap_or_default()
    }

    /// The same stack, its service wrapped by `layer` (outermost), with the
    /// same handles: how a protocol client adds a layer above the deadline,
    /// such as a [`SessionLayer`](crate::session::SessionLayer).
    pub fn layer<L: tower::Layer<S>>(self, layer: &L) -> Stack<L::Service> {
        Stack {
            service: layer.layer(self.service),
            handles: self.handles,
        }
    }

    /// What the reconnect layer has done (all zero without one).
    pub fn reconnect_stats(&self) -> ReconnectStats {
        self.reconnect_handle()
            .map(ReconnectHandle::stats)
            .unwrap_or_default()
    }

    /// What the retry layer has done (all zero without one).
    pub fn retry_stats(&self) -> RetryStats {
        self.retry_handle().map(RetryHandle::stats).unwrap_or_default()
    }

    /// A handle on the reconnect layer's counters and state, if the stack
    /// has one.
    pub fn reconnect_handle(&self) -> Option<&ReconnectHandle> {
        self.handles.reconnect.as_ref()
    }

    /// A handle on the retry layer's counters, if the stack has one.
    pub fn retry_handle(&self) -> Option<&RetryHandle> {
        self.handles.retry.as_ref()
    }

    /// The stack.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// The stack, without the handles.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S> fmt::Debug for Stack<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("reconnect", &self.reconnect_handle().map(ReconnectHandle::stats))
            .field("retry", &self.retry_handle().map(RetryHandle::stats))
            .field("hedge", &self.handles.hedge.as_ref().map(HedgeHandle::stats))
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Stack<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> S::Future {
        self.service.call(request)
    }
}
