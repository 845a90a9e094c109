//! What the retry policy needs to know about a protocol: the two questions
//! a protocol answers for its requests and responses.

/// A request that knows whether sending it twice is the same as sending it
/// once.
///
/// The [`RetryPolicy`](super::RetryPolicy) retries a request that **may have
/// been sent** (its connection broke after it was queued) only if it is
/// idempotent. A request that was certainly **not sent** is retried whatever
/// this says.
///
/// Decide per request, not per protocol: Redis `SET` is idempotent, `INCR`
/// is not. When in doubt, answer `false`: a wrong `true` can apply a write
/// twice, a wrong `false` only turns a lost connection into an error.
pub trait Idempotent {
    /// `true` if applying this request twice leaves the peer as applying it
    /// once would.
    fn is_idempotent(&self) -> bool;
}

/// A response that may ask for the request to be tried again.
pub trait RetryableResponse {
    /// `true` if the peer **refused** the request without acting on it and
    /// said it may succeed later (KV `BUSY`, Redis `-LOADING`). Such a
    /// request is retried whatever [`Idempotent`] says, since nothing was
    /// applied. Answer `false` for any response after which the request may
    /// have had an effect.
    fn is_retryable(&self) -> bool;
}
