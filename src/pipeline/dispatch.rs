//! The task that owns the transport: coalesces writes, matches responses,
//! keeps the deadlines.

use super::error::Error;
use super::message::{ManyPending, Message, Pending};
use super::metrics::PipelineMetrics;
use super::sweep::{Queued, Sweep};
use super::writes::{poll_watch, Step, Writes};
use crate::keepalive::{Keepalive, Watch};
use crate::transport::Transport;
use crate::BoxError;
use pin_project::{pin_project, pinned_drop};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, Semaphore};

/// What the connection task tells its callers: its error once it failed,
/// and the in-flight permits it gives back.
#[derive(Debug)]
pub(crate) struct Status {
    error: OnceLock<Error>,
    /// The in-flight limit. Callers take permits and forget them; the
    /// connection task gives them back when their calls are done, in bulk.
    pub(crate) semaphore: Arc<Semaphore>,
}

impl Status {
    pub(crate) fn new(semaphore: Arc<Semaphore>) -> Self {
        Status {
            error: OnceLock::new(),
            semaphore,
        }
    }

    pub(crate) fn error(&self) -> Option<Error> {
        self.error.get().cloned()
    }

    /// The peer sent GOAWAY: the connection takes no new work, and says so
    /// to callers as its error (a later failure does not replace it).
    pub(crate) fn go_away(&self) {
        let _ = self.fail(Error::GoingAway);
    }

    pub(crate) fn release(&self, permits: usize) {
        if permits > 0 {
            self.semaphore.add_permits(permits);
        }
    }

    /// Records why the connection failed (the first reason wins) and wakes
    /// every caller waiting for capacity so that it sees it.
    pub(crate) fn fail(&self, error: Error) -> Error {
        let error = self.error.get_or_init(|| error).clone();
        self.semaphore.close();
        error
    }
}

/// The future that drives one pipelined connection.
///
/// It owns the transport. Each time it runs it moves queued requests into
/// the sink (up to `max_batch`; a batch's requests back to back), flushes
/// once for all of them, and hands each response that has arrived to the
/// oldest waiting caller. One timer keeps the deadlines of every request it
/// holds. It finishes when every [`Pipeline`](super::Pipeline) handle is gone
/// and every response is delivered, or when the connection fails — then
/// every waiting caller gets the error at once.
#[pin_project(PinnedDrop, project = DispatchProj)]
pub struct Dispatch<T, Req>
where
    T: Transport<Req>,
{
    #[pin]
    transport: T,
    rx: mpsc::UnboundedReceiver<Message<Req, T::Response>>,
    /// Received while the transport could take no more: not written yet.
    queue: VecDeque<Message<Req, T::Response>>,
    pending: VecDeque<Pending<Req, T::Response>>,
    status: Arc<Status>,
    sweep: Sweep,
    metrics: PipelineMetrics,
    max_batch: usize,
    /// Keepalive, when the builder was given a ping: the watch, and the
    /// function that makes the ping.
    keepalive: Option<(Watch, fn() -> Req)>,
    /// The watch asked for a ping that is not written yet.
    ping_due: bool,
    writes: Writes,
    handles_gone: bool,
    done: bool,
}

impl<T, Req> fmt::Debug for Dispatch<T, Req>
where
    T: Transport<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("queued", &self.queue.len())
            .field("pending", &self.pending.len())
            .field("unflushed", &self.writes.unflushed())
            .field("handles_gone", &self.handles_gone)
            .finish_non_exhaustive()
    }
}

impl<T, Req> Dispatch<T, Req>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    pub(crate) fn new(
        transport: T,
        rx: mpsc::UnboundedReceiver<Message<Req, T::Response>>,
        status: Arc<Status>,
        max_batch: usize,
        keepalive: Option<(fn() -> Req, Keepalive)>,
    ) -> Self {
        Dispatch {
            transport,
            rx,
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            status,
            sweep: Sweep::default(),
            metrics: PipelineMetrics::new(),
            max_batch,
            keepalive: keepalive.map(|(ping, setting)| (Watch::new(setting), ping)),
            ping_due: false,
            writes: Writes::default(),
            handles_gone: false,
            done: false,
        }
    }
}

