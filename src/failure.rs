//! The failure vocabulary of a client stack: what became of a request that
//! failed, decided by one rule.
//!
//! Layers box their errors at the tower boundary ([`BoxError`](crate::BoxError)), as tower's
//! own middleware does, so whoever sits above a stack — a typed client, the
//! [retry](crate::retry) layer, your code — has to look through a chain of
//! sources to learn what happened. [`Failure::of`] is that look, made once
//! for everyone: the typed clients map its answer onto their own error
//! variants, and the retry layer asks [`Failure::delivery`] whether a request
//! may have reached the peer. The two can therefore never disagree.
//!
//! # The rule
//!
//! Following [`Error::source`] from the outermost error inward, the first
//! error the framework knows decides. Each layer says what its own errors
//! mean, beside their definition; this module names no layer, and this
//! table is what they say:
//!
//! | error found | [`Failure`] | [`Delivery`] |
//! | --- | --- | --- |
//! | [`deadline::Elapsed`](crate::deadline::Elapsed), or tower's timeout `Elapsed` | [`TimedOut`](Failure::TimedOut) | — (not retried) |
//! | [`pipeline::Error::TimedOut`](crate::pipeline::Error::TimedOut) (the deadline passed in the pipeline) | [`TimedOut`](Failure::TimedOut) | — |
//! | [`transport::HandshakeError::Rejected`](crate::transport::HandshakeError::Rejected), also as the cause of a `Disconnected` | [`Rejected`](Failure::Rejected) | — (not retried) |
//! | [`transport::HandshakeError::Failed`](crate::transport::HandshakeError::Failed) | what its source says | |
//! | [`retry::MaybeApplied`](crate::retry::MaybeApplied) (retries gave up; an earlier attempt may have been applied) | [`Connection`](Failure::Connection) | [`MaybeSent`](Delivery::MaybeSent) |
//! | [`reconnect::error::Disconnected`](crate::reconnect::error::Disconnected) | [`NotSent`](Failure::NotSent) | [`NotSent`](Delivery::NotSent) |
//! | [`route::Ejected`](crate::route::Ejected) (the request's endpoint is ejected) | [`NotSent`](Failure::NotSent) | [`NotSent`](Delivery::NotSent), but not retried: until a probe brings the endpoint back every attempt meets the same refusal |
//! | [`balance::BalanceError`](crate::balance::BalanceError) `NoEndpoints` (a balancer had none) or `Ejected` (the endpoint chosen was ejected as the call reached it) | [`NotSent`](Failure::NotSent) | [`NotSent`](Delivery::NotSent): the next attempt chooses again |
//! | [`pipeline::Error::NotSent`](crate::pipeline::Error::NotSent) | [`NotSent`](Failure::NotSent) | [`NotSent`](Delivery::NotSent) |
//! | [`pipeline::Error::Closed`](crate::pipeline::Error::Closed) | [`Connection`](Failure::Connection) | [`MaybeSent`](Delivery::MaybeSent) |
//! | [`pipeline::Error::UnexpectedResponse`](crate::pipeline::Error::UnexpectedResponse) | [`Protocol`](Failure::Protocol) | — |
//! | [`pipeline::Error::Transport`](crate::pipeline::Error::Transport) with an [`std::io::Error`] among its sources | [`Connection`](Failure::Connection) | [`MaybeSent`](Delivery::MaybeSent) |
//! | [`pipeline::Error::Transport`](crate::pipeline::Error::Transport) without one (the codec rejected the peer's bytes) | [`Protocol`](Failure::Protocol) | — |
//! | anything else (a layer of yours, tower's `LoadShed`, ...) | [`Other`](Failure::Other) | — |
//!
//! A codec's error type therefore tells an I/O failure from a protocol
//! violation by carrying the [`std::io::Error`] as a source (or being one),
//! as a `thiserror` variant `Io(#[from] io::Error)` does.
//!
//! ```
//! use wirestack::failure::{Delivery, Failure};
//!
//! let lost = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
//! // A bare I/O error is not one the framework made: it is "other".
//! assert_eq!(Failure::of(&lost), Failure::Other);
//! assert_eq!(Failure::Other.delivery(), None);
//! assert_eq!(Failure::NotSent.delivery(), Some(Delivery::NotSent));
//! assert_eq!(Failure::Connection.delivery(), Some(Delivery::MaybeSent));
//! ```

use std::error::Error;

