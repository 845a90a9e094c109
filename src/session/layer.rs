//! [`SessionLayer`]: builds [`Session`]s.

use super::{ClientSession, Session};
use std::time::Duration;
use tower::Layer;

/// How long a deduplicated call waits for a session number by default: the
/// [`ClientBuilder`](crate::builder::ClientBuilder)'s default deadline.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

/// Builds [`Session`]s over one [`ClientSession`].
#[derive(Debug, Clone)]
pub struct SessionLayer {
    session: ClientSession,
    max_wait: Duration,
}

impl SessionLayer {
    /// A layer that stamps requests in `session`; a call waits at most
    /// [`DEFAULT_MAX_WAIT`] for a number.
    pub fn new(session: ClientSession) -> Self {
        SessionLayer {
            session,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }

    /// How long a deduplicated call waits for a free number before it
    /// fails with [`NoRoom`](super::NoRoom), unsent: give it the stack's
    /// deadline, since the layer sits above the deadline layer.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Session<S>;

    fn layer(&self, inner: S) -> Session<S> {
        Session::new(inner, self.session.clone()).with_max_wait(self.max_wait)
    }
}