impl<T, Req> Future for Dispatch<T, Req>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
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
            Err(error) => {
                fail_all(&mut this, error);
                *this.done = true;
                return Poll::Ready(());
            }
        }
        // Keepalive, after this pass's answers were read (each one heard).
        if let Some((watch, _)) = this.keepalive.as_mut() {
            match poll_watch(watch, cx) {
                Ok(due) => *this.ping_due |= due,
                Err(unresponsive) => {
                    fail_all(&mut this, unresponsive);
                    *this.done = true;
                    return Poll::Ready(());
                }
            }
        }
        // The deadlines: rarely due, and then once per timeout period.
        while this.sweep.poll_due(cx) {
            let released = this.sweep.expire(this.queue, this.pending);
            this.status.release(released);
        }
        this.metrics.in_flight(this.pending.len() + this.queue.len());
        if *this.handles_gone && this.pending.is_empty() && this.queue.is_empty() && !this.writes.unflushed()
        {
            // Orderly end: nobody can send more and nobody waits. A failed
            // close changes nothing for anyone.
            let _ = futures::ready!(this.transport.as_mut().poll_close(cx));
            *this.done = true;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

type Projected<'a, T, Req> = DispatchProj<'a, T, Req>;

/// One pass: write what is queued, then read what has arrived. The answers
/// are read even when the write failed: a peer that refuses a request and
/// closes (a BUSY before its close, say) breaks the write of what follows,
/// and its answers, already in the socket, still go to their callers
/// before the rest fail with the write's error.
fn poll_once<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<Step, Error>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    this.metrics.new_pass();
    let step = write(this, cx, released);
    let read = read_answers(this, cx, released);
    let step = step?;
    read?;
    Ok(step)
}

/// Moves queued requests into the sink and flushes once for all of them.
fn write<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<Step, Error>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    let mut step = Step::Idle;

    // 1. Move queued requests into the sink; no flush yet.
    let in_flight_before = this.pending.len();
    let mut written = 0;
    let mut blocked = false;
    loop {
        if written == *this.max_batch {
            step = Step::Again;
            break;
        }
        // A batch being written goes on before anything else is taken.
        let writing = match this.pending.back_mut() {
            Some(Pending::Many(many)) if many.unwritten.len() > 0 => {
                if many.tx.as_ref().is_none_or(|tx| tx.is_closed()) {
                    // Its caller stopped waiting: write no more of it.
                    many.stop_writing();
                    if many.is_complete() {
                        *released += many.permits;
                        this.pending.pop_back();
                    }
                    continue;
                }
                true
            }
            _ => false,
        };
        if !writing && !*this.ping_due && this.queue.is_empty() && *this.handles_gone {
            break;
        }
        if !Writes::poll_ready(this.transport.as_mut(), cx)? {
            blocked = true;
            break;
        }
        if writing {
            let next = match this.pending.back_mut() {
                Some(Pending::Many(many)) => many.unwritten.next(),
                _ => None,
            };
            if let Some(request) = next {
                start_send(this, request)?;
                many_written(this);
                written += 1;
            }
            continue;
        }
        if std::mem::take(this.ping_due) {
            // Between calls, never inside a batch: answers come in order.
            if let Some((_, ping)) = this.keepalive.as_ref() {
                let ping = ping();
                start_send(this, ping)?;
                this.pending.push_back(Pending::Ping);
                this.metrics.pinged();
            }
            continue;
        }
        let message = match this.queue.pop_front() {
            Some(message) => message,
            None => match this.rx.poll_recv(cx) {
                Poll::Ready(Some(message)) => message,
                Poll::Ready(None) => {
                    *this.handles_gone = true;
                    break;
                }
                Poll::Pending => break,
            },
        };
        if message.is_abandoned() {
            // The caller gave up before anything was written: skip it.
            *released += message.permits();
            continue;
        }
        this.sweep.note(message.deadline());
        match message {
            Message::One {
                request,
                tx,
                deadline,
            } => {
                start_send(this, request)?;
                this.pending.push_back(Pending::One {
                    tx: Some(tx),
                    deadline,
                    sent: this.metrics.sent(),
                });
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
                let sent = this.metrics.sent();
                let many = ManyPending::new(requests, tx, deadline, permits, sent);
                this.pending.push_back(Pending::Many(Box::new(many)));
            }
        }
    }
    this.metrics.written(written);
    if blocked {
        // The peer is not reading: hold what callers queue, so that the
        // deadlines of every request are known here.
        while !*this.handles_gone {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(message)) => {
                    this.sweep.note(message.deadline());
                    this.queue.push_back(message);
                }
                Poll::Ready(None) => *this.handles_gone = true,
                Poll::Pending => break,
            }
        }
    }

    // 2. One flush for the whole batch (put off while others are in flight
    // and each turn brings more, to gather it).
    let others_in_flight = in_flight_before > 0;
    if let Step::Again = this
        .writes
        .flush(this.transport.as_mut(), cx, written, others_in_flight, blocked)?
    {
        step = Step::Again;
    }
    Ok(step)
}

