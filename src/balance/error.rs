//! Errors of the balancer.

use crate::failure::{Classify, Failure};

/// What went wrong in a [`Balance`](super::Balance): a call with no
/// endpoint to go to, or a change of its endpoints that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// The balancer has no endpoint: the call was **not sent** (the
    /// [failure rule](crate::failure) says
    /// [`NotSent`](crate::failure::Failure::NotSent), so the retry layer
    /// may try again once an endpoint is added).
    #[error("no endpoint to send the request to")]
    NoEndpoints,
    /// The endpoint chosen was ejected before the call reached its stack
    /// (between the choice and the call): the call was **not sent**, and
    /// unlike a [router](crate::route)'s [`Ejected`](crate::route::Ejected)
    /// it is worth retrying — the retry layer's next attempt chooses again,
    /// among the endpoints that are up.
    #[error("endpoint {0} was ejected as the call reached it")]
    Ejected(String),
    /// An endpoint of this name is there already.
    #[error("endpoint {0} is listed twice")]
    Duplicate(String),
    /// [`BalanceHandle::add`](super::BalanceHandle::add) on a balancer
    /// that cannot make an endpoint from an address (one made with
    /// [`Balance::new`](super::Balance::new): use
    /// [`Balance::insert`](super::Balance::insert) with its stack).
    #[error("this balancer cannot make an endpoint from an address; insert its stack")]
    CannotMake,
}

impl Classify for BalanceError {
    fn failure(&self) -> Option<Failure> {
        match self {
            BalanceError::NoEndpoints | BalanceError::Ejected(_) => Some(Failure::NotSent),
            BalanceError::Duplicate(_) | BalanceError::CannotMake => None,
        }
    }
}
