//! The budget of buffered request bytes, shared fairly: every connection has
//! a share of its own, and bytes past it come from a common pool.
//!
//! A connection holds the bytes it has read and not finished with: its read
//! buffer (at most one partial frame) plus the requests it is working on or
//! waiting to write the answers of. Of a budget `B` for `N` connections,
//!
//! * each connection may always hold its **share**, `B / (2N)` bytes,
//!   whatever the others do: requests that fit in it are never refused or
//!   delayed because of other connections;
//! * the rest, about `B / 2`, is a **pool**: a connection that needs more
//!   than its share (a large frame, a deep pipeline) takes pool bytes
//!   before it reads them, and gives them back when its requests are done.
//!   The pool is a fair (first come, first served) semaphore; a connection
//!   waiting for it stops reading, which pushes back on its peer through
//!   TCP, and waits no longer than its read timeout (then its frame is
//!   refused through the `Overload` hook). At most a set number of
//!   connections wait at once; past it, a frame that would wait is
//!   refused at once instead of queued.
//!
//! So the bytes held by all connections never exceed `N · share + pool =
//! B`, however many stall mid-frame. When the protocol can tell a frame's
//! length from its header ([`FrameSize`]), a connection takes the pool bytes
//! for its whole frame at once, so two half-read frames can never wait for
//! each other; without it, a connection takes pool bytes as it reads.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// Without a [`FrameSize`], a connection past its share takes pool bytes in
/// steps of at least this (or of what it holds, doubling).
const GROWTH: usize = 64 * 1024;

/// How long the frame at the start of a read buffer is, when the protocol
/// can tell from what has arrived (its header) and its codec `C` (whose
/// framing may depend on what the connection negotiated); see
/// [`Server::with_codec_frame_size`](super::Server::with_codec_frame_size).
pub(crate) struct FrameSize<C>(Arc<FrameSizeFn<C>>);

type FrameSizeFn<C> = dyn Fn(&C, &[u8]) -> Option<usize> + Send + Sync;

impl<C> FrameSize<C> {
    pub(crate) fn new(f: impl Fn(&C, &[u8]) -> Option<usize> + Send + Sync + 'static) -> Self {
        FrameSize(Arc::new(f))
    }

    /// The whole frame's length, if `buffered` holds a frame's start and the
    /// protocol, framed by `codec`, can tell.
    pub(crate) fn of(&self, codec: &C, buffered: &[u8]) -> Option<usize> {
        (self.0)(codec, buffered)
    }
}

impl<C> Clone for FrameSize<C> {
    fn clone(&self) -> Self {
        FrameSize(self.0.clone())
    }
}

impl<C> fmt::Debug for FrameSize<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameSize(..)")
    }
}

/// The server's budget: the share of each connection and the common pool.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    share: usize,
    pool: usize,
    semaphore: Arc<Semaphore>,
    /// Connections queued for pool bytes now.
    waiters: Arc<AtomicUsize>,
    max_waiters: usize,
}

impl Budget {
    /// A budget of `limit` bytes for at most `connections` connections, of
    /// which at most `max_waiters` may wait for pool bytes at once.
    pub(crate) fn new(limit: usize, connections: usize, max_waiters: usize) -> Arc<Self> {
        let share = limit / connections.max(1).saturating_mul(2);
        let pool = (limit - share * connections.max(1)).min(Semaphore::MAX_PERMITS);
        Arc::new(Budget {
            limit,
            share,
            pool,
            semaphore: Arc::new(Semaphore::new(pool)),
            waiters: Arc::new(AtomicUsize::new(0)),
            max_waiters,
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The bytes each connection may hold without asking the pool.
    pub(crate) fn share(&self) -> usize {
        self.share
    }

    /// The most connections that may wait for pool bytes at once.
    pub(crate) fn max_waiters(&self) -> usize {
        self.max_waiters
    }

    /// Pool bytes no connection holds now.
    #[cfg(test)]
    pub(crate) fn pool_available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// A place in the queue for pool bytes, if fewer than the most wait.
    fn queue(&self) -> Option<Queued> {
        self.waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max_waiters).then_some(waiting + 1)
            })
            .ok()?;
        Some(Queued(self.waiters.clone()))
    }

    /// The most one connection can ever hold: its share and the whole pool.
    fn most(&self) -> usize {
        self.share.saturating_add(self.pool)
    }
}

/// A need that can never be met: more than a connection's share and the
/// whole pool together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeverFits;

/// Why a connection gets no more room, and will not by waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmet {
    /// More than a connection's share and the whole pool together.
    NeverFits,
    /// The pool has not the bytes now, and as many connections as may
    /// wait for it already do.
    QueueFull,
}

/// One connection's place in the queue for pool bytes: counted among the
/// waiters until dropped.
#[derive(Debug)]
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's part of the [`Budget`]: its share, and the pool bytes
/// it holds (given back when dropped, also when its task panics).
#[derive(Debug)]
pub(crate) struct Share {
    budget: Arc<Budget>,
    granted: Option<OwnedSemaphorePermit>,
    pool: PollSemaphore,
    /// A wait for pool bytes is queued in the semaphore, counted here.
    waiting: Option<Queued>,
    /// [`poll_reserve`](Self::poll_reserve) was called since the last
    /// [`end_round`](Self::end_round).
    asked: bool,
}

