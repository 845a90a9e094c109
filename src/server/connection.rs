//! One server connection, served pipelined, with its timeouts and its share
//! of the buffer budget.
//!
//! Its I/O wrapper is in `metered`, its timeouts in `timers`.

mod in_flight;
mod metered;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use metered::Metered;

use super::budget::{Budget, Charge};
use super::overload::{Overload, Overloaded};
use crate::failure::BoxError;
use futures::{Sink, TryStream};
use in_flight::InFlight;
use pin_project::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use timers::{Resting, Timer, Timers};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tower::Service;

/// Why a connection ended other than by the peer closing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Writing a response failed.
    #[error("writing to the connection failed: {0}")]
    Write(#[source] BoxError),
    /// The service failed a request; the connection is closed after the
    /// responses before it are written.
    #[error("the service failed: {0}")]
    Service(#[source] BoxError),
    /// The peer read none of its responses for the write timeout; the
    /// connection was closed with responses unwritten.
    #[error("the peer read nothing for {0:?}")]
    WriteTimedOut(Duration),
}

/// The limits one connection is served with.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_in_flight: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
}

/// Serves one transport with one service, pipelined.
///
/// It reads ahead, calls the service for up to `max_in_flight` requests at
/// once, writes the responses in request order and flushes when nothing more
/// is ready. Once `shutdown` fires, a timeout expires, or reading ends (peer
/// closed, or the decoder gave up on the framing), it calls the service for
/// nothing new, answers what it has, flushes and closes.
///
/// While the server's [`Budget`] is exhausted, each request it decodes is
/// answered by the [`Overload`] hook instead of the service.
#[pin_project(project = ConnectionProj)]
pub(crate) struct Connection<Io, C, S, Req, O>
where
    S: Service<Req>,
{
    #[pin]
    transport: Framed<Metered<Io>, C>,
    service: S,
    overload: O,
    in_flight: InFlight<S::Future>,
    /// The wire bytes of each request in `in_flight`, in the same order.
    in_flight_sizes: VecDeque<usize>,
    in_flight_bytes: usize,
    /// Bytes read and taken out of the read buffer by decoded frames.
    consumed: u64,
    budget: Arc<Budget>,
    charge: Charge,
    limits: Limits,
    #[pin]
    shutdown: WaitForCancellationFutureOwned,
    reading: bool,
    /// The last read found nothing more from the peer.
    waiting_on_peer: bool,
    needs_flush: bool,
    /// The last write could not go on: the socket is full.
    write_blocked: bool,
    failed: Option<ConnectionError>,
    timers: Timers,
}

impl<Io, C, S, Req, O> fmt::Debug for Connection<Io, C, S, Req, O>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("in_flight", &self.in_flight.len())
            .field("in_flight_bytes", &self.in_flight_bytes)
            .field("reading", &self.reading)
            .finish_non_exhaustive()
    }
}

impl<Io, C, S, Req, O> Connection<Io, C, S, Req, O>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        transport: Framed<Metered<Io>, C>,
        service: S,
        overload: O,
        budget: Arc<Budget>,
        limits: Limits,
        shutdown: WaitForCancellationFutureOwned,
    ) -> Self {
        let timers = Timers::new(limits.idle_timeout, limits.read_timeout, limits.write_timeout);
        Connection {
            transport,
            service,
            overload,
            in_flight: InFlight::new(),
            in_flight_sizes: VecDeque::new(),
            in_flight_bytes: 0,
            consumed: 0,
            charge: Charge::new(budget.clone()),
            budget,
            limits: Limits {
                max_in_flight: limits.max_in_flight.max(1),
                ..limits
            },
            shutdown,
            reading: true,
            waiting_on_peer: false,
            needs_flush: false,
            write_blocked: false,
            failed: None,
            timers,
        }
    }
}

/// How many read-write rounds one poll may run before yielding to the runtime.
const ROUNDS_PER_POLL: usize = 16;

