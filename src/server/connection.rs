//! One server connection, served pipelined, with its timeouts and its share
//! of the buffer budget; its answers leave in request order, or by tag as
//! the protocol's [`Order`](super::Order) says.
//!
//! What it serves, and with which hooks and limits, is named in `served`.
//! Its I/O wrapper is in `metered`, its timeouts in `timers`, what it holds
//! of the budget in `share`; `in_flight` keeps its requests and decides
//! which answer may leave next; `order` starts each request as the
//! protocol's [`Order`](super::Order) says and sends the GOAWAY.

mod error;
mod in_flight;
mod metered;
mod order;
mod served;
mod share;
#[cfg(test)]
mod tests;
mod timers;

pub use error::ConnectionError;
pub(crate) use metered::Metered;
pub(crate) use served::{Hooks, HooksOf, Limits, Served};

use super::budget::{Budget, Share};
use super::close::CloseAfter;
use super::metrics::{CloseCause, ConnectionMetrics, GoawayCause};
use super::overload::{Overload, Overloaded};
use futures::{Sink, TryStream};
use in_flight::InFlight;
use pin_project::pin_project;
use share::Room;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use timers::{Resting, Timer, Timers};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::codec::Framed;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tower::Service;

/// Serves one transport with one service, pipelined.
///
/// It reads ahead, calls the service for up to `max_in_flight` requests at
/// once, writes each response as the protocol's [`Order`](super::Order) allows — a tagged
/// request's as soon as it is ready, any other's after the responses to
/// every request read before it — and flushes when nothing more is ready.
/// Once `shutdown` fires, a timeout expires, or reading ends (peer closed,
/// the decoder gave up on the framing, a tag reused while in flight), it
/// calls the service for nothing new, answers what it has, flushes and
/// closes. On shutdown and on the idle timeout it first sends the
/// protocol's GOAWAY, if it has one (see `order`).
///
/// It holds at most its [`Share`] of the server's [`Budget`]: past it, it
/// stops reading until the budget's pool grants more. A frame too large for
/// the budget ever to hold is answered by the [`Overload`] hook in its
/// place, and the connection closes.
#[pin_project(project = ConnectionProj)]
pub(crate) struct Connection<Io, P: Served<Req>, Req> {
    #[pin]
    transport: Framed<Metered<Io>, P::Codec>,
    service: P::Service,
    hooks: HooksOf<P, Req>,
    in_flight: InFlight<<P::Service as Service<Req>>::Future>,
    /// Bytes read and taken out of the read buffer by decoded frames.
    consumed: u64,
    share: Share,
    limits: Limits,
    #[pin]
    shutdown: WaitForCancellationFutureOwned,
    reading: bool,
    /// The protocol's GOAWAY, to be written before any other answer, and
    /// why it is sent.
    goaway: Option<(P::Response, GoawayCause)>,
    /// A GOAWAY was queued: the connection lingers before it closes.
    went_away: bool,
    /// Lingering, until then: the connection's sending side is closed.
    linger: Option<Pin<Box<Sleep>>>,
    /// The last read found nothing more from the peer.
    waiting_on_peer: bool,
    /// Reading waits for bytes of the budget's pool.
    waiting_on_budget: bool,
    /// The protocol's [`Admission`](super::Admission) said yes: the
    /// connection has its full share and the pool.
    admitted: bool,
    needs_flush: bool,
    /// The last write could not go on: the socket is full.
    write_blocked: bool,
    failed: Option<ConnectionError>,
    timers: Timers,
    metrics: ConnectionMetrics,
    /// Requests started since the metrics were last told.
    started: usize,
}

impl<Io, P: Served<Req>, Req> fmt::Debug for Connection<Io, P, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("in_flight", &self.in_flight.len())
            .field("in_flight_bytes", &self.in_flight.bytes())
            .field("reading", &self.reading)
            .finish_non_exhaustive()
    }
}

impl<Io, P: Served<Req>, Req> Connection<Io, P, Req> {
    pub(crate) fn new(
        transport: Framed<Metered<Io>, P::Codec>,
        service: P::Service,
        hooks: HooksOf<P, Req>,
        budget: Arc<Budget>,
        limits: Limits,
        shutdown: WaitForCancellationFutureOwned,
        metrics: ConnectionMetrics,
    ) -> Self {
        let timers = Timers::new(limits.idle_timeout, limits.read_timeout, limits.write_timeout);
        Connection {
            transport,
            service,
            hooks,
            in_flight: InFlight::new(),
            consumed: 0,
            share: Share::new(budget),
            limits: Limits {
                max_in_flight: limits.max_in_flight.max(1),
                ..limits
            },
            shutdown,
            reading: true,
            goaway: None,
            went_away: false,
            linger: None,
            waiting_on_peer: false,
            waiting_on_budget: false,
            admitted: false,
            needs_flush: false,
            write_blocked: false,
            failed: None,
            timers,
            metrics,
            started: 0,
        }
    }
}

