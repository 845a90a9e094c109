//! How a connection asks the protocol's [`Order`]: each request it reads is
//! started in order, tagged or unanswered; a tag reused while in flight
//! ends the reading; and the GOAWAY goes out when reading stops for a
//! cause the peer did not choose.
//!
//! Which requests are unanswered is asked first: a cancel names the tag of
//! the request it cancels, which is in flight, so its tag is never looked
//! at.
//!
//! The GOAWAY is sent when the connection stops reading because of
//! [`Shutdown`](CloseCause::Shutdown) or the
//! [`IdleTimeout`](CloseCause::IdleTimeout): the two closes the server
//! decides on its own while the peer may still be sending, and may send
//! again elsewhere. Every other cause needs none: the peer closed (it
//! sends no more), the framing is lost or a tag was reused (the peer is
//! broken, and no message of the protocol's can be trusted to reach it in
//! its place), a partial frame timed out or the peer reads nothing (a
//! stalled peer reads no GOAWAY either), the service failed or an answer
//! closes the connection (the protocol's own answer said what it had to).
//! The GOAWAY is written ahead of every answer not yet written, which are
//! then written, all of them, before the connection closes: so a request
//! the peer sent is either answered or was never read.

use super::super::metrics::{CloseCause, GoawayCause};
use super::super::order::Order;
use super::{ConnectionProj, Served};
use std::task::Context;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::Service;

/// The reason given to [`Order::goaway`] on graceful shutdown.
pub(crate) const SHUTTING_DOWN: &str = "server shutting down";
/// The reason given to [`Order::goaway`] when an idle connection is closed.
pub(crate) const IDLE: &str = "idle connection closed";

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
    /// it (see the module docs): reading stops now.
    pub(super) fn going_away(&mut self, cause: CloseCause) {
        let (cause, reason) = match cause {
            CloseCause::Shutdown => (GoawayCause::Shutdown, SHUTTING_DOWN),
            CloseCause::IdleTimeout => (GoawayCause::IdleTimeout, IDLE),
            _ => return,
        };
        if let Some(goaway) = self.hooks.order.goaway(reason) {
            tracing::debug!(reason, in_flight = self.in_flight.len(), "sending GOAWAY");
            *self.goaway = Some((goaway, cause));
        }
    }
}
