//! The connection's idle, partial-frame and write timers: since when each
//! state has lasted, and the one `Sleep` armed for the earliest deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Which timer is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Nothing buffered, nothing in flight, waiting on the peer.
    Idle,
    /// Part of a frame buffered, waiting on the peer for the rest.
    PartialFrame,
    /// Responses to write, waiting on the peer to read.
    Write,
}

/// Where a connection rests at the end of a round, as its timers see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resting {
    /// Still reading, and the last read found nothing more from the peer.
    pub(super) waiting_on_peer: bool,
    /// Part of a frame is in the read buffer.
    pub(super) partial_frame: bool,
    /// Nothing in flight and nothing to flush.
    pub(super) quiet: bool,
    /// The socket took no more: how many bytes wait to be written.
    pub(super) write_blocked: Option<usize>,
}

/// The three timeouts, and since when each has been running.
#[derive(Debug)]
pub(super) struct Timers {
    idle_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Since when the socket has taken no byte, and how many were waiting then.
    stalled_since: Option<(Instant, usize)>,
    /// Since when the connection has been idle, or has had a partial frame.
    idle_since: Option<Instant>,
    partial_since: Option<Instant>,
    timer: Option<(Timer, Pin<Box<Sleep>>)>,
}

impl Timers {
    /// Timers for these timeouts; `None` disables one.
    pub(super) fn new(
        idle_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
    ) -> Self {
        Timers {
            idle_timeout,
            read_timeout,
            write_timeout,
            stalled_since: None,
            idle_since: None,
            partial_since: None,
            timer: None,
        }
    }

    /// A whole frame arrived: the connection is neither idle nor part-way
    /// through a frame.
    pub(super) fn frame_decoded(&mut self) {
        self.idle_since = None;
        self.partial_since = None;
    }

    /// Arms the idle, partial-frame or write timer for the state the
    /// connection rests in; returns the timer if it has expired.
    ///
    /// Only time spent waiting on the peer counts: a connection that stopped
    /// reading because its own requests are in flight is neither idle nor
    /// slow. The write timer restarts whenever the socket takes a byte.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>, resting: Resting) -> Option<Timer> {
        let Resting {
            waiting_on_peer: waiting,
            partial_frame: buffered,
            quiet,
            write_blocked,
        } = resting;
        let now = Instant::now();

        if waiting && buffered {
            self.partial_since.get_or_insert(now);
        } else {
            self.partial_since = None;
        }
        if waiting && !buffered && quiet {
            self.idle_since.get_or_insert(now);
        } else {
            self.idle_since = None;
        }

        if let Some(unwritten) = write_blocked {
            match self.stalled_since {
                Some((_, before)) if before == unwritten => {}
                _ => self.stalled_since = Some((now, unwritten)),
            }
        } else {
            self.stalled_since = None;
        }

        let deadline = [
            (Timer::PartialFrame, self.partial_since, self.read_timeout),
            (Timer::Idle, self.idle_since, self.idle_timeout),
            (
                Timer::Write,
                self.stalled_since.map(|(since, _)| since),
                self.write_timeout,
            ),
        ]
        .into_iter()
        .filter_map(|(kind, since, timeout)| Some((kind, since? + timeout?)))
        .min_by_key(|&(_, deadline)| deadline);
        let Some((kind, deadline)) = deadline else {
            self.timer = None;
            return None;
        };
        let (armed, sleep) = self
            .timer
            .get_or_insert_with(|| (kind, Box::pin(tokio::time::sleep_until(deadline))));
        *armed = kind;
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timer = None;
                Some(kind)
            }
            Poll::Pending => None,
        }
    }
}
