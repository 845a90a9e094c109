//! The write side both connection tasks share (this pipeline's and the
//! tagged multiplexer's): messages go into the sink as the transport takes
//! them, and what a pass wrote is flushed once — put off for one turn of
//! the scheduler when others are in flight, so that callers about to queue
//! more join the same write. Also the keepalive watch's verdicts, read the
//! same way by both.

use super::error::Error;
use crate::keepalive::{Action, Watch};
use crate::BoxError;
use futures::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What one pass over the transport ended with.
pub(crate) enum Step {
    /// Nothing more can happen until a waker fires.
    Idle,
    /// Poll again after other tasks have run: the batch limit was reached
    /// with more queued, or the flush was put off to gather more.
    Again,
}

/// Whether what was written is flushed.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    needs_flush: bool,
    /// This pass's flush was put off once, to gather more requests.
    flush_deferred: bool,
}

impl Writes {
    /// Whether `transport` takes another message now; `Ok(false)` when it
    /// is full (the task is woken when it has room).
    pub(crate) fn poll_ready<T, I>(transport: Pin<&mut T>, cx: &mut Context<'_>) -> Result<bool, Error>
    where
        T: Sink<I>,
        T::Error: Into<BoxError>,
    {
        match transport.poll_ready(cx) {
            Poll::Ready(Ok(())) => Ok(true),
            Poll::Ready(Err(e)) => Err(Error::transport(e)),
            Poll::Pending => Ok(false),
        }
    }

    /// Puts `message` into the sink, to be flushed with the rest of the pass.
    pub(crate) fn start_send<T, I>(&mut self, transport: Pin<&mut T>, message: I) -> Result<(), Error>
    where
        T: Sink<I>,
        T::Error: Into<BoxError>,
    {
        transport.start_send(message).map_err(Error::transport)?;
        self.needs_flush = true;
        Ok(())
    }

    /// Something written is not flushed yet.
    pub(crate) fn unflushed(&self) -> bool {
        self.needs_flush
    }

    /// One flush for everything this pass wrote (`written` requests). When
    /// others were already in flight, their callers are likely to queue
    /// more as soon as they run: the flush is put off once, for one turn of
    /// the scheduler ([`Step::Again`]), so those join this write instead of
    /// each paying for a syscall of its own. A lone caller is flushed at
    /// once and pays no latency.
    pub(crate) fn flush<T, I>(
        &mut self,
        transport: Pin<&mut T>,
        cx: &mut Context<'_>,
        written: usize,
        others_in_flight: bool,
        blocked: bool,
    ) -> Result<Step, Error>
    where
        T: Sink<I>,
        T::Error: Into<BoxError>,
    {
        if self.needs_flush && written > 0 && others_in_flight && !self.flush_deferred && !blocked {
            self.flush_deferred = true;
            return Ok(Step::Again);
        }
        if self.needs_flush {
            match transport.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    self.flush_deferred = false;
                }
                Poll::Ready(Err(e)) => return Err(Error::transport(e)),
                Poll::Pending => {}
            }
        }
        Ok(Step::Idle)
    }
}

/// Reads the keepalive watch: `Ok(true)` when a ping is due now (the task
/// is woken to write it), `Err(Unresponsive)` when the peer stayed silent
/// past the timeout after one.
pub(crate) fn poll_watch(watch: &mut Watch, cx: &mut Context<'_>) -> Result<bool, Error> {
    let mut ping = false;
    while let Poll::Ready(action) = watch.poll(cx) {
        match action {
            Action::Ping => {
                ping = true;
                cx.waker().wake_by_ref();
            }
            Action::Dead => return Err(Error::Unresponsive(watch.timeout())),
        }
    }
    Ok(ping)
}
