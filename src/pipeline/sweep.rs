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
//!
//! The [`Sweep`] timer serves both multiplexers; each walks its own
//! requests when it fires (the pipeline's walk is [`Sweep::expire`]).

use super::error::Error;
use super::message::{Message, Pending};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// A call waiting in a connection task's queue: the pipeline queues its
/// messages as they are, the tagged multiplexer with their call's id.
pub(crate) trait Queued<Req, Resp> {
    fn message(&self) -> &Message<Req, Resp>;
    fn into_message(self) -> Message<Req, Resp>;
}

impl<Req, Resp> Queued<Req, Resp> for Message<Req, Resp> {
    fn message(&self) -> &Message<Req, Resp> {
        self
    }

    fn into_message(self) -> Message<Req, Resp> {
        self
    }
}

impl<Id, Req, Resp> Queued<Req, Resp> for (Id, Message<Req, Resp>) {
    fn message(&self) -> &Message<Req, Resp> {
        &self.1
    }

    fn into_message(self) -> Message<Req, Resp> {
        self.1
    }
}

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

    /// A sweep starts: forgets the earliest deadline (the sweep notes the
    /// ones still waiting) and returns the time it sweeps at.
    pub(crate) fn restart(&mut self) -> Instant {
        self.earliest = None;
        Instant::now()
    }

    /// Answers every queued call whose deadline is at or before `now` with a
    /// timeout (it is never written) and notes the deadlines of the others.
    /// Returns the permits that frees; adds the requests failed to `expired`.
    pub(crate) fn expire_queued<Req, Resp, Q>(
        &mut self,
        now: Instant,
        queue: &mut VecDeque<Q>,
        expired: &mut usize,
    ) -> usize
    where
        Q: Queued<Req, Resp>,
    {
        let mut released = 0;
        for queued in std::mem::take(queue) {
            let message = queued.message();
            match message.deadline() {
                Some(at) if at <= now => {
                    released += message.permits();
                    *expired += message.permits();
                    queued.into_message().fail(Error::TimedOut);
                }
                deadline => {
                    self.note(deadline);
                    queue.push_back(queued);
                }
            }
        }
        released
    }

    /// Answers every request whose deadline has passed with a timeout — a
    /// queued one is never written, a written one's answer will be read and
    /// dropped — and notes the deadlines still waiting. Returns the permits
    /// that frees.
    pub(crate) fn expire<Req, Resp>(
        &mut self,
        queue: &mut VecDeque<Message<Req, Resp>>,
        pending: &mut VecDeque<Pending<Req, Resp>>,
    ) -> usize {
        let now = self.restart();
        let mut expired = 0;
        let mut released = self.expire_queued(now, queue, &mut expired);
        for waiting in pending.iter_mut() {
            match waiting.live_deadline() {
                Some(at) if at <= now => expired += waiting.expire(),
                deadline => self.note(deadline),
            }
        }
        super::metrics::PipelineMetrics::failed(&Error::TimedOut, expired);
        // A batch that expired while being written may be complete now.
        if let Some(Pending::Many(many)) = pending.back() {
            if many.is_complete() {
                released += many.permits;
                pending.pop_back();
            }
        }
        released
    }
}
