//! The pipeline's ping: a request of the caller's protocol, made by a
//! function given to [`Builder::keepalive`](super::Builder::keepalive).
//!
//! The pipeline writes plain requests, so it cannot make a ping itself: the
//! builder carries the setting as a type parameter — [`NoPing`] by default,
//! [`Ping<Req>`] once a ping is given — and [`Pinger<Req>`] is what the
//! builder's `build` asks of it.

use std::fmt;

/// The default: no ping, and so no keepalive.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPing;

/// A ping made by a function: the request the connection task writes when
/// the connection has been silent for the keepalive interval.
pub struct Ping<Req> {
    make: fn() -> Req,
}

impl<Req> Ping<Req> {
    pub(super) fn new(make: fn() -> Req) -> Self {
        Ping { make }
    }
}

impl<Req> Clone for Ping<Req> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req> Copy for Ping<Req> {}

impl<Req> fmt::Debug for Ping<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ping").finish_non_exhaustive()
    }
}

/// A pipeline's ping setting for requests of type `Req`: implemented by
/// [`NoPing`] for every request type and by [`Ping<Req>`] for its own.
pub trait Pinger<Req>: Clone + fmt::Debug + Send + Sync + 'static {
    /// The function that makes a ping, if there is one.
    fn ping(&self) -> Option<fn() -> Req>;
}

impl<Req> Pinger<Req> for NoPing {
    fn ping(&self) -> Option<fn() -> Req> {
        None
    }
}

impl<Req: 'static> Pinger<Req> for Ping<Req> {
    fn ping(&self) -> Option<fn() -> Req> {
        Some(self.make)
    }
}
