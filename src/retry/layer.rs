//! [`RetryLayer`]: builds a [`Retry`] around a service.

use super::{Retry, RetryPolicy};
use tower::Layer;

/// Wraps a service in a [`Retry`] with a [`RetryPolicy`]; every service it
/// builds shares the policy's budget and counters.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

impl RetryLayer {
    /// Retries as `policy` says.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer { policy }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry::new(self.policy.clone(), inner)
    }
}
