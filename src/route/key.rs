//! What the router needs to know about a protocol: the key a request is
//! routed by, and the request that probes an endpoint.

/// A request that names the key it is routed by.
///
/// The [`Router`](super::Router) sends a request with a key to the endpoint
/// the key hashes to, always the same one for the same key and endpoints;
/// a request without one (a liveness check, an authentication) goes to any
/// endpoint that is not ejected. Like [`Idempotent`](crate::retry::Idempotent),
/// the protocol implements it for its request type.
pub trait RouteKey {
    /// The bytes that place this request, or `None` if any endpoint may
    /// answer it.
    fn route_key(&self) -> Option<&[u8]>;
}

/// A request type that can check whether an endpoint answers.
///
/// An [ejected](super) endpoint is sent [`Probe::probe`] after a backoff;
/// any answer (an `Ok` from the endpoint's stack, whatever it says) brings
/// it back. A liveness check that changes nothing: `PING`, for example.
pub trait Probe {
    /// The request sent to probe an endpoint.
    fn probe() -> Self;
}
