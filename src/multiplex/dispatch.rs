//! The task that owns the transport: tags and writes requests, matches
//! answers by tag, writes cancels and pings, keeps the deadlines.

use super::client::CallId;
use super::protocol::{Answers, Outgoing, Tag, Tagged};
use super::tags::Tags;
use super::written::{IdMap, Slot, WrittenBatch};
use super::Error;
use crate::keepalive::{Keepalive, Watch};
use crate::pipeline::{poll_watch, Message, PipelineMetrics, Status, Step, Sweep, Writes};
use crate::transport::Transport;
use crate::BoxError;
use pin_project::{pin_project, pinned_drop};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use unanswered::{abandon, expire, fail_all, finish, go_away, refuse};

mod unanswered;

/// The future that drives one tagged connection.
///
/// It owns the transport. Each time it runs it takes note of the callers
/// that stopped waiting, writes their cancels, a keepalive ping if one is
/// due, then queued requests (up to `max_batch`; a batch's requests back to
/// back), each with a free tag; flushes once for all of it; and hands each
/// answer that has arrived to the caller its tag names. One timer keeps the
/// deadlines of every request it holds, one the keepalive. It finishes when
/// every [`Multiplex`](super::Multiplex) handle is gone and every tag is
/// answered, when a peer that sent GOAWAY has answered every written
/// request, or when the connection fails — then every waiting caller gets
/// the error at once.
#[pin_project(PinnedDrop, project = DispatchProj)]
pub struct Dispatch<T, Req>
where
    T: Transport<Outgoing<Req>>,
{
    #[pin]
    transport: T,
    calls_rx: mpsc::UnboundedReceiver<(CallId, Message<Req, T::Response>)>,
    drops_rx: mpsc::UnboundedReceiver<CallId>,
    /// Received, not written yet.
    queue: VecDeque<(CallId, Message<Req, T::Response>)>,
    tags: Tags<Slot<T::Response>>,
    /// The tag of each written single request whose caller still waits.
    written: IdMap<Tag>,
    /// Batches being written or answered (their callers may be gone).
    batches: IdMap<WrittenBatch<Req, T::Response>>,
    /// The batch being written, back to back.
    writing: Option<CallId>,
    /// Tags whose cancel is to be written.
    cancels: Vec<Tag>,
    keepalive: Option<Watch>,
    /// The watch asked for a ping that is not written yet.
    ping_due: bool,
    status: Arc<Status>,
    sweep: Sweep,
    metrics: PipelineMetrics,
    max_batch: usize,
    writes: Writes,
    handles_gone: bool,
    /// The peer sent GOAWAY: nothing more is written but cancels.
    going_away: bool,
    done: bool,
}

impl<T, Req> fmt::Debug for Dispatch<T, Req>
where
    T: Transport<Outgoing<Req>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("queued", &self.queue.len())
            .field("tags_in_flight", &self.tags.len())
            .field("going_away", &self.going_away)
            .field("handles_gone", &self.handles_gone)
            .finish_non_exhaustive()
    }
}

impl<T, Req> Dispatch<T, Req>
where
    T: Transport<Outgoing<Req>>,
{
    pub(super) fn new(
        transport: T,
        calls_rx: mpsc::UnboundedReceiver<(CallId, Message<Req, T::Response>)>,
        drops_rx: mpsc::UnboundedReceiver<CallId>,
        status: Arc<Status>,
        max_batch: usize,
        max_tag: Tag,
        keepalive: Option<Keepalive>,
    ) -> Self {
        Dispatch {
            transport,
            calls_rx,
            drops_rx,
            queue: VecDeque::new(),
            tags: Tags::new(max_tag),
            written: IdMap::default(),
            batches: IdMap::default(),
            writing: None,
            cancels: Vec::new(),
            keepalive: keepalive.map(Watch::new),
            ping_due: false,
            status,
            sweep: Sweep::default(),
            metrics: PipelineMetrics::new(),
            max_batch,
            writes: Writes::default(),
            handles_gone: false,
            going_away: false,
            done: false,
        }
    }
}

impl<T, Req> Future for Dispatch<T, Req>
where
    T: Transport<Outgoing<Req>>,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    T::Response: Tagged,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(());
        }
        let mut released = 0;
        let step = poll_once(&mut this, cx, &mut released);
        this.status.release(released);
        match step {
            Ok(Step::Idle) => {}
            Ok(Step::Again) => cx.waker().wake_by_ref(),
            Err(error) => return finish(&mut this, error),
        }
        // Keepalive, after this pass's answers were read (each one heard).
        if let Some(watch) = this.keepalive.as_mut() {
            match poll_watch(watch, cx) {
                Ok(due) => *this.ping_due |= due,
                Err(unresponsive) => return finish(&mut this, unresponsive),
            }
        }
        // The deadlines: rarely due, and then once per timeout period.
        while this.sweep.poll_due(cx) {
            let released = expire(&mut this);
            this.status.release(released);
            if !this.cancels.is_empty() {
                cx.waker().wake_by_ref();
            }
        }
        this.metrics.in_flight(this.tags.len() + this.queue.len());
        let drained = this.tags.is_empty()
            && this.queue.is_empty()
            && this.batches.is_empty()
            && this.cancels.is_empty()
            && !this.writes.unflushed();
        if drained && (*this.handles_gone || *this.going_away) {
            // Orderly end: nobody waits, and nobody can send more (or the
            // peer takes no more). A failed close changes nothing for anyone.
            let _ = futures::ready!(this.transport.as_mut().poll_close(cx));
            // Callers that raced the GOAWAY still get their "not sent".
            let end = if *this.going_away {
                Error::GoingAway
            } else {
                Error::Closed
            };
            return finish(&mut this, end);
        }
        Poll::Pending
    }
}

