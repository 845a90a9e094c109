//! The connection's share of the server's buffer budget: how much it may
//! read, what it asks the pool for, what it gives back after each round;
//! and, until the connection is admitted, the smaller limit it is held to.

use super::super::admission::Admission;
use super::super::budget::{NeverFits, Unmet};
use super::super::overload::Overloaded;
use super::{ConnectionProj, Served};
use std::task::{Context, Poll};

/// What the budget says to a connection that has read all its share allows.
pub(super) enum Room {
    /// More was granted: read on.
    Granted,
    /// Others hold the pool: the task is woken when they give bytes back.
    Waiting,
    /// The connection holds all it can, mostly requests in flight.
    Full,
    /// The frame being read is larger than a connection can ever hold.
    NeverFits,
    /// The frame being read needs pool bytes, and the most connections
    /// that may wait for them already do.
    QueueFull,
    /// The frame being read is larger than the connection may send before
    /// it is admitted.
    BeforeAdmission(usize),
}

impl Room {
    /// Why the frame being read is refused, if it is.
    pub(super) fn refusal(&self, limit: usize, max_waiters: usize) -> Option<Overloaded> {
        match *self {
            Room::NeverFits => Some(Overloaded::BufferBudget { limit }),
            Room::QueueFull => Some(Overloaded::BufferBudgetQueue { limit: max_waiters }),
            Room::BeforeAdmission(limit) => Some(Overloaded::FrameBeforeAdmission { limit }),
            Room::Granted | Room::Waiting | Room::Full => None,
        }
    }
}

impl<Io, P: Served<Req>, Req> ConnectionProj<'_, Io, P, Req> {
    /// Gives back the pool bytes this connection no longer needs: it keeps
    /// what it holds, and what the frame it is reading still needs.
    pub(super) fn end_round(&mut self) {
        let io = self.transport.get_ref();
        let (read, written) = (io.bytes_read(), io.bytes_written());
        self.metrics.round(std::mem::take(self.started), read, written);
        let buffered = self.transport.read_buffer();
        let keep = match self.hooks.frame_size.as_ref() {
            _ if self.share.pooled() == 0 => 0,
            Some(frame_size) => {
                let frame = frame_size
                    .of(self.transport.codec(), buffered)
                    .unwrap_or(0)
                    .max(buffered.len());
                self.in_flight.bytes() + frame
            }
            // Unknown frame sizes: keep the pool bytes until the frame is read.
            None if !buffered.is_empty() => self.share.limit(),
            None => self.in_flight.bytes(),
        };
        self.share.end_round(keep);
    }

    /// Lets the transport read up to this connection's limit: its share
    /// and the pool bytes it holds; before it is admitted, its share or
    /// the frame limit before admission, whichever is smaller.
    pub(super) fn allow_reading(&mut self) {
        let held = self.transport.read_buffer().len() + self.in_flight.bytes();
        let limit = match *self.admitted {
            true => self.share.limit(),
            false => self.unadmitted_limit(),
        };
        let allowance = limit.saturating_sub(held);
        self.transport.as_mut().get_pin_mut().allow(allowance);
    }

    /// The most a connection not yet admitted may hold.
    fn unadmitted_limit(&self) -> usize {
        self.limits.max_unadmitted_frame.min(self.share.budget().share())
    }

    /// Asks the protocol's [`Admission`] whether the connection is admitted,
    /// until it is; returns `true` when it has just been (its limit has
    /// grown: the caller lets it read on).
    pub(super) fn admit(&mut self) -> bool {
        if *self.admitted {
            return false;
        }
        *self.admitted = self.hooks.admission.admitted(self.service);
        *self.admitted
    }

    /// Asks the budget for room to go on with the frame being read; before
    /// the connection is admitted, never the pool.
    pub(super) fn reserve(&mut self, cx: &mut Context<'_>) -> Room {
        if !*self.admitted && !self.admit() {
            return self.room_before_admission();
        }
        let buffered = self.transport.read_buffer();
        let codec = self.transport.codec();
        let frame = self.hooks.frame_size.as_ref().and_then(|f| f.of(codec, buffered));
        let held = buffered.len() + self.in_flight.bytes();
        match self.share.need(self.in_flight.bytes(), buffered.len(), frame) {
            Err(NeverFits) => Room::NeverFits,
            // As much as a connection can hold, most of it requests in
            // flight: their answers give room back (and wake the task).
            Ok(need) if need <= held => Room::Full,
            Ok(need) => match self.share.poll_reserve(cx, need) {
                Poll::Ready(Ok(())) => Room::Granted,
                Poll::Ready(Err(Unmet::NeverFits)) => Room::NeverFits,
                Poll::Ready(Err(Unmet::QueueFull)) => Room::QueueFull,
                Poll::Pending => Room::Waiting,
            },
        }
    }

    /// Before admission, with part of a frame buffered: the refusal of
    /// that frame if it is over the limit.
    pub(super) fn over_limit_before_admission(&mut self) -> Option<Overloaded> {
        if *self.admitted || self.transport.read_buffer().is_empty() {
            return None;
        }
        if self.admit() {
            self.allow_reading();
            return None;
        }
        match self.room_before_admission() {
            Room::BeforeAdmission(limit) => Some(Overloaded::FrameBeforeAdmission { limit }),
            _ => None,
        }
    }

    /// Room for a connection not yet admitted, which has read all its
    /// limit allows: none more. If the frame being read is over the limit
    /// — its header says so, or it has filled the limit without ending — it
    /// is refused; otherwise requests in flight hold the rest, and their
    /// answers give it back.
    fn room_before_admission(&mut self) -> Room {
        let buffered = self.transport.read_buffer();
        let codec = self.transport.codec();
        let frame = self.hooks.frame_size.as_ref().and_then(|f| f.of(codec, buffered));
        let frame = frame.unwrap_or(buffered.len().saturating_add(1));
        let limit = self.unadmitted_limit();
        if frame > limit {
            return Room::BeforeAdmission(limit);
        }
        Room::Full
    }
}