/// What became of a request that failed somewhere in a client stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The request's deadline passed (the [`Deadline`](crate::deadline::Deadline)
    /// layer, or tower's `Timeout`); it may or may not have been applied.
    TimedOut,
    /// The request was not sent: there was no connection, or it failed
    /// while the request was still queued. Nothing reached the peer.
    NotSent,
    /// The connection failed after the request was written (closed by the
    /// peer, or an I/O error); it may have been applied.
    Connection,
    /// The peer broke the protocol (bytes the codec rejects, or an answer
    /// nobody asked for); the connection was dropped. The request may have
    /// been applied.
    Protocol,
    /// The peer refused the connection's on-connect handshake (a wrong
    /// credential, see
    /// [`HandshakeError::Rejected`](crate::transport::HandshakeError::Rejected)):
    /// the request was not sent, and sending it again on a new connection
    /// would meet the same refusal, so it is never retried.
    Rejected,
    /// An error no framework layer made: a layer of yours, or one of
    /// tower's (such as `LoadShed`'s `Overloaded`). The framework cannot
    /// tell whether the request was sent.
    Other,
}

/// Whether a failed request may have reached the peer: what the
/// [retry](crate::retry) layer needs to know before it sends it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request was never written: there was no live connection, or the
    /// connection failed while the request was still queued. Retrying cannot
    /// apply it twice.
    NotSent,
    /// The connection was lost after the request was written: the peer may
    /// have received and applied it and the answer been lost.
    MaybeSent,
}

/// What a framework error says about the request it failed: each layer's
/// error implements it beside its definition, and the crate root lists
/// those errors ([`crate::KNOWN_ERRORS`]) — so this module names no layer.
pub(crate) trait Classify: Error + 'static {
    /// What became of the request; `None` when this error only wraps the
    /// one that decides (its source).
    fn failure(&self) -> Option<Failure>;

    /// `false` when sending the request again cannot help although it was
    /// not sent (its endpoint is ejected: every attempt meets the same
    /// refusal until a probe brings it back).
    fn worth_retrying(&self) -> bool {
        true
    }
}

