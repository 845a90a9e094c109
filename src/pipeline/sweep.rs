//! The connection task's one timer for the deadlines of all its requests.
//!
//! Each request may carry a deadline (set by a
//! [`Deadline`](crate::deadline::Deadline) layer above). Instead of a timer
//! per request, the task keeps the earliest deadline it has seen and one
//! `Sleep` armed for it. Requests answered in time cost nothing more. When
//! the timer fires, the task answers every request whose deadline has
//! passed, works out the next earliest deadline among those still waiting
//! and re-arms the timer once. With one timeout for every request, deadlines
//! arrive in order and the timer is re-armed about once per timeout period.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// No waiting request has an earlier deadline (it may be earlier than
    /// every one still waiting: it is only moved on by a sweep).
    earliest: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Sweep {
    /// A request with `deadline` is waiting.
    pub(crate) fn note(&mut self, deadline: Option<Instant>) {
        if let Some(at) = deadline {
            if self.earliest.is_none_or(|earliest| at < earliest) {
                self.earliest = Some(at);
            }
        }
    }

    /// Arms the timer for the earliest deadline; `true` once it has come.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.earliest else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        matches!(timer.as_mut().poll(cx), Poll::Ready(()))
    }

    /// Starts a sweep: every deadline at or before the returned time has
    /// passed; the caller notes the deadlines still waiting.
    pub(crate) fn start(&mut self) -> Instant {
        self.earliest = None;
        Instant::now()
    }
}