/// How many read-write rounds one poll may run before yielding to the runtime.
const ROUNDS_PER_POLL: usize = 16;

impl<Io: AsyncRead + AsyncWrite, P: Served<Req>, Req> Future for Connection<Io, P, Req> {
    type Output = Result<(), ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        for _ in 0..ROUNDS_PER_POLL {
            if *this.reading && this.shutdown.as_mut().poll(cx).is_ready() {
                this.stop_reading(CloseCause::Shutdown);
            }
            let read = this.read(cx);
            let wrote = match this.write(cx) {
                Ok(wrote) => wrote,
                Err(error) => {
                    this.metrics.closing(CloseCause::WriteError);
                    return Poll::Ready(Err(error));
                }
            };
            this.end_round();
            if !read && !wrote {
                if let Some(timer) = this.poll_timers(cx) {
                    tracing::debug!(?timer, "connection timed out; closing it");
                    if let (Timer::Write, Some(timeout)) = (timer, this.limits.write_timeout) {
                        this.metrics.closing(CloseCause::WriteTimeout);
                        return Poll::Ready(Err(ConnectionError::WriteTimedOut(timeout)));
                    }
                    match (timer, this.limits.read_timeout) {
                        (Timer::PartialFrame, Some(waited)) if *this.waiting_on_budget => {
                            this.refuse(Overloaded::BufferBudgetWait { waited });
                        }
                        (Timer::Idle, _) => this.stop_reading(CloseCause::IdleTimeout),
                        _ => this.stop_reading(CloseCause::ReadTimeout),
                    }
                    continue;
                }
                return this.finish(cx);
            }
        }
        // Still busy: let other connections run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<Io: AsyncRead + AsyncWrite, P: Served<Req>, Req> ConnectionProj<'_, Io, P, Req> {
    /// Answers the frame being read through the overload hook, for
    /// `reason`, and stops reading.
    fn refuse(&mut self, reason: Overloaded) {
        tracing::debug!(%reason, "refusing the frame being read: closing the connection");
        self.metrics.overloaded(&reason);
        if let Some(response) = self.hooks.overload.overloaded(&reason) {
            self.in_flight.push_answered(Ok(response));
        }
        let cause = match reason {
            Overloaded::FrameBeforeAdmission { .. } => CloseCause::FrameBeforeAdmission,
            _ => CloseCause::BufferBudget,
        };
        self.stop_reading(cause);
    }

    /// The wire bytes of the frame just decoded.
    fn frame_size(&mut self) -> usize {
        let taken = self
            .transport
            .get_ref()
            .bytes_read()
            .saturating_sub(self.transport.read_buffer().len() as u64);
        let size = taken.saturating_sub(*self.consumed);
        *self.consumed = taken;
        usize::try_from(size).unwrap_or(usize::MAX)
    }