/// One error type the rule knows: a downcast to it, and what it says.
#[derive(Clone, Copy)]
pub(crate) struct Known(fn(&(dyn Error + 'static)) -> Option<Verdict>);

/// What a known error said.
#[derive(Clone, Copy)]
struct Verdict {
    failure: Failure,
    worth_retrying: bool,
}

impl Known {
    /// The rule knows errors of type `E`.
    pub(crate) const fn of<E: Classify>() -> Known {
        fn verdict<E: Classify>(error: &(dyn Error + 'static)) -> Option<Verdict> {
            let error = error.downcast_ref::<E>()?;
            Some(Verdict {
                failure: error.failure()?,
                worth_retrying: error.worth_retrying(),
            })
        }
        Known(verdict::<E>)
    }
}

/// The first known error in `error`'s chain of sources, and what it says.
fn verdict(error: &(dyn Error + 'static)) -> Option<Verdict> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(verdict) = crate::KNOWN_ERRORS.iter().find_map(|known| (known.0)(error)) {
            return Some(verdict);
        }
        next = error.source();
    }
    None
}

impl Failure {
    /// Sorts `error` by [the rule](self): the first error in its chain of
    /// sources that the framework knows decides.
    pub fn of(error: &(dyn Error + 'static)) -> Failure {
        verdict(error).map_or(Failure::Other, |verdict| verdict.failure)
    }

    /// Every kind, in the order declared.
    pub const ALL: [Failure; 6] = [
        Failure::TimedOut,
        Failure::NotSent,
        Failure::Connection,
        Failure::Protocol,
        Failure::Rejected,
        Failure::Other,
    ];

    /// Its name in logs and metric labels: `timed_out`, `not_sent`,
    /// `connection`, `protocol`, `rejected`, `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::TimedOut => "timed_out",
            Failure::NotSent => "not_sent",
            Failure::Connection => "connection",
            Failure::Protocol => "protocol",
            Failure::Rejected => "rejected",
            Failure::Other => "other",
        }
    }

    /// Whether a request that failed this way may have reached the peer;
    /// `None` when retrying would not help (a deadline, a protocol error, an
    /// error of some other layer).
    pub fn delivery(self) -> Option<Delivery> {
        match self {
            Failure::NotSent => Some(Delivery::NotSent),
            Failure::Connection => Some(Delivery::MaybeSent),
            Failure::TimedOut | Failure::Rejected | Failure::Protocol | Failure::Other => None,
        }
    }
}

impl Delivery {
    /// [`Failure::of`]`(error).`[`delivery()`](Failure::delivery).
    pub fn of(error: &(dyn Error + 'static)) -> Option<Delivery> {
        Failure::of(error).delivery()
    }

    /// What the retry layer acts on: [`Delivery::of`], except `None` for a
    /// request that was not sent but that sending again cannot help, such
    /// as one refused because its endpoint is
    /// [ejected](crate::route::Ejected): a key has one home, and it stays
    /// ejected until a probe brings it back.
    pub(crate) fn worth_retrying(error: &(dyn Error + 'static)) -> Option<Delivery> {
        let verdict = verdict(error)?;
        verdict
            .worth_retrying
            .then_some(verdict.failure.delivery())
            .flatten()
    }
}

/// `true` if an [`std::io::Error`] is `error` or one of its sources: what
/// tells a connection that failed from a peer that broke the protocol.
pub(crate) fn has_io_error(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<std::io::Error>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline;
    use crate::reconnect::error::Disconnected;
    use crate::transport::HandshakeError;
    use crate::BoxError;
    use std::io;
    use std::sync::Arc;

    /// A codec error that wraps I/O, as `thiserror`'s `#[from]` makes one.
    #[derive(Debug, thiserror::Error)]
    enum CodecError {
        #[error("i/o: {0}")]
        Io(#[from] io::Error),
        #[error("bad byte")]
        Bad,
    }

    fn transport(error: CodecError) -> pipeline::Error {
        pipeline::Error::Transport(Arc::new(error))
    }

    fn of(error: impl Into<BoxError>) -> Failure {
        Failure::of(&*error.into())
    }

    #[test]
    fn every_framework_error_has_one_answer() {
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(of(tower::timeout::error::Elapsed::new()), Failure::TimedOut);
        assert_eq!(of(crate::deadline::Elapsed::new()), Failure::TimedOut);
        assert_eq!(of(pipeline::Error::TimedOut), Failure::TimedOut);
        assert_eq!(of(Disconnected::new(None)), Failure::NotSent);
        assert_eq!(of(pipeline::Error::Closed.not_sent()), Failure::NotSent);
        assert_eq!(of(pipeline::Error::Closed), Failure::Connection);
        assert_eq!(of(pipeline::Error::UnexpectedResponse), Failure::Protocol);
        assert_eq!(of(transport(CodecError::Io(reset()))), Failure::Connection);
        assert_eq!(of(transport(CodecError::Bad)), Failure::Protocol);
        assert_eq!(of(transport(CodecError::Bad).not_sent()), Failure::NotSent);
        assert_eq!(of("a layer of yours said no"), Failure::Other);
        assert_eq!(of(HandshakeError::rejected("wrong token")), Failure::Rejected);
        assert_eq!(of(HandshakeError::failed(reset())), Failure::Other);
        assert_eq!(
            of(crate::route::Ejected::new("127.0.0.1:7001".into())),
            Failure::NotSent
        );
    }

    #[test]
    fn a_refused_handshake_behind_disconnected_is_rejected_and_never_retried() {
        let refused = Disconnected::because(HandshakeError::rejected("wrong token").into());
        assert_eq!(of(refused.clone()), Failure::Rejected);
        assert_eq!(Delivery::of(&refused), None);
        let failed = Disconnected::because(HandshakeError::failed("reset").into());
        assert_eq!(of(failed), Failure::NotSent);
    }

    #[test]
    fn wrappers_are_looked_through() {
        // As tower's `Buffer` wraps its inner service's error.
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapper(#[source] pipeline::Error);
        assert_eq!(of(Wrapper(pipeline::Error::Closed)), Failure::Connection);
        assert_eq!(of(Wrapper(transport(CodecError::Bad))), Failure::Protocol);
    }

    #[test]
    fn an_ejection_is_not_sent_but_not_worth_retrying() {
        let ejected = crate::route::Ejected::new("127.0.0.1:7001".into());
        assert_eq!(Delivery::of(&ejected), Some(Delivery::NotSent));
        assert_eq!(Delivery::worth_retrying(&ejected), None);
        let closed = pipeline::Error::Closed.not_sent();
        assert_eq!(Delivery::worth_retrying(&closed), Some(Delivery::NotSent));
    }

    #[test]
    fn a_failed_handshake_is_what_its_cause_says() {
        let failed = HandshakeError::failed(pipeline::Error::Closed);
        assert_eq!(of(failed), Failure::Connection);
    }

    #[test]
    fn all_lists_every_kind_at_its_place() {
        for (index, failure) in Failure::ALL.into_iter().enumerate() {
            assert_eq!(failure as usize, index, "{}", failure.as_str());
        }
    }

    #[test]
    fn delivery_follows_failure() {
        assert_eq!(Delivery::of(&pipeline::Error::Closed), Some(Delivery::MaybeSent));
        assert_eq!(Delivery::of(&pipeline::Error::UnexpectedResponse), None);
        assert_eq!(Delivery::of(&Disconnected::new(None)), Some(Delivery::NotSent));
    }
}