type Projected<'a, T, Req> = DispatchProj<'a, T, Req>;

/// One pass: write, then read. The answers are read even when the write
/// failed: a peer that refuses a request and closes (a BUSY, then its close)
/// breaks the write of what follows, and its answers, already in the
/// socket, still reach their callers before the rest fail with the write's
/// error.
fn poll_once<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<Step, Error>
where
    T: Transport<Outgoing<Req>>,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    T::Response: Tagged,
{
    this.metrics.new_pass();
    let step = write(this, cx, released);
    let read = read_answers(this, cx, released);
    let (mut step, blocked) = step?;
    read?;
    // Answers may have freed tags that queued calls wait for.
    if this.tags.has_room() && (!this.queue.is_empty() || this.writing.is_some()) && !blocked {
        step = Step::Again;
    }
    Ok(step)
}

/// Takes note of callers that stopped waiting and of new calls, writes
/// cancels, a due ping and queued calls, and flushes once for all of it;
/// and whether the transport was full (it takes no more until it wakes
/// this task).
fn write<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<(Step, bool), Error>
where
    T: Transport<Outgoing<Req>>,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
{
    let mut step = Step::Idle;

    // 1. Callers that stopped waiting, then every call queued since the
    // last pass: O(1) each, and every deadline is known here.
    while let Poll::Ready(Some(id)) = this.drops_rx.poll_recv(cx) {
        abandon(this, id, released);
    }
    while !*this.handles_gone {
        match this.calls_rx.poll_recv(cx) {
            Poll::Ready(Some((id, message))) => {
                if *this.going_away {
                    *released += refuse(message);
                } else {
                    this.sweep.note(message.deadline());
                    this.queue.push_back((id, message));
                }
            }
            Poll::Ready(None) => *this.handles_gone = true,
            Poll::Pending => break,
        }
    }

    // 2. Write cancels, a due ping, the batch being written, then queued
    // calls, each with a free tag; no flush yet.
    let in_flight_before = this.tags.len();
    let (mut written, mut cancels, mut blocked) = (0, 0, false);
    // The clock, for the budgets: read at most once per pass.
    let mut now = None;
    loop {
        if written == *this.max_batch {
            step = Step::Again;
            break;
        }
        let ping = *this.ping_due && this.tags.has_room();
        let next_call = this.writing.is_some() || !this.queue.is_empty();
        if this.cancels.is_empty() && !ping && !(next_call && this.tags.has_room()) {
            // Nothing to write, or every tag in flight: an answer frees one.
            break;
        }
        if !Writes::poll_ready(this.transport.as_mut(), cx)? {
            blocked = true;
            break;
        }
        if let Some(tag) = this.cancels.pop() {
            start_send(this, Outgoing::Cancel(tag))?;
            cancels += 1;
            continue;
        }
        if ping {
            *this.ping_due = false;
            if let Some(tag) = this.tags.take(Slot::Ping) {
                start_send(this, Outgoing::Ping(tag))?;
                this.metrics.pinged();
            }
            continue;
        }
        if let Some(id) = *this.writing {
            if let Some(request) = write_part(this, id, &mut now) {
                start_send(this, request)?;
                written += 1;
            }
            continue;
        }
        let Some((id, message)) = this.queue.pop_front() else {
            break;
        };
        if message.is_abandoned() {
            // The caller gave up before anything was written: skip it.
            *released += message.permits();
            continue;
        }
        match message {
            Message::One {
                request,
                tx,
                deadline,
            } => {
                let sent = this.metrics.stamp();
                let slot = Slot::One {
                    call: id,
                    tx: Some(tx),
                    deadline,
                    sent,
                };
                // There is room: checked above.
                let Some(tag) = this.tags.take(slot) else {
                    return Err(Error::Closed);
                };
                this.written.insert(id, tag);
                let budget = budget(deadline, &mut now);
                start_send(this, Outgoing::Request { tag, budget, request })?;
                written += 1;
            }
            Message::Many {
                requests,
                tx,
                deadline,
                permits,
            } => {
                if requests.is_empty() {
                    let _ = tx.send(Ok(Vec::new()));
                    *released += permits;
                    continue;
                }
                // Written from the top of the loop, request by request.
                let sent = this.metrics.stamp();
                let batch = WrittenBatch::new(requests, tx, deadline, permits, sent);
                this.batches.insert(id, batch);
                *this.writing = Some(id);
            }
        }
    }
    this.metrics.written(written);
    PipelineMetrics::cancelled(cancels);

    // 3. One flush for the whole pass (put off while others are in flight
    // and each turn brings more, to gather it).
    let others_in_flight = in_flight_before > 0;
    if let Step::Again = this
        .writes
        .flush(this.transport.as_mut(), cx, written, others_in_flight, blocked)?
    {
        step = Step::Again;
    }
    Ok((step, blocked))
}

