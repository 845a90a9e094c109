//! [`DeadlineLayer`]: builds a [`Deadline`] around a service.

use super::Deadline;
use std::time::Duration;
use tower::Layer;

/// Gives every request of the wrapped service a deadline, `timeout` after
/// its call.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    /// Requests end with [`Elapsed`](super::Elapsed) `timeout` after their call.
    pub fn new(timeout: Duration) -> Self {
        DeadlineLayer { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, self.timeout)
    }
}