impl Share {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Share {
            pool: PollSemaphore::new(budget.semaphore.clone()),
            budget,
            granted: None,
            waiting: None,
            asked: false,
        }
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The bytes this connection may hold now.
    pub(crate) fn limit(&self) -> usize {
        self.budget.share + self.pooled()
    }

    /// Pool bytes this connection holds.
    pub(crate) fn pooled(&self) -> usize {
        self.granted.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Raises [`limit`](Self::limit) to at least `need` bytes: `Ready(Ok)`
    /// once it is, `Pending` while others hold the pool (the task is woken
    /// when they give bytes back), `NeverFits` if no wait would do,
    /// `QueueFull` if this connection would have to wait and the most
    /// that may wait already do.
    pub(crate) fn poll_reserve(&mut self, cx: &mut Context<'_>, need: usize) -> Poll<Result<(), Unmet>> {
        self.asked = true;
        let Some(extra) = need.checked_sub(self.limit()).filter(|&extra| extra > 0) else {
            return Poll::Ready(Ok(()));
        };
        if need > self.budget.most() {
            return Poll::Ready(Err(Unmet::NeverFits));
        }
        let Ok(extra) = u32::try_from(extra) else {
            return Poll::Ready(Err(Unmet::NeverFits));
        };
        match self.pool.poll_acquire_many(cx, extra) {
            Poll::Ready(Some(permit)) => {
                self.waiting = None;
                match &mut self.granted {
                    Some(granted) => granted.merge(permit),
                    None => self.granted = Some(permit),
                }
                Poll::Ready(Ok(()))
            }
            // The semaphore is never closed.
            Poll::Ready(None) => Poll::Ready(Err(Unmet::NeverFits)),
            Poll::Pending if self.waiting.is_some() => Poll::Pending,
            Poll::Pending => match self.budget.queue() {
                Some(queued) => {
                    self.waiting = Some(queued);
                    Poll::Pending
                }
                None => {
                    // Not queued after all: dropping the acquisition gives
                    // back what it collected.
                    self.pool = PollSemaphore::new(self.budget.semaphore.clone());
                    Poll::Ready(Err(Unmet::QueueFull))
                }
            },
        }
    }

    /// How many bytes to hold, to read on: all of the frame `frame` bytes
    /// long (if known) that the `buffered` bytes in the read buffer start,
    /// with `in_flight` bytes of requests still held; or, not knowing the
    /// frame, twice what is held (at least 64 KiB more). Never more than a
    /// connection can hold; `NeverFits` if the frame alone is more.
    pub(crate) fn need(
        &self,
        in_flight: usize,
        buffered: usize,
        frame: Option<usize>,
    ) -> Result<usize, NeverFits> {
        let most = self.budget.most();
        let (frame, want) = match frame {
            Some(frame) if frame > buffered => (frame, in_flight.saturating_add(frame)),
            _ => {
                let held = in_flight + buffered;
                (buffered + 1, held.saturating_add(held.max(GROWTH)))
            }
        };
        if frame > most {
            return Err(NeverFits);
        }
        Ok(want.min(most))
    }

    /// Gives back the pool bytes above `keep` (bytes held, and any more
    /// the frame being read still needs), and withdraws a wait for the pool
    /// that this round did not renew.
    pub(crate) fn end_round(&mut self, keep: usize) {
        if self.waiting.is_some() && !self.asked {
            // Dropping the queued acquisition gives back what it collected.
            self.pool = PollSemaphore::new(self.budget.semaphore.clone());
            self.waiting = None;
        }
        self.asked = false;
        let surplus = self.limit().saturating_sub(keep.max(self.budget.share));
        if surplus > 0 {
            if let Some(granted) = &mut self.granted {
                if surplus >= granted.num_permits() {
                    self.granted = None;
                } else {
                    drop(granted.split(surplus));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    fn poll(share: &mut Share, need: usize) -> Poll<Result<(), Unmet>> {
        share.poll_reserve(&mut Context::from_waker(noop_waker_ref()), need)
    }

    #[test]
    fn shares_are_guaranteed_and_the_pool_is_what_is_left() {
        let budget = Budget::new(1000, 5, usize::MAX);
        assert_eq!((budget.share, budget.pool), (100, 500));
        let mut shares: Vec<_> = (0..5).map(|_| Share::new(budget.clone())).collect();
        // One connection takes the whole pool...
        assert_eq!(poll(&mut shares[0], 600), Poll::Ready(Ok(())));
        assert_eq!(shares[0].limit(), 600);
        // ... and every other one still has its share, without asking.
        for share in &mut shares[1..] {
            assert_eq!(poll(share, 100), Poll::Ready(Ok(())));
            assert!(poll(share, 101).is_pending());
        }
        // More than share and pool together can never be met.
        assert_eq!(poll(&mut shares[1], 601), Poll::Ready(Err(Unmet::NeverFits)));
    }

    #[test]
    fn bytes_given_back_go_to_the_first_in_line() {
        let budget = Budget::new(1000, 5, usize::MAX);
        let mut holder = Share::new(budget.clone());
        let mut first = Share::new(budget.clone());
        let mut second = Share::new(budget.clone());
        assert_eq!(poll(&mut holder, 500), Poll::Ready(Ok(())));
        assert!(poll(&mut first, 400).is_pending());
        assert!(poll(&mut second, 200).is_pending());
        // The holder gives back 250 pool bytes: enough for `second`'s 100,
        // but `first` asked first and takes the 200 it still needed.
        holder.end_round(250);
        assert_eq!(holder.pooled(), 150);
        assert_eq!(poll(&mut first, 400), Poll::Ready(Ok(())));
        assert!(poll(&mut second, 200).is_pending());
        holder.end_round(0);
        assert_eq!(poll(&mut second, 200), Poll::Ready(Ok(())));
        drop((first, second));
        assert_eq!(budget.semaphore.available_permits(), 500);
    }

    #[test]
    fn a_wait_not_renewed_is_withdrawn_and_gives_back_what_it_collected() {
        let budget = Budget::new(1000, 5, usize::MAX);
        let mut holder = Share::new(budget.clone());
        let mut waiter = Share::new(budget.clone());
        assert_eq!(poll(&mut holder, 600), Poll::Ready(Ok(())));
        assert!(poll(&mut waiter, 400).is_pending());
        waiter.end_round(100);
        holder.end_round(400); // 200 back, collected by the queued wait
        assert_eq!(budget.semaphore.available_permits(), 0);
        waiter.end_round(100); // a round without asking: withdrawn
        assert_eq!(budget.semaphore.available_permits(), 200);
    }

    #[test]
    fn past_the_most_waiters_a_need_is_refused_at_once_not_queued() {
        // A pool of 700 bytes, at most 2 waiting for it.
        let budget = Budget::new(1400, 7, 2);
        let mut holder = Share::new(budget.clone());
        assert_eq!(poll(&mut holder, 800), Poll::Ready(Ok(())));
        let mut waiters: Vec<_> = (0..3).map(|_| Share::new(budget.clone())).collect();
        assert!(poll(&mut waiters[0], 300).is_pending());
        assert!(poll(&mut waiters[1], 250).is_pending());
        assert_eq!(poll(&mut waiters[2], 150), Poll::Ready(Err(Unmet::QueueFull)));
        // A waiter asking again keeps its place; what fits at once is
        // granted whatever the queue.
        assert!(poll(&mut waiters[1], 250).is_pending());
        assert_eq!(poll(&mut waiters[2], 100), Poll::Ready(Ok(())));
        // Places are given back when a wait is granted, withdrawn or dropped.
        holder.end_round(0); // 200 to the first waiter, 150 to the second
        assert_eq!(poll(&mut waiters[0], 300), Poll::Ready(Ok(())));
        assert!(
            poll(&mut waiters[2], 500).is_pending(),
            "queued in the freed place"
        );
        waiters[2].end_round(100);
        waiters[2].end_round(100); // not renewed: withdrawn
        let mut late = Share::new(budget.clone());
        assert!(poll(&mut late, 800).is_pending());
        drop(waiters.remove(1));
        assert!(poll(&mut waiters[1], 800).is_pending());
        assert_eq!(budget.waiters.load(Ordering::Acquire), 2);
        drop((late, waiters));
        assert_eq!(budget.waiters.load(Ordering::Acquire), 0);
        assert_eq!(budget.pool_available(), 700);
    }

    #[test]
    fn a_frame_size_asks_the_connections_codec() {
        // A codec whose header length depends on its state, as a
        // protocol's does on the version its connection negotiated.
        let frame_size = FrameSize::new(|header: &usize, buffered: &[u8]| {
            let body = *buffered.get(header.checked_sub(1)?)?;
            Some(header + usize::from(body))
        });
        let buffered = [0, 0, 0, 0, 4, 0, 0, 0, 0, 9];
        assert_eq!(frame_size.of(&5, &buffered), Some(5 + 4));
        assert_eq!(frame_size.clone().of(&10, &buffered), Some(10 + 9));
        assert_eq!(frame_size.of(&11, &buffered), None, "the header is not all there");
    }

    #[test]
    fn the_need_is_the_whole_frame_when_its_size_is_known() {
        let budget = Budget::new(1 << 20, 4, usize::MAX);
        let share = Share::new(budget);
        let most = share.budget.most();
        assert_eq!(share.need(10, 9, Some(5000)), Ok(5010));
        // Unknown: grow by what is held (at least 64 KiB), within reach.
        assert_eq!(share.need(0, 100, None), Ok(100 + GROWTH));
        assert_eq!(share.need(0, 400_000, None), Ok(most));
        // Requests in flight only make a connection wait; a frame larger
        // than a connection can hold never fits.
        assert_eq!(share.need(most, 9, Some(most)), Ok(most));
        assert_eq!(share.need(0, 9, Some(most + 1)), Err(NeverFits));
        assert_eq!(share.need(0, most, None), Err(NeverFits));
    }
}
