//! Errors of the router.

use crate::failure::{Classify, Failure};
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The request was **not sent**: the endpoint it routes to is ejected
/// (it failed too often, see [`HealthConfig`](super::HealthConfig)) and
/// is being probed back. Calls routed to it fail at once with this, naming
/// it; calls to other endpoints are unaffected.
///
/// The [failure rule](crate::failure) sorts it as
/// [`NotSent`](crate::failure::Failure::NotSent).
#[derive(Debug, Clone)]
pub struct Ejected {
    endpoint: Arc<str>,
}

impl Ejected {
    pub(crate) fn new(endpoint: Arc<str>) -> Self {
        Ejected { endpoint }
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Display for Ejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "endpoint {} is ejected after repeated failures (probing it back)",
            self.endpoint
        )
    }
}

impl Error for Ejected {}

impl Classify for Ejected {
    fn failure(&self) -> Option<Failure> {
        Some(Failure::NotSent)
    }

    /// Until a probe brings the endpoint back, every attempt meets the same
    /// refusal.
    fn worth_retrying(&self) -> bool {
        false
    }
}

/// A request routed to an endpoint failed there: the endpoint's name, and
/// the error of its stack as the source (the [failure
/// rule](crate::failure) looks through it). Cheap to clone: the requests of
/// a batch that failed as a whole share one.
#[derive(Debug, Clone)]
pub struct EndpointError {
    endpoint: Arc<str>,
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl EndpointError {
    pub(crate) fn new(endpoint: Arc<str>, source: crate::BoxError) -> Self {
        EndpointError {
            endpoint,
            source: Arc::from(source),
        }
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.source)
    }
}

// By hand: `source` is the endpoint's error itself, so that it can be
// downcast (the `Error` impl of `Arc` would skip to *its* source).
impl Error for EndpointError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// Why a [`Router`](super::Router) could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// It was given no endpoint.
    #[error("no endpoint to route to")]
    NoEndpoints,
    /// Two endpoints have the same name: keys would be placed on one of
    /// them only.
    #[error("endpoint {0} is listed twice")]
    Duplicate(String),
}
