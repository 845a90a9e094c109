//! How a connection asks the protocol's [`Order`] (the rules are in its
//! docs): each request it reads is started in order, tagged or
//! unanswered; a tag reused while in flight ends the reading; and the
//! GOAWAY is queued when reading stops for shutdown or the idle timeout.
//!
//! A connection that sent a GOAWAY *lingers* once its answers are flushed
//! and its sending side closed: it reads and drops whatever the peer still
//! sends, until the peer closes or [`LINGER`] has passed. The peer may have
//! sent more before it read the GOAWAY; closing with those bytes unread
//! would reset the connection, which can destroy answers still on their
//! way to it — a request answered, its answer lost. (nginx and Apache's
//! "lingering close" do the same, for the same reason.)

use super::super::metrics::{CloseCause, GoawayCause};
use super::super::order::Order;
use super::{ConnectionProj, Served};
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::Service;

/// How long a connection that sent a GOAWAY reads and drops what its peer
/// still sends, at most, before it closes.
pub(super) const LINGER: Duration = Duration::from_secs(2);
/// Reads of one lingering poll at most, before it yields to the runtime.
const LINGER_READS_PER_POLL: usize = 16;

/// The reason given to [`Order::goaway`] on graceful shutdown.
const SHUTTING_DOWN: &str = "server shutting down";
/// The reason given to [`Order::goaway`] when an idle connection is closed.
const IDLE: &str = "idle connection closed";

impl<Io: AsyncRead + AsyncWrite, P: Served<Req>, Req> ConnectionProj<'_, Io, P, Req> {
    /// Starts `request`, of `size` wire bytes, as the protocol's order
    /// says: called and answered in order or by its tag, called with its
    /// answer dropped, or — its tag already in flight — not called at all.
    pub(super) fn start(&mut self, request: Req, size: usize, cx: &mut Context<'_>) {
        if !self.hooks.order.answered(&request) {
            let future = self.service.call(request);
            self.in_flight.push_unanswered(future, size, cx);
            *self.started += 1;
            return;
        }
        match self.hooks.order.tag(&request) {
            None => {
                let future = self.service.call(request);
                self.in_flight.push(future, size, cx);
            }
            Some(tag) if self.in_flight.holds_tag(tag) => {
                tracing::debug!(tag, "a request reuses a tag in flight; closing the connection");
                if let Some(answer) = self.hooks.order.tag_in_use(tag) {
                    self.in_flight.push_now(Ok(answer));
                }
                self.stop_reading(CloseCause::TagInUse);
                return;
            }
            Some(tag) => {
                let future = self.service.call(request);
                self.in_flight.push_tagged(future, tag, size, cx);
            }
        }
        *self.started += 1;
    }

    /// Queues the protocol's GOAWAY, if it has one and `cause` calls for
    /// it (shutdown, the idle timeout): reading stops now.
    pub(super) fn going_away(&mut self, cause: CloseCause) {
        let (cause, reason) = match cause {
            CloseCause::Shutdown => (GoawayCause::Shutdown, SHUTTING_DOWN),
            CloseCause::IdleTimeout => (GoawayCause::IdleTimeout, IDLE),
            _ => return,
        };
        if let Some(goaway) = self.hooks.order.goaway(reason) {
            tracing::debug!(reason, in_flight = self.in_flight.len(), "sending GOAWAY");
            *self.goaway = Some((goaway, cause));
            *self.went_away = true;
        }
    }

    /// Reads and drops what the peer sends until it closes, the read
    /// fails, or the linger time is over.
    pub(super) fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 4096];
        for _ in 0..LINGER_READS_PER_POLL {
            if let Some(linger) = self.linger.as_mut() {
                if linger.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            let mut io = self.transport.as_mut().get_pin_mut();
            // Dropped at once: these bytes take nothing of the budget.
            io.as_mut().allow(scratch.len());
            let mut unread = ReadBuf::new(&mut scratch);
            match io.poll_read(cx, &mut unread) {
                Poll::Ready(Ok(())) if !unread.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
