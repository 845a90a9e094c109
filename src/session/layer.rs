//! [`SessionLayer`]: builds [`Session`]s.

use super::{ClientSession, Session};
use tower::Layer;

/// Builds [`Session`]s over one [`ClientSession`].
#[derive(Debug, Clone)]
pub struct SessionLayer {
    session: ClientSession,
}

impl SessionLayer {
    /// A layer that stamps requests in `session`.
    pub fn new(session: ClientSession) -> Self {
        SessionLayer { session }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Session<S>;

    fn layer(&self, inner: S) -> Session<S> {
        Session::new(inner, self.session.clone())
    }
}
