//! The task that owns the transport: coalesces writes, matches responses.

use super::error::Error;
use crate::failure::BoxError;
use crate::transport::Transport;
use pin_project::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// A request on its way to the connection task.
pub(crate) struct Message<Req, Resp> {
    pub(crate) request: Req,
    pub(crate) tx: oneshot::Sender<Result<Resp, Error>>,
    /// Held until the response is delivered: this is what bounds the number
    /// of requests in flight.
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// A request written to the transport, waiting for its response.
struct Pending<Resp> {
    tx: oneshot::Sender<Result<Resp, Error>>,
    _permit: OwnedSemaphorePermit,
}

/// State shared by the handles and the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    error: OnceLock<Error>,
    semaphore: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(semaphore: Arc<Semaphore>) -> Self {
        Shared {
            error: OnceLock::new(),
            semaphore,
        }
    }

    pub(crate) fn error(&self) -> Option<Error> {
        self.error.get().cloned()
    }

    /// Records why the connection failed (the first reason wins) and wakes
    /// every caller waiting for capacity so that it sees it.
    fn fail(&self, error: Error) -> Error {
        let error = self.error.get_or_init(|| error).clone();
        self.semaphore.close();
        error
    }
}

/// The future that drives one pipelined connection.
///
/// It owns the transport. Each time it runs it moves every queued request
/// into the sink (up to `max_batch`), flushes once for all of them, and hands
/// each response that has arrived to the oldest waiting caller. It finishes
/// when every [`Pipeline`](super::Pipeline) handle is gone and every response
/// is delivered, or when the connection fails — then every waiting caller gets
/// the error at once.
#[pin_project(project = DispatchProj)]
pub struct Dispatch<T, Req>
where
    T: Transport<Req>,
{
    #[pin]
    transport: T,
    rx: mpsc::UnboundedReceiver<Message<Req, T::Response>>,
    pending: VecDeque<Pending<T::Response>>,
    shared: Arc<Shared>,
    max_batch: usize,
    needs_flush: bool,
    /// This pass's flush was put off once, to gather more requests.
    flush_deferred: bool,
    handles_gone: bool,
}

impl<T, Req> fmt::Debug for Dispatch<T, Req>
where
    T: Transport<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("pending", &self.pending.len())
            .field("needs_flush", &self.needs_flush)
            .field("handles_gone", &self.handles_gone)
            .finish_non_exhaustive()
    }
}

/// What one pass over the transport ended with.
enum Step {
    /// Nothing more can happen until a waker fires.
    Idle,
    /// Poll again after other tasks have run: the batch limit was reached
    /// with more requests queued, or the flush was put off to gather more.
    Again,
}

impl<T, Req> Dispatch<T, Req>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    pub(crate) fn new(
        transport: T,
        rx: mpsc::UnboundedReceiver<Message<Req, T::Response>>,
        shared: Arc<Shared>,
        max_batch: usize,
    ) -> Self {
        Dispatch {
            transport,
            rx,
            pending: VecDeque::new(),
            shared,
            max_batch,
            needs_flush: false,
            flush_deferred: false,
            handles_gone: false,
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
        match poll_once(&mut this, cx) {
            Ok(Step::Idle) => {}
            Ok(Step::Again) => cx.waker().wake_by_ref(),
            Err(error) => {
                fail_all(&mut this, error);
                return Poll::Ready(());
            }
        }
        if *this.handles_gone && this.pending.is_empty() && !*this.needs_flush {
            // Orderly end: nobody can send more and nobody waits. A failed
            // close changes nothing for anyone.
            let _ = futures::ready!(this.transport.as_mut().poll_close(cx));
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

type Projected<'a, T, Req> = DispatchProj<'a, T, Req>;

fn poll_once<T, Req>(this: &mut Projected<'_, T, Req>, cx: &mut Context<'_>) -> Result<Step, Error>
where
    T: Transport<Req>,
    <T as Transport<Req>>::Error: Into<BoxError>,
{
    let mut step = Step::Idle;

    // 1. Move queued requests into the sink; no flush yet.
    let mut written = 0;
    while !*this.handles_gone {
        if written == *this.max_batch {
            step = Step::Again;
            break;
        }
        match this.transport.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(Error::transport(e)),
            Poll::Pending => break,
        }
        let message = match this.rx.poll_recv(cx) {
            Poll::Ready(Some(message)) => message,
            Poll::Ready(None) => {
                *this.handles_gone = true;
                break;
            }
            Poll::Pending => break,
        };
        if message.tx.is_closed() {
            // The caller gave up before the request was written: skip it.
            continue;
        }
        this.transport
            .as_mut()
            .start_send(message.request)
            .map_err(Error::transport)?;
        this.pending.push_back(Pending {
            tx: message.tx,
            _permit: message._permit,
        });
        *this.needs_flush = true;
        written += 1;
    }

    // 2. One flush for the whole batch. When other requests are already in
    // flight, their callers are likely to queue more as soon as they run:
    // put the flush off for one turn of the scheduler, so those join this
    // write instead of each paying for a syscall of its own. A lone caller
    // (nothing else in flight) is flushed at once and pays no latency.
    let others_in_flight = this.pending.len() > written;
    if *this.needs_flush && written > 0 && others_in_flight && !*this.flush_deferred {
        *this.flush_deferred = true;
        step = Step::Again;
    } else if *this.needs_flush {
        match this.transport.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                *this.needs_flush = false;
                *this.flush_deferred = false;
            }
            Poll::Ready(Err(e)) => return Err(Error::transport(e)),
            Poll::Pending => {}
        }
    }

    // 3. Hand every response that has arrived to the oldest waiting caller.
    loop {
        match this.transport.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(response))) => match this.pending.pop_front() {
                // A caller that stopped waiting just doesn't get it.
                Some(pending) => drop(pending.tx.send(Ok(response))),
                None => return Err(Error::UnexpectedResponse),
            },
            Poll::Ready(Some(Err(e))) => return Err(Error::transport(e)),
            Poll::Ready(None) => return Err(Error::Closed),
            Poll::Pending => break,
        }
    }
    Ok(step)
}

/// Fails every caller, waiting or queued, with the same error.
fn fail_all<T, Req>(this: &mut Projected<'_, T, Req>, error: Error)
where
    T: Transport<Req>,
{
    let error = this.shared.fail(error);
    tracing::debug!(%error, pending = this.pending.len(), "pipelined connection failed");
    for pending in this.pending.drain(..) {
        let _ = pending.tx.send(Err(error.clone()));
    }
    // Requests still queued were never written: say so, so that a retry
    // layer may send them again whatever they are.
    this.rx.close();
    let not_sent = error.not_sent();
    while let Ok(message) = this.rx.try_recv() {
        let _ = message.tx.send(Err(not_sent.clone()));
    }
}