/// Hands every response that has arrived to the oldest waiting caller.
fn read_answers<T, Req>(
    this: &mut Projected<'_, T, Req>,
    cx: &mut Context<'_>,
    released: &mut usize,
) -> Result<(), Error>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    loop {
        match this.transport.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(response))) => {
                if let Some((watch, _)) = this.keepalive.as_mut() {
                    watch.heard();
                }
                answer(this, response, released)?
            }
            Poll::Ready(Some(Err(e))) => return Err(Error::transport(e)),
            Poll::Ready(None) => return Err(Error::Closed),
            Poll::Pending => break,
        }
    }
    this.metrics.answers_read();
    Ok(())
}

fn start_send<T, Req>(this: &mut Projected<'_, T, Req>, request: Req) -> Result<(), Error>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    this.writes.start_send(this.transport.as_mut(), request)
}

/// Counts one more written request of the batch being written.
fn many_written<T, Req>(this: &mut Projected<'_, T, Req>)
where
    T: Transport<Req>,
{
    if let Some(Pending::Many(many)) = this.pending.back_mut() {
        many.written += 1;
    }
}

/// Gives `response` to the oldest call waiting for one.
fn answer<T, Req>(
    this: &mut Projected<'_, T, Req>,
    response: T::Response,
    released: &mut usize,
) -> Result<(), Error>
where
    T: Transport<Req>,
{
    match this.pending.front_mut() {
        None => Err(Error::UnexpectedResponse),
        Some(Pending::Ping) => {
            this.pending.pop_front();
            Ok(())
        }
        Some(Pending::One { tx, sent, .. }) => {
            this.metrics.answered(*sent);
            // A caller that stopped waiting just doesn't get it.
            if let Some(tx) = tx.take() {
                let _ = tx.send(Ok(response));
            }
            this.pending.pop_front();
            *released += 1;
            Ok(())
        }
        Some(Pending::Many(many)) => {
            if many.answers.len() == many.written {
                // An answer to a request not written yet.
                return Err(Error::UnexpectedResponse);
            }
            many.answers.push(Ok(response));
            this.metrics.answered(many.sent);
            if many.is_complete() {
                *released += many.permits;
                if let Some(Pending::Many(many)) = this.pending.pop_front() {
                    many.deliver();
                }
            }
            Ok(())
        }
    }
}

/// Fails every caller, waiting or queued, with the same error.
fn fail_all<T, Req>(this: &mut Projected<'_, T, Req>, error: Error)
where
    T: Transport<Req>,
{
    let error = this.status.fail(error);
    tracing::debug!(%error, pending = this.pending.len(), "pipelined connection failed");
    let (mut failed, mut unsent) = (0, 0);
    for pending in this.pending.drain(..) {
        let (requests, of_them_unsent) = pending.fail(&error);
        failed += requests - of_them_unsent;
        unsent += of_them_unsent;
    }
    // Requests still queued were never written: say so, so that a retry
    // layer may send them again whatever they are.
    fail_unwritten(this.queue, this.rx, &error);
    PipelineMetrics::failed(&error, failed);
    PipelineMetrics::failed(&error.not_sent(), unsent);
}

/// The connection failed with `error` before the calls queued (and still
/// in the channel, which is closed) were written: each gets its "not sent"
/// form, so that a retry layer may send them again whatever they are.
/// Counts the requests that fails.
pub(crate) fn fail_unwritten<Req, Resp, Q>(
    queue: &mut VecDeque<Q>,
    rx: &mut mpsc::UnboundedReceiver<Q>,
    error: &Error,
) where
    Q: Queued<Req, Resp>,
{
    let not_sent = error.not_sent();
    rx.close();
    let mut unsent = 0;
    let received = std::iter::from_fn(|| rx.try_recv().ok());
    for queued in queue.drain(..).chain(received) {
        let message = queued.into_message();
        unsent += message.permits();
        message.fail(not_sent.clone());
    }
    PipelineMetrics::failed(&not_sent, unsent);
}

#[pinned_drop]
impl<T, Req> PinnedDrop for Dispatch<T, Req>
where
    T: Transport<Req>,
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
