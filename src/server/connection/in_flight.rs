//! [`InFlight`]: the requests of one connection being worked on, each with
//! the wire bytes it holds, and the order their answers may leave in.
//!
//! The order answers leave in is this type's alone: the connection loop
//! writes whatever [`InFlight::poll_next`] gives it. Each request is pushed
//! as one of three kinds, as the protocol's [`Order`](super::super::Order)
//! says:
//!
//! * **in order** ([`push`](InFlight::push)): its answer leaves after the
//!   answer of every request read before it (a plain codec, a KV 1.1
//!   connection: every request is of this kind);
//! * **tagged** ([`push_tagged`](InFlight::push_tagged)): its answer leaves
//!   as soon as it is ready, carrying its tag; the tag counts as in flight
//!   until the answer is taken;
//! * **unanswered** ([`push_unanswered`](InFlight::push_unanswered)), a
//!   cancel: it runs, and its output is dropped when it completes; it holds
//!   its bytes and its place in the in-flight limit until then, and no
//!   answer ever waits for it.
//!
//! An in-order answer waits for the tagged requests read before it without
//! keeping a place per tagged request: each in-order entry counts the tagged
//! requests read between it and the in-order entry before it that are still
//! unanswered, and may leave when it is first and that count is zero. So a
//! slow in-order request followed by any number of tagged ones that answer
//! costs one entry, not one per tagged answer.
//!
//! Most services answer most requests at once (an in-memory read or write
//! is done by the time its future is first polled). Such a request costs no
//! allocation here: its future is polled once as it is started, in a pinned
//! slot reused from request to request, and its answer waits in a queue
//! (in order, or the queue of tagged answers ready to leave). Only a future
//! still pending after that first poll is handed to a `FuturesOrdered` (in
//! order) or a `FuturesUnordered` (tagged, unanswered), which allocates a
//! task for it so that it is polled only when woken.

use crate::multiplex::IdHasher;
use crate::multiplex::Tag;
use futures::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Pinned slots kept for reuse at most.
const SPARE_SLOTS: usize = 4;

/// A pinned place for one future, reused once it has answered.
type Slot<F> = Pin<Box<Option<F>>>;

/// Requests in flight, each with the wire bytes of its request, which count
/// against the connection's share of the buffer budget until its answer is
/// taken (an unanswered request's: until it completes).
pub(super) struct InFlight<F: Future> {
    /// In-order requests, oldest first.
    order: VecDeque<Ordered<F::Output>>,
    running: FuturesOrdered<Running<F>>,
    /// Answers that may leave now: tagged answers, and the server's own
    /// answers (no tag), first come first out.
    ready: VecDeque<(Option<Tagged>, F::Output)>,
    /// Tagged and unanswered requests still running.
    unordered: FuturesUnordered<Unordered<F>>,
    /// The tags of the tagged requests whose answers are not taken yet.
    tags: HashSet<Tag, BuildHasherDefault<IdHasher>>,
    /// In-order entries taken so far: the number of `order`'s front among
    /// all in-order entries ever pushed.
    taken: u64,
    /// Tagged requests read after the last entry of `order`, unanswered.
    tail: usize,
    spare: Vec<Slot<F>>,
    /// The wire bytes of every request in flight.
    bytes: usize,
}

/// An in-order request.
struct Ordered<T> {
    entry: Entry<T>,
    size: usize,
    /// Tagged requests read after the in-order entry before this one (or
    /// ever, for the first) whose answers are not taken: this one leaves
    /// only once it is first and this is zero.
    tagged_before: usize,
}

enum Entry<T> {
    Answered(T),
    /// The next answer of `running`.
    Running,
}

/// A tagged request's tag, size, and the in-order entries it holds up.
#[derive(Debug, Clone, Copy)]
struct Tagged {
    tag: Tag,
    size: usize,
    /// The number of the first in-order entry read after it.
    holds_up: u64,
}

/// What a request of `unordered` is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tagged(Tagged),
    /// Its output is dropped; it holds `size` bytes until then.
    Unanswered {
        size: usize,
    },
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

/// A tagged or unanswered future that was pending on its first poll.
struct Unordered<F> {
    running: Running<F>,
    kind: Kind,
}

impl<F: Future> Future for Unordered<F> {
    type Output = (Kind, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let output = futures::ready!(Pin::new(&mut self.running).poll(cx));
        Poll::Ready((self.kind, output))
    }
}

/// A future polled once as it was started.
enum Started<F: Future> {
    Done(F::Output),
    Pending(Slot<F>),
}

impl<F: Future> InFlight<F> {
    pub(super) fn new() -> Self {
        InFlight {
            order: VecDeque::new(),
            running: FuturesOrdered::new(),
            ready: VecDeque::new(),
            unordered: FuturesUnordered::new(),
            tags: HashSet::default(),
            taken: 0,
            tail: 0,
            spare: Vec::new(),
            bytes: 0,
        }
    }