    /// Reads and starts requests while there is room; `true` if any started.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut started = false;
        *self.waiting_on_peer = false;
        *self.waiting_on_budget = false;
        if *self.reading {
            self.admit();
            self.allow_reading();
        }
        while *self.reading && self.in_flight.len() < self.limits.max_in_flight {
            match self.service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    let error = error.into();
                    tracing::debug!(%error, "service not ready; closing the connection");
                    self.failed.get_or_insert(ConnectionError::Service(error));
                    self.stop_reading(CloseCause::ServiceError);
                    break;
                }
                Poll::Pending => break,
            }
            match self.transport.as_mut().try_poll_next(cx) {
                Poll::Ready(Some(Ok(request))) => {
                    self.timers.frame_decoded();
                    let size = self.frame_size();
                    self.start(request, size, cx);
                    started = true;
                    // A credential just handed to the service lets the
                    // frames behind it use the connection's full limit.
                    if self.admit() {
                        self.allow_reading();
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    // The decoder gave up (bad framing, over-limit, I/O):
                    // answer what was received, then close.
                    tracing::debug!(%error, "stopped reading a connection");
                    self.stop_reading(CloseCause::ProtocolError);
                }
                Poll::Ready(None) => self.stop_reading(CloseCause::PeerClosed),
                Poll::Pending if self.transport.get_ref().starved() => match self.reserve(cx) {
                    Room::Granted => self.allow_reading(),
                    Room::Waiting => {
                        *self.waiting_on_budget = true;
                        break;
                    }
                    Room::Full => break,
                    refused => {
                        let budget = self.share.budget();
                        if let Some(reason) = refused.refusal(budget.limit(), budget.max_waiters()) {
                            self.refuse(reason);
                        }
                        started = true;
                    }
                },
                Poll::Pending => {
                    // Before admission, a frame whose header says it is
                    // over the limit is refused at once, not after the
                    // peer has sent the limit's worth of it.
                    if let Some(reason) = self.over_limit_before_admission() {
                        self.refuse(reason);
                        started = true;
                        break;
                    }
                    *self.waiting_on_peer = true;
                    break;
                }
            }
        }
        started
    }

    /// Writes the GOAWAY, if one is due, then the responses that may leave,
    /// and flushes; `true` if any written.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionError> {
        let mut wrote = false;
        *self.write_blocked = false;
        while !self.in_flight.is_empty() || self.goaway.is_some() {
            match Sink::<P::Response>::poll_ready(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => {
                    *self.write_blocked = true;
                    break;
                }
            }
            if let Some((goaway, cause)) = self.goaway.take() {
                let before = self.transport.write_buffer().len();
                self.transport
                    .as_mut()
                    .start_send(goaway)
                    .map_err(|e| ConnectionError::Write(e.into()))?;
                // Counted if the codec wrote it: a connection speaking a
                // version of the protocol that has no GOAWAY writes none.
                if self.transport.write_buffer().len() > before {
                    self.metrics.goaway(cause);
                }
                *self.needs_flush = true;
                wrote = true;
                continue;
            }
            let (output, tag) = match self.in_flight.poll_next(cx) {
                Poll::Ready(Some(answer)) => answer,
                Poll::Ready(None) | Poll::Pending => break,
            };
            match output {
                Ok(response) => {
                    let last = self.hooks.close.close_after(&response);
                    self.transport
                        .as_mut()
                        .start_send(response)
                        .map_err(|e| ConnectionError::Write(e.into()))?;
                    *self.needs_flush = true;
                    wrote = true;
                    if last {
                        // The protocol ends the conversation here: what was
                        // read after this request is dropped unanswered.
                        tracing::debug!("the answer closes the connection");
                        self.metrics.closing(CloseCause::CloseAfter);
                        self.stop_after_this();
                    }
                }
                Err(error) if tag.is_some() => {
                    // A tagged request's error has no response to send, but
                    // no later answer waits for it: answer the rest, close.
                    let error = error.into();
                    tracing::debug!(%error, tag, "service failed a tagged request; closing the connection");
                    self.stop_reading(CloseCause::ServiceError);
                    self.failed.get_or_insert(ConnectionError::Service(error));
                }
                Err(error) => {
                    // A service error has no response to send: stop here, so
                    // that no later response is written out of its place.
                    let error = error.into();
                    tracing::debug!(%error, "service failed a request; closing the connection");
                    self.metrics.closing(CloseCause::ServiceError);
                    self.stop_after_this();
                    self.failed.get_or_insert(ConnectionError::Service(error));
                }
            }
        }
        if *self.needs_flush {
            match Sink::<P::Response>::poll_flush(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => *self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => *self.write_blocked = true,
            }
        }
        Ok(wrote)
    }

    /// Reads nothing more, because of `cause` (the first counts); tells
    /// the peer so with the protocol's GOAWAY where `cause` calls for one.
    fn stop_reading(&mut self, cause: CloseCause) {
        if *self.reading {
            self.metrics.closing(cause);
            self.going_away(cause);
        }
        *self.reading = false;
    }

    /// Reads nothing more and drops every request still in flight: the
    /// connection closes once what is written is flushed.
    fn stop_after_this(&mut self) {
        self.in_flight.clear();
        *self.reading = false;
    }

    /// Polls the timers with where the connection rests; returns the timer
    /// that expired, if one did.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<Timer> {
        // Waiting for the pool counts against the read timeout too: for a
        // connection that holds pool bytes meanwhile, because it keeps
        // others waiting; for one that holds none, so that it does not
        // queue without bound behind peers that stall (it is answered
        // through the overload hook when its time is up).
        let stalled = *self.waiting_on_peer || *self.waiting_on_budget;
        let resting = Resting {
            waiting_on_peer: *self.reading && stalled,
            partial_frame: !self.transport.read_buffer().is_empty(),
            quiet: self.in_flight.is_empty() && self.goaway.is_none() && !*self.needs_flush,
            write_blocked: self.write_blocked.then(|| self.transport.write_buffer().len()),
        };
        self.timers.poll_expired(cx, resting)
    }

    /// Closes once reading has ended and every response is out; after a
    /// GOAWAY, lingers first (see `order`).
    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        if *self.reading || !self.in_flight.is_empty() || self.goaway.is_some() || *self.needs_flush {
            return Poll::Pending;
        }
        if self.linger.is_none() {
            let closed = futures::ready!(Sink::<P::Response>::poll_close(self.transport.as_mut(), cx));
            if let Err(error) = closed {
                let error = ConnectionError::Write(error.into());
                return Poll::Ready(Err(self.failed.take().unwrap_or(error)));
            }
            if !*self.went_away {
                return Poll::Ready(self.failed.take().map_or(Ok(()), Err));
            }
            *self.linger = Some(Box::pin(tokio::time::sleep(order::LINGER)));
        }
        futures::ready!(self.poll_linger(cx));
        Poll::Ready(self.failed.take().map_or(Ok(()), Err))
    }
}
