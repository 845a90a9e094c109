//! How a connection asks the protocol's [`Order`] (the rules are in its
//! docs): each request it reads is started in order, tagged or
//! unanswered; a tag reused while in flight ends the reading; and the
//! GOAWAY is queued when reading stops for shutdown or the idle timeout.

use super::super::metrics::{CloseCause, GoawayCause};
use super::super::order::Order;
use super::{ConnectionProj, Served};
use std::task::Context;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::Service;

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
        }
    }
}