    /// The wire bytes of the requests in flight.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The requests in flight, of every kind, and answers waiting to leave.
    pub(super) fn len(&self) -> usize {
        self.order.len() + self.ready.len() + self.unordered.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a tagged request with `tag` is in flight (its answer not
    /// taken yet).
    pub(super) fn holds_tag(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }

    /// Drops every request in flight.
    pub(super) fn clear(&mut self) {
        self.taken += self.order.len() as u64;
        self.order.clear();
        self.running = FuturesOrdered::new();
        self.ready.clear();
        self.unordered.clear();
        self.tags.clear();
        self.tail = 0;
        self.bytes = 0;
    }

    /// Queues, in order, an answer the server already has (to no request
    /// read whole).
    pub(super) fn push_answered(&mut self, output: F::Output) {
        self.push_ordered(Entry::Answered(output), 0);
    }

    /// Queues an answer of the server's own to leave next, ahead of every
    /// answer not taken yet.
    pub(super) fn push_now(&mut self, output: F::Output) {
        self.ready.push_front((None, output));
    }

    /// Starts `future`, the work of an in-order request of `size` wire
    /// bytes, polling it once now.
    pub(super) fn push(&mut self, future: F, size: usize, cx: &mut Context<'_>) {
        self.bytes += size;
        let entry = match self.start(future, cx) {
            Started::Done(output) => Entry::Answered(output),
            Started::Pending(slot) => {
                self.running.push_back(Running(slot));
                Entry::Running
            }
        };
        self.push_ordered(entry, size);
    }

    /// Starts `future`, the work of a request tagged `tag` (not in flight:
    /// see [`holds_tag`](Self::holds_tag)) of `size` wire bytes, polling it
    /// once now.
    pub(super) fn push_tagged(&mut self, future: F, tag: Tag, size: usize, cx: &mut Context<'_>) {
        self.bytes += size;
        self.tags.insert(tag);
        self.tail += 1;
        let tagged = Tagged {
            tag,
            size,
            holds_up: self.taken + self.order.len() as u64,
        };
        match self.start(future, cx) {
            Started::Done(output) => self.ready.push_back((Some(tagged), output)),
            Started::Pending(slot) => self.unordered.push(Unordered {
                running: Running(slot),
                kind: Kind::Tagged(tagged),
            }),
        }
    }

    /// Starts `future`, the work of a request of `size` wire bytes that has
    /// no answer: its output is dropped when it completes.
    pub(super) fn push_unanswered(&mut self, future: F, size: usize, cx: &mut Context<'_>) {
        match self.start(future, cx) {
            Started::Done(_dropped) => {}
            Started::Pending(slot) => {
                self.bytes += size;
                self.unordered.push(Unordered {
                    running: Running(slot),
                    kind: Kind::Unanswered { size },
                });
            }
        }
    }

    /// The next answer that may leave, with its tag if it is a tagged
    /// request's: `Ready(None)` if nothing is in flight, `Pending` while
    /// nothing in flight may leave yet.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(F::Output, Option<Tag>)>> {
        if let Some((tagged, output)) = self.ready.pop_front() {
            let tag = tagged.map(|tagged| self.take_tagged(tagged));
            return Poll::Ready(Some((output, tag)));
        }
        while !self.unordered.is_empty() {
            match self.unordered.poll_next_unpin(cx) {
                Poll::Ready(Some((Kind::Tagged(tagged), output))) => {
                    return Poll::Ready(Some((output, Some(self.take_tagged(tagged)))));
                }
                Poll::Ready(Some((Kind::Unanswered { size }, _dropped))) => self.bytes -= size,
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        let Some(front) = self.order.front_mut() else {
            return if self.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        };
        if let Entry::Running = front.entry {
            match futures::ready!(self.running.poll_next_unpin(cx)) {
                Some(output) => front.entry = Entry::Answered(output),
                // Never: every running entry has its future in `running`.
                None => return Poll::Pending,
            }
        }
        if front.tagged_before > 0 {
            // Tagged requests read before it are still running in
            // `unordered`, which wakes the task when they answer.
            return Poll::Pending;
        }
        match self.order.pop_front() {
            Some(Ordered {
                entry: Entry::Answered(output),
                size,
                ..
            }) => {
                self.taken += 1;
                self.bytes -= size;
                Poll::Ready(Some((output, None)))
            }
            // Never: the front was answered just above.
            _ => Poll::Pending,
        }
    }

    /// Queues an in-order entry behind the tagged requests read since the
    /// last one.
    fn push_ordered(&mut self, entry: Entry<F::Output>, size: usize) {
        self.order.push_back(Ordered {
            entry,
            size,
            tagged_before: std::mem::take(&mut self.tail),
        });
    }

    /// Polls `future` once in a pinned slot, reusing a spare one; the slot
    /// goes back to the spares if the future answered.
    fn start(&mut self, future: F, cx: &mut Context<'_>) -> Started<F> {
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
                Started::Done(output)
            }
            Poll::Pending => Started::Pending(slot),
        }
    }

    /// A tagged answer is taken: its bytes, its tag and the in-order entry
    /// it held up are freed.
    fn take_tagged(&mut self, tagged: Tagged) -> Tag {
        self.bytes -= tagged.size;
        self.tags.remove(&tagged.tag);
        let held_up = tagged
            .holds_up
            .checked_sub(self.taken)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.order.get_mut(index));
        // An in-order entry leaves only once every tagged request read
        // before it is taken, so the one this holds up is still queued, or
        // not pushed yet (`tail`).
        let count = match held_up {
            Some(entry) => &mut entry.tagged_before,
            None => &mut self.tail,
        };
        debug_assert!(*count > 0, "a tagged answer taken twice");
        *count = count.saturating_sub(1);
        tagged.tag
    }
}

