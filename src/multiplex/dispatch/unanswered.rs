//! Calls that end without their answer: dropped by their caller or past
//! their deadline (a written request is cancelled, its tag kept until the
//! answer), refused after the peer's GOAWAY, or failed with the connection.

use super::Projected;
use crate::multiplex::client::CallId;
use crate::multiplex::protocol::Outgoing;
use crate::multiplex::written::Slot;
use crate::multiplex::Error;
use crate::pipeline::{fail_unwritten, Message, PipelineMetrics};
use crate::transport::Transport;
use std::task::Poll;

/// The caller of call `id` stopped waiting: a request written for it is
/// cancelled (its tag stays in flight until the answer); one not written
/// yet is skipped when its turn comes.
pub(super) fn abandon<T, Req>(this: &mut Projected<'_, T, Req>, id: CallId, released: &mut usize)
where
    T: Transport<Outgoing<Req>>,
{
    if let Some(tag) = this.written.remove(&id) {
        if let Some(Slot::One { tx, .. }) = this.tags.get_mut(tag) {
            if tx.take().is_some() {
                this.cancels.push(tag);
            }
        }
        return;
    }
    let Some(batch) = this.batches.get_mut(&id) else {
        return;
    };
    if batch.tx.take().is_some() {
        batch.cancel(this.cancels);
    }
    if *this.writing == Some(id) {
        *this.writing = None;
    }
    if batch.is_complete() {
        *released += batch.permits;
        this.batches.remove(&id);
    }
}

/// The peer reads no more requests: callers not written to fail with
/// "not sent", written requests are still answered, no more pings.
pub(super) fn go_away<T, Req>(this: &mut Projected<'_, T, Req>, released: &mut usize)
where
    T: Transport<Outgoing<Req>>,
{
    if std::mem::replace(this.going_away, true) {
        return;
    }
    tracing::debug!(in_flight = this.tags.len(), "the peer sent GOAWAY");
    PipelineMetrics::went_away();
    this.status.go_away();
    *this.keepalive = None;
    *this.ping_due = false;
    for (_, message) in this.queue.drain(..) {
        *released += refuse(message);
    }
    if let Some(id) = this.writing.take() {
        if let Some(batch) = this.batches.get_mut(&id) {
            let not_sent = Error::GoingAway.not_sent();
            PipelineMetrics::failed(&not_sent, batch.refuse_rest(&not_sent));
            if batch.is_complete() {
                if let Some(batch) = this.batches.remove(&id) {
                    *released += batch.permits;
                    batch.deliver();
                }
            }
        }
    }
}

/// Fails a call not written because the peer sent GOAWAY; returns its
/// permits.
pub(super) fn refuse<Req, Resp>(message: Message<Req, Resp>) -> usize {
    let permits = message.permits();
    let not_sent = Error::GoingAway.not_sent();
    PipelineMetrics::failed(&not_sent, permits);
    message.fail(not_sent);
    permits
}

/// Answers every caller whose deadline has passed with a timeout — a queued
/// call is never written, a written request is cancelled and its answer
/// dropped — and notes the deadlines still waiting. Returns the permits
/// that frees.
pub(super) fn expire<T, Req>(this: &mut Projected<'_, T, Req>) -> usize
where
    T: Transport<Outgoing<Req>>,
{
    let now = this.sweep.restart();
    let mut expired = 0;
    let mut released = this.sweep.expire_queued(now, this.queue, &mut expired);
    for (tag, slot) in this.tags.iter_mut() {
        if let Slot::One {
            call,
            tx: tx @ Some(_),
            deadline: Some(at),
            ..
        } = slot
        {
            if *at <= now {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Err(Error::TimedOut));
                }
                this.written.remove(call);
                this.cancels.push(tag);
                expired += 1;
            } else {
                this.sweep.note(Some(*at));
            }
        }
    }
    let writing = *this.writing;
    this.batches.retain(|id, batch| {
        if batch.tx.is_some() {
            match batch.deadline {
                Some(at) if at <= now => {
                    if let Some(tx) = batch.tx.take() {
                        let _ = tx.send(Err(Error::TimedOut));
                    }
                    expired += batch.permits;
                    batch.cancel(this.cancels);
                    if writing == Some(*id) {
                        *this.writing = None;
                    }
                }
                deadline => this.sweep.note(deadline),
            }
        }
        if batch.is_complete() {
            released += batch.permits;
            return false;
        }
        true
    });
    PipelineMetrics::failed(&Error::TimedOut, expired);
    released
}

/// The connection ends: every caller, waiting or queued, gets `error` (a
/// queued one its "not sent" form). Then the task is done.
pub(super) fn finish<T, Req>(this: &mut Projected<'_, T, Req>, error: Error) -> Poll<()>
where
    T: Transport<Outgoing<Req>>,
{
    fail_all(this, error);
    *this.done = true;
    Poll::Ready(())
}

pub(super) fn fail_all<T, Req>(this: &mut Projected<'_, T, Req>, error: Error)
where
    T: Transport<Outgoing<Req>>,
{
    let _ = this.status.fail(error.clone());
    if !this.tags.is_empty() {
        tracing::debug!(%error, in_flight = this.tags.len(), "tagged connection failed");
    }
    let (mut failed, mut unsent) = (0, 0);
    for slot in this.tags.drain() {
        if let Slot::One { tx: Some(tx), .. } = slot {
            let _ = tx.send(Err(error.clone()));
            failed += 1;
        }
    }
    for (_, batch) in this.batches.drain() {
        let (lost, of_them_unsent) = batch.fail(&error);
        failed += lost - of_them_unsent;
        unsent += of_them_unsent;
    }
    this.written.clear();
    this.cancels.clear();
    *this.writing = None;
    fail_unwritten(this.queue, this.calls_rx, &error);
    PipelineMetrics::failed(&error, failed);
    PipelineMetrics::failed(&error.not_sent(), unsent);
}
