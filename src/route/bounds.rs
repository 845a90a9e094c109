//! [`EndpointStack`]: what a [`Router`](super::Router) and an
//! [`Accrual`](super::Accrual) need of the stack of one endpoint, named.
//!
//! It only names a set of bounds, so that the signatures of the router, the
//! accrual, their futures and their batch impls stay readable and alike; it
//! is implemented for every type that has them and cannot be implemented
//! otherwise.

use crate::BoxError;
use tower::Service;

/// The stack of one endpoint for requests `Req`: a `Service` whose errors
/// convert into a [`BoxError`] and whose futures can move between tasks,
/// cheap to clone into a call (or a probe) running on another task.
///
/// Any such `Service` is one; for example a
/// [`Pipeline`](crate::pipeline::Pipeline), a [`Stack`](crate::builder::Stack)
/// or an [`Accrual`](super::Accrual) over either.
pub trait EndpointStack<Req>:
    Service<Req, Error: Into<BoxError>, Future: Send> + Clone + Send + Sync + 'static + sealed::Sealed<Req>
{
}

impl<S, Req> EndpointStack<Req> for S
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
}

mod sealed {
    pub trait Sealed<Req> {}
    impl<S, Req> Sealed<Req> for S {}
}