impl<F: Future> fmt::Debug for InFlight<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("in_order", &self.order.len())
            .field("running", &self.running.len())
            .field("ready", &self.ready.len())
            .field("unordered", &self.unordered.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use tokio::sync::oneshot;

    type Work = Pin<Box<dyn Future<Output = u32>>>;

    fn ready(n: u32) -> Work {
        Box::pin(async move { n })
    }

    /// Work that answers what is sent on the returned sender.
    fn gated() -> (oneshot::Sender<u32>, Work) {
        let (tx, rx) = oneshot::channel::<u32>();
        (tx, Box::pin(async move { rx.await.unwrap_or(0) }))
    }

    #[test]
    fn answers_come_out_in_order_whether_ready_at_once_or_not() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (tx, slow) = gated();
        in_flight.push(ready(1), 10, &mut cx);
        in_flight.push(slow, 20, &mut cx);
        in_flight.push_answered(3);
        in_flight.push(ready(4), 40, &mut cx);
        assert_eq!(in_flight.len(), 4);
        assert_eq!(in_flight.bytes(), 70);
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, None))));
        assert_eq!(
            in_flight.poll_next(&mut cx),
            Poll::Pending,
            "the second is not answered yet"
        );
        assert_eq!(in_flight.bytes(), 60, "the second holds its bytes until answered");
        tx.send(2).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((3, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((4, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(None));
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.bytes(), 0);
    }

    #[test]
    fn tagged_answers_leave_as_they_complete_and_free_their_tag_and_bytes() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (first_tx, first) = gated();
        let (second_tx, second) = gated();
        in_flight.push_tagged(first, 7, 100, &mut cx);
        in_flight.push_tagged(second, 8, 20, &mut cx);
        in_flight.push_tagged(ready(3), 9, 3, &mut cx);
        assert!(in_flight.holds_tag(7) && in_flight.holds_tag(9));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((3, Some(9)))));
        assert!(!in_flight.holds_tag(9), "a tag is free once its answer is taken");
        second_tx.send(2).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, Some(8)))));
        assert_eq!(
            in_flight.bytes(),
            100,
            "the answered requests' bytes are free while the first still runs"
        );
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Pending);
        first_tx.send(1).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, Some(7)))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(None));
        assert_eq!(in_flight.bytes(), 0);
        assert!(!in_flight.holds_tag(7));
    }

    #[test]
    fn an_in_order_answer_waits_for_every_request_read_before_it_and_no_later_one() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (tagged_tx, tagged) = gated();
        in_flight.push_tagged(tagged, 1, 0, &mut cx);
        in_flight.push(ready(10), 0, &mut cx);
        in_flight.push_tagged(ready(2), 2, 0, &mut cx);
        in_flight.push(ready(20), 0, &mut cx);
        // Tag 2, read after the first in-order request, does not wait for it.
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, Some(2)))));
        assert_eq!(
            in_flight.poll_next(&mut cx),
            Poll::Pending,
            "the in-order answers wait for tag 1"
        );
        tagged_tx.send(1).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, Some(1)))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((10, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((20, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn an_unanswered_request_runs_holds_its_bytes_and_blocks_nothing() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (cancel_tx, cancel) = gated();
        in_flight.push_unanswered(cancel, 50, &mut cx);
        in_flight.push_unanswered(ready(99), 5, &mut cx);
        in_flight.push(ready(1), 1, &mut cx);
        in_flight.push_tagged(ready(2), 2, 2, &mut cx);
        assert_eq!(in_flight.len(), 3, "the one done at once is gone");
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, Some(2)))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, None))));
        assert_eq!((in_flight.len(), in_flight.bytes()), (1, 50));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Pending);
        cancel_tx.send(7).unwrap();
        assert_eq!(
            in_flight.poll_next(&mut cx),
            Poll::Ready(None),
            "its output is dropped"
        );
        assert_eq!((in_flight.len(), in_flight.bytes()), (0, 0));
    }

    #[test]
    fn the_servers_own_answer_leaves_next() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut in_flight = InFlight::new();
        let (tx, slow) = gated();
        in_flight.push(slow, 0, &mut cx);
        in_flight.push_tagged(ready(2), 2, 0, &mut cx);
        in_flight.push_now(5);
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((5, None))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((2, Some(2)))));
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Pending);
        tx.send(1).unwrap();
        assert_eq!(in_flight.poll_next(&mut cx), Poll::Ready(Some((1, None))));
    }
}
