//! The write side both connection tasks share (this pipeline's and the
//! tagged multiplexer's): messages go into the sink as the transport takes
//! them, and what a pass wrote is flushed once — put off, while others are
//! in flight, for as long as each turn of the scheduler brings more (at
//! most [`MAX_DEFERRALS`] turns), so that callers about to queue more join
//! the same write. Also the keepalive watch's verdicts, read the same way
//! by both.

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
    /// Turns the pending flush has been put off, to gather more requests.
    deferrals: u8,
}

/// The most turns of the scheduler a flush is put off while each brings
/// more requests. A burst of calls scattered over several connections
/// (a router's) reaches each one over several turns; gathering them costs
/// a poll per turn where each write saved costs a system call — over 8
/// servers at 64 calls in flight per server, 5–6.5% less CPU per call
/// than one turn, with the same latency (BENCHMARKS.md, "Thread per
/// core").
pub(crate) const MAX_DEFERRALS: u8 = 8;

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

    /// One flush for everything written since the last (`written`
    /// requests by this pass). When others were already in flight, their
    /// callers are likely to queue more as soon as they run: the flush is
    /// put off for a turn of the scheduler ([`Step::Again`]), and again
    /// for as long as each turn brought more, up to [`MAX_DEFERRALS`]
    /// turns, so those join this write instead of each paying for a
    /// syscall of its own. A turn that brought nothing, a full transport
    /// (`blocked`) or a lone caller is flushed at once: a lone caller pays
    /// no latency.
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
        if self.needs_flush && written > 0 && others_in_flight && self.deferrals < MAX_DEFERRALS && !blocked {
            self.deferrals += 1;
            return Ok(Step::Again);
        }
        if self.needs_flush {
            match transport.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    self.deferrals = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    /// A sink that takes everything and counts its flushes.
    #[derive(Default)]
    struct Counting {
        sent: usize,
        flushes: usize,
    }

    impl Sink<u32> for Counting {
        type Error = std::io::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, _: u32) -> std::io::Result<()> {
            self.get_mut().sent += 1;
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// One pass: `written` messages, then the flush.
    fn pass(
        writes: &mut Writes,
        sink: &mut Counting,
        written: usize,
        others_in_flight: bool,
        blocked: bool,
    ) -> Step {
        let mut cx = Context::from_waker(noop_waker_ref());
        for _ in 0..written {
            writes.start_send(Pin::new(&mut *sink), 0).unwrap();
        }
        writes
            .flush(Pin::new(&mut *sink), &mut cx, written, others_in_flight, blocked)
            .unwrap()
    }

    #[test]
    fn a_lone_caller_is_flushed_at_once() {
        let (mut writes, mut sink) = (Writes::default(), Counting::default());
        assert!(matches!(
            pass(&mut writes, &mut sink, 1, false, false),
            Step::Idle
        ));
        assert_eq!(sink.flushes, 1);
        assert!(!writes.unflushed());
    }

    #[test]
    fn the_flush_waits_while_each_turn_brings_more_then_goes() {
        let (mut writes, mut sink) = (Writes::default(), Counting::default());
        // Others in flight: put off, and again while each turn brings more.
        for _ in 0..3 {
            assert!(matches!(
                pass(&mut writes, &mut sink, 2, true, false),
                Step::Again
            ));
        }
        assert_eq!((sink.sent, sink.flushes), (6, 0));
        // A turn that brought nothing: everything goes in one flush.
        assert!(matches!(pass(&mut writes, &mut sink, 0, true, false), Step::Idle));
        assert_eq!((sink.sent, sink.flushes), (6, 1));
        assert!(!writes.unflushed());
    }

    #[test]
    fn the_flush_is_put_off_for_at_most_max_deferrals_turns() {
        let (mut writes, mut sink) = (Writes::default(), Counting::default());
        for _ in 0..MAX_DEFERRALS {
            assert!(matches!(
                pass(&mut writes, &mut sink, 1, true, false),
                Step::Again
            ));
        }
        assert_eq!(sink.flushes, 0);
        // Still more coming, but the turns are spent.
        assert!(matches!(pass(&mut writes, &mut sink, 1, true, false), Step::Idle));
        assert_eq!((sink.sent, sink.flushes), (usize::from(MAX_DEFERRALS) + 1, 1));
        // The count starts again after a flush.
        assert!(matches!(
            pass(&mut writes, &mut sink, 1, true, false),
            Step::Again
        ));
    }

    #[test]
    fn a_full_transport_is_flushed_at_once() {
        let (mut writes, mut sink) = (Writes::default(), Counting::default());
        assert!(matches!(pass(&mut writes, &mut sink, 4, true, true), Step::Idle));
        assert_eq!(sink.flushes, 1);
    }
}
