//! [`InFlight`]: the requests of one connection being worked on, answered in
//! the order they came, each with the wire bytes it holds.
//!
//! The order answers leave in is this type's alone: the connection loop
//! writes whatever [`InFlight::poll_next`] gives it. A protocol that tags
//! its requests can answer them as they complete through a collection with
//! the same methods that yields them in that order instead.
//!
//! Most services answer most requests at once (an in-memory read or write
//! is done by the time its future is first polled). Such a request costs no
//! allocation here: its future is polled once as it is started, in a pinned
//! slot reused from request to request, and its answer waits in order in a
//! queue. Only a future still pending after that first poll is handed to a
//! `FuturesOrdered`, which allocates a task for it so that it is polled only
//! when woken.

use futures::stream::{FuturesOrdered, StreamExt};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Pinned slots kept for reuse at most.
const SPARE_SLOTS: usize = 4;

/// A pinned place for one future, reused once it has answered.
type Slot<F> = Pin<Box<Option<F>>>;

/// Requests in flight, in order: answered already, or still running; each
/// with the wire bytes of its request, which count against the connection's
/// share of the buffer budget until its answer is taken.
pub(super) struct InFlight<F: Future> {
    order: VecDeque<(Entry<F::Output>, usize)>,
    running: FuturesOrdered<Running<F>>,
    spare: Vec<Slot<F>>,
    /// The wire bytes of every request in `order`.
    bytes: usize,
}

enum Entry<T> {
    Answered(T),
    /// The next answer of `running`.
    Running,
}

/// A future that was pending on its first poll, in its slot.
struct Running<F>(Slot<F>);

impl<F: Future> Future for Running<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.0.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx),
            // Never: a running slot holds its future until it answers, and
            // `FuturesOrdered` polls nothing after its answer.
            None => Poll::Pending,
        }
    }
}

impl<F: Future> InFlight<F> {
    pub(super) fn new() -> Self {
        InFlight {
            order: VecDeque::new(),
            running: FuturesOrdered::new(),
            spare: Vec::new(),
            bytes: 0,
        }
    }

    /// The wire bytes of the requests in flight.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Drops every request in flight.
    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.running = FuturesOrdered::new();
        self.bytes = 0;
    }

    /// Queues an answer the server already has (to no request read whole).
    pub(super) fn push_answered(&mut self, output: F::Output) {
        self.order.push_back((Entry::Answered(output), 0));
    }

    /// Starts `future`, the work of a request of `size` wire bytes, polling
    /// it once now.
    pub(super) fn push(&mut self, future: F, size: usize, cx: &mut Context<'_>) {
        self.bytes += size;
        let mut slot = self.spare.pop().unwrap_or_else(|| Box::pin(None));
        slot.set(Some(future));
        let polled = match slot.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx),
            None => Poll::Pending,
        };
        match polled {
            Poll::Ready(output) => {
                slot.set(None);
                if self.spare.len() < SPARE_SLOTS {
                    self.spare.push(slot);
                }
                self.order.push_back((Entry::Answered(output), size));
            }
            Poll::Pending => {
                self.running.push_back(Running(slot));
                self.order.push_back((Entry::Running, size));
            }
        }
    }

    /// The oldest request's answer and its request's size, once it has
    /// one; `None` if none is in flight.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(F::Output, usize)>> {
        let output = match self.order.front_mut() {
            None => return Poll::Ready(None),
            Some((Entry::Running, _)) => match futures::ready!(self.running.poll_next_unpin(cx)) {
                Some(output) => output,
                None => return Poll::Ready(None),
            },
            Some((entry, _)) => match std::mem::replace(entry, Entry::Running) {
                Entry::Answered(output) => output,
                Entry::Running => return Poll::Ready(None),
            },
        };
        let size = self.order.pop_front().map_or(0, |(_, size)| size);
        self.bytes -= size;
        Poll::Ready(Some((output, size)))
    }
}

impl<F: Future> fmt::Debug for InFlight<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("len", &self.order.len())
            .field("running", &self.running.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use tokio::sync::oneshot;

    #[test]
    fn answers_come_out_in_order_whether_ready_at_once_or_not() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (tx, rx) = oneshot::channel::<u32>();
        let slow = async move { rx.await.unwrap_or(0) };
        in_flight.push(
            Box::pin(async { 1u32 }) as Pin<Box<dyn Future<Output = u32>>>,
            10,
            &mut cx,
        );
        in_flight.push(Box::pin(slow), 20, &mut cx);
        in_flight.push_answered(3);
        in_flight.push(Box::pin(async { 4 }), 40, &mut cx);
        assert_eq!(in_flight.len(), 4);
        assert_eq!(in_flight.bytes(), 70);
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, 10))));
        assert_eq!(
            in_flight.poll_next(&mut cx),
            Poll::Pending,
            "the second is not answered yet"
        );
        assert_eq!(in_flight.bytes(), 60, "the second holds its bytes until answered");
        tx.send(2).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, 20))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((3, 0))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((4, 40))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(None));
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.bytes(), 0);
    }
}