/// Hands every answer that has arrived to the caller its tag names.
fn read_answers<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<(), Error>
where
    T: Transport<Outgoing<Req>>,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    T::Response: Tagged,
{
    loop {
        match this.transport.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(response))) => {
                if let Some(watch) = this.keepalive.as_mut() {
                    watch.heard();
                }
                answer(this, response, released)?;
            }
            Poll::Ready(Some(Err(e))) => return Err(Error::transport(e)),
            // After its GOAWAY the peer answers all it read, then closes:
            // a request still unanswered at a clean close was never read.
            Poll::Ready(None) if *this.going_away => return Err(Error::GoingAway.not_sent()),
            Poll::Ready(None) => return Err(Error::Closed),
            Poll::Pending => break,
        }
    }
    this.metrics.answers_read();
    Ok(())
}

/// What remains of `deadline` now.
fn budget(deadline: Option<Instant>, now: &mut Option<Instant>) -> Option<Duration> {
    let deadline = deadline?;
    let now = *now.get_or_insert_with(Instant::now);
    Some(deadline.saturating_duration_since(now))
}

fn start_send<T, Req>(this: &mut Projected<'_, T, Req>, message: Outgoing<Req>) -> Result<(), Error>
where
    T: Transport<Outgoing<Req>>,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
{
    this.writes.start_send(this.transport.as_mut(), message)
}

/// Tags the next request of the batch being written; `None` if it has no
/// more (it is then no longer being written).
fn write_part<T, Req>(
    this: &mut Projected<'_, T, Req>,
    id: CallId,
    now: &mut Option<Instant>,
) -> Option<Outgoing<Req>>
where
    T: Transport<Outgoing<Req>>,
{
    let batch = this.batches.get_mut(&id);
    let next = batch.and_then(|batch| {
        let request = batch.unwritten.next()?;
        let slot = Slot::Part {
            batch: id,
            index: batch.tags.len(),
            sent: batch.sent,
        };
        let tag = this.tags.take(slot)?;
        batch.tags.push(tag);
        batch.open += 1;
        let budget = budget(batch.deadline, now);
        Some((Outgoing::Request { tag, budget, request }, batch.unwritten.len()))
    });
    match next {
        Some((request, left)) => {
            if left == 0 {
                *this.writing = None;
            }
            Some(request)
        }
        None => {
            *this.writing = None;
            None
        }
    }
}

/// Hands `response` to the caller its tag names, or acts on a message from
/// the peer that answers no request.
fn answer<T, Req>(
    this: &mut Projected<'_, T, Req>,
    response: T::Response,
    released: &mut usize,
) -> Result<(), Error>
where
    T: Transport<Outgoing<Req>>,
    T::Response: Tagged,
{
    let tag = match response.answers() {
        Answers::Request(tag) => tag,
        Answers::GoAway => {
            go_away(this, released);
            return Ok(());
        }
        Answers::Nothing => return Ok(()),
    };
    // A tag not in flight: the two ends no longer agree on what is asked.
    let slot = this.tags.free(tag).ok_or(Error::UnexpectedResponse)?;
    match slot {
        Slot::Ping => {}
        Slot::One { call, tx, sent, .. } => {
            this.metrics.answered_stamped(sent);
            *released += 1;
            // A caller that stopped waiting just doesn't get it.
            if let Some(tx) = tx {
                this.written.remove(&call);
                let _ = tx.send(Ok(response));
            }
        }
        Slot::Part { batch, index, sent } => {
            this.metrics.answered_stamped(sent);
            if let Some(written) = this.batches.get_mut(&batch) {
                written.answered(index, response);
                if written.is_complete() {
                    if let Some(written) = this.batches.remove(&batch) {
                        *released += written.permits;
                        written.deliver();
                    }
                }
            }
        }
    }
    Ok(())
}

#[pinned_drop]
impl<T, Req> PinnedDrop for Dispatch<T, Req>
where
    T: Transport<Outgoing<Req>>,
{
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if !*this.done {
            // Dropped while running (its runtime shut down): nobody will
            // answer, so say so to everyone now rather than never.
            fail_all(&mut this, Error::Closed);
        }
    }
}
