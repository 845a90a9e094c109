//! What the retry policy needs to know about a protocol and an error.

use crate::pipeline;
use crate::reconnect::error::Disconnected;
use std::error::Error;

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

/// Whether a failed request may have reached the peer, as far as the
/// framework's errors tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request was never written: there was no live connection
    /// ([`Disconnected`]), or the connection failed while the request was
    /// still queued ([`pipeline::Error::NotSent`]). Retrying cannot apply it
    /// twice.
    NotSent,
    /// The connection failed after the request was written
    /// ([`pipeline::Error`]): the peer may have received and applied it and
    /// the answer been lost.
    MaybeSent,
}

impl Delivery {
    /// Classifies an error from a stack over [`Reconnect`](crate::reconnect::Reconnect)
    /// and [`Pipeline`](crate::pipeline::Pipeline), looking through wrappers
    /// (such as tower's `Buffer`) by following [`Error::source`].
    ///
    /// `None` for anything that is not a lost connection, because retrying
    /// would not help: a timeout, a load-shed refusal, and a *protocol*
    /// error — a connection that failed because the peer sent bytes the
    /// codec rejects, or an answer nobody asked for. A failed connection
    /// counts as lost when the peer closed it or an [`std::io::Error`]
    /// appears in its error's sources.
    pub fn of(error: &(dyn Error + 'static)) -> Option<Delivery> {
        let mut next = Some(error);
        while let Some(error) = next {
            if error.is::<Disconnected>() {
                return Some(Delivery::NotSent);
            }
            if let Some(error) = error.downcast_ref::<pipeline::Error>() {
                if matches!(error, pipeline::Error::NotSent(_)) {
                    return Some(Delivery::NotSent);
                }
                return connection_lost(error).then_some(Delivery::MaybeSent);
            }
            next = error.source();
        }
        None
    }
}

/// `true` if the connection failed for a reason a new connection may not
/// share: closed by the peer, or an I/O error. A codec error without an I/O
/// error under it means the peer speaks something else.
fn connection_lost(error: &pipeline::Error) -> bool {
    match error {
        pipeline::Error::Closed => true,
        pipeline::Error::UnexpectedResponse => false,
        pipeline::Error::NotSent(cause) => connection_lost(cause),
        pipeline::Error::Transport(source) => {
            let mut next: Option<&(dyn Error + 'static)> = Some(&**source);
            while let Some(error) = next {
                if error.is::<std::io::Error>() {
                    return true;
                }
                next = error.source();
            }
            false
        }
    }
}
