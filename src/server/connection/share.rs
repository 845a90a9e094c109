//! The connection's share of the server's buffer budget: how much it may
//! read, what it asks the pool for, what it gives back after each round.

use super::super::budget::NeverFits;
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

    /// Lets the transport read up to this connection's limit.
    pub(super) fn allow_reading(&mut self) {
        let held = self.transport.read_buffer().len() + self.in_flight.bytes();
        let allowance = self.share.limit().saturating_sub(held);
        self.transport.as_mut().get_pin_mut().allow(allowance);
    }

    /// Asks the budget for room to go on with the frame being read.
    pub(super) fn reserve(&mut self, cx: &mut Context<'_>) -> Room {
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
                Poll::Ready(Err(NeverFits)) => Room::NeverFits,
                Poll::Pending => Room::Waiting,
            },
        }
    }
}