impl<Io, C, S, Req, O> Future for Connection<Io, C, S, Req, O>
where
    Io: AsyncRead + AsyncWrite,
    C: Decoder<Item = Req> + Encoder<S::Response>,
    <C as Decoder>::Error: fmt::Display,
    <C as Encoder<S::Response>>::Error: Into<BoxError>,
    S: Service<Req>,
    S::Error: Into<BoxError>,
    O: Overload<S::Response>,
{
    type Output = Result<(), ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        for _ in 0..ROUNDS_PER_POLL {
            if *this.reading && this.shutdown.as_mut().poll(cx).is_ready() {
                *this.reading = false;
            }
            let read = this.read(cx);
            let wrote = match this.write(cx) {
                Ok(wrote) => wrote,
                Err(error) => return Poll::Ready(Err(error)),
            };
            this.update_charge();
            if !read && !wrote {
                if let Some(timer) = this.poll_timers(cx) {
                    tracing::debug!(?timer, "connection timed out; closing it");
                    if let (Timer::Write, Some(timeout)) = (timer, this.limits.write_timeout) {
                        return Poll::Ready(Err(ConnectionError::WriteTimedOut(timeout)));
                    }
                    *this.reading = false;
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

impl<Io, C, S, Req, O> ConnectionProj<'_, Io, C, S, Req, O>
where
    Io: AsyncRead + AsyncWrite,
    C: Decoder<Item = Req> + Encoder<S::Response>,
    <C as Decoder>::Error: fmt::Display,
    <C as Encoder<S::Response>>::Error: Into<BoxError>,
    S: Service<Req>,
    S::Error: Into<BoxError>,
    O: Overload<S::Response>,
{
    /// Charges the budget for the read buffer and the requests in flight.
    fn update_charge(&mut self) {
        let buffered = self.transport.read_buffer().len();
        self.charge.set(buffered + *self.in_flight_bytes);
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
        while *self.reading && self.in_flight.len() < self.limits.max_in_flight {
            match self.service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    let error = error.into();
                    tracing::debug!(%error, "service not ready; closing the connection");
                    self.failed.get_or_insert(ConnectionError::Service(error));
                    *self.reading = false;
                    break;
                }
                Poll::Pending => break,
            }
            match self.transport.as_mut().try_poll_next(cx) {
                Poll::Ready(Some(Ok(request))) => {
                    self.timers.frame_decoded();
                    let size = self.frame_size();
                    // The budget is read, not updated, per request: this
                    // connection publishes its charge once per round, which
                    // keeps the shared counter off the per-request path at
                    // the cost of lagging by what one round read.
                    if self.budget.exhausted() {
                        let reason = Overloaded::BufferBudget {
                            limit: self.budget.limit(),
                        };
                        drop(request);
                        match self.overload.overloaded(&reason) {
                            Some(response) => {
                                self.in_flight.push_answered(Ok(response));
                                self.in_flight_sizes.push_back(0);
                            }
                            None => {
                                tracing::debug!(%reason, "shedding load: closing a connection");
                                *self.reading = false;
                                break;
                            }
                        }
                    } else {
                        let future = self.service.call(request);
                        self.in_flight.push(future, cx);
                        self.in_flight_sizes.push_back(size);
                        *self.in_flight_bytes += size;
                    }
                    started = true;
                }
                Poll::Ready(Some(Err(error))) => {
                    // The decoder gave up (bad framing, over-limit, I/O):
                    // answer what was received, then close.
                    tracing::debug!(%error, "stopped reading a connection");
                    *self.reading = false;
                }
                Poll::Ready(None) => *self.reading = false,
                Poll::Pending => {
                    *self.waiting_on_peer = true;
                    break;
                }
            }
        }
        started
    }

    /// Writes finished responses in order and flushes; `true` if any written.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionError> {
        let mut wrote = false;
        *self.write_blocked = false;
        while !self.in_flight.is_empty() {
            match Sink::<S::Response>::poll_ready(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => {
                    *self.write_blocked = true;
                    break;
                }
            }
            let output = match self.in_flight.poll_next(cx) {
                Poll::Ready(Some(output)) => output,
                Poll::Ready(None) | Poll::Pending => break,
            };
            let size = self.in_flight_sizes.pop_front().unwrap_or(0);
            *self.in_flight_bytes = self.in_flight_bytes.saturating_sub(size);
            match output {
                Ok(response) => {
                    self.transport
                        .as_mut()
                        .start_send(response)
                        .map_err(|e| ConnectionError::Write(e.into()))?;
                    *self.needs_flush = true;
                    wrote = true;
                }
                Err(error) => {
                    // A service error has no response to send: stop here, so
                    // that no later response is written out of its place.
                    let error = error.into();
                    tracing::debug!(%error, "service failed a request; closing the connection");
                    self.in_flight.clear();
                    self.in_flight_sizes.clear();
                    *self.in_flight_bytes = 0;
                    *self.reading = false;
                    self.failed.get_or_insert(ConnectionError::Service(error));
                }
            }
        }
        if *self.needs_flush {
            match Sink::<S::Response>::poll_flush(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => *self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => *self.write_blocked = true,
            }
        }
        Ok(wrote)
    }

    /// Polls the timers with where the connection rests; returns the timer
    /// that expired, if one did.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<Timer> {
        let resting = Resting {
            waiting_on_peer: *self.reading && *self.waiting_on_peer,
            partial_frame: !self.transport.read_buffer().is_empty(),
            quiet: self.in_flight.is_empty() && !*self.needs_flush,
            write_blocked: self.write_blocked.then(|| self.transport.write_buffer().len()),
        };
        self.timers.poll_expired(cx, resting)
    }

    /// Closes once reading has ended and every response is out.
    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        if *self.reading || !self.in_flight.is_empty() || *self.needs_flush {
            return Poll::Pending;
        }
        let closed = futures::ready!(Sink::<S::Response>::poll_close(self.transport.as_mut(), cx));
        Poll::Ready(match self.failed.take() {
            Some(error) => Err(error),
            None => closed.map_err(|e| ConnectionError::Write(e.into())),
        })
    }
}
