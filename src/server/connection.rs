//! One server connection, served pipelined.

use crate::transport::BoxError;
use futures::stream::FuturesOrdered;
use futures::{Sink, Stream, TryStream};
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tower::Service;

/// Why a connection ended other than by the peer closing it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Writing a response failed.
    #[error("writing to the connection failed: {0}")]
    Write(#[source] BoxError),
    /// The service failed a request; the connection is closed after the
    /// responses before it are written.
    #[error("the service failed: {0}")]
    Service(#[source] BoxError),
}

/// Serves one transport with one service, pipelined.
///
/// It reads ahead, calls the service for up to `max_in_flight` requests at
/// once, writes the responses in request order and flushes when nothing more
/// is ready. Once `shutdown` fires, or reading ends (peer closed, or the
/// decoder gave up on the framing), it calls the service for nothing new,
/// answers what it has, flushes and closes.
#[pin_project(project = ConnectionProj)]
pub(crate) struct Connection<T, S, Req>
where
    S: Service<Req>,
{
    #[pin]
    transport: T,
    service: S,
    in_flight: FuturesOrdered<S::Future>,
    max_in_flight: usize,
    #[pin]
    shutdown: WaitForCancellationFutureOwned,
    reading: bool,
    needs_flush: bool,
    failed: Option<ConnectionError>,
}

impl<T, S, Req> fmt::Debug for Connection<T, S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("in_flight", &self.in_flight.len())
            .field("reading", &self.reading)
            .finish_non_exhaustive()
    }
}

impl<T, S, Req> Connection<T, S, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        transport: T,
        service: S,
        max_in_flight: usize,
        shutdown: WaitForCancellationFutureOwned,
    ) -> Self {
        Connection {
            transport,
            service,
            in_flight: FuturesOrdered::new(),
            max_in_flight: max_in_flight.max(1),
            shutdown,
            reading: true,
            needs_flush: false,
            failed: None,
        }
    }
}

/// How many read-write rounds one poll may run before yielding to the runtime.
const ROUNDS_PER_POLL: usize = 16;

impl<T, S, Req> Future for Connection<T, S, Req>
where
    T: TryStream<Ok = Req> + Sink<S::Response>,
    <T as Sink<S::Response>>::Error: Into<BoxError>,
    <T as TryStream>::Error: fmt::Display,
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<(), ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.reading_should_stop(cx) {
            *this.reading = false;
        }
        for _ in 0..ROUNDS_PER_POLL {
            let read = this.read(cx);
            let wrote = match this.write(cx) {
                Ok(wrote) => wrote,
                Err(error) => return Poll::Ready(Err(error)),
            };
            if !read && !wrote {
                return this.finish(cx);
            }
        }
        // Still busy: let other connections run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T, S, Req> ConnectionProj<'_, T, S, Req>
where
    T: TryStream<Ok = Req> + Sink<S::Response>,
    <T as Sink<S::Response>>::Error: Into<BoxError>,
    <T as TryStream>::Error: fmt::Display,
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    fn reading_should_stop(&mut self, cx: &mut Context<'_>) -> bool {
        *self.reading && self.shutdown.as_mut().poll(cx).is_ready()
    }

    /// Reads and starts requests while there is room; `true` if any started.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut started = false;
        while *self.reading && self.in_flight.len() < *self.max_in_flight {
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
                    self.in_flight.push_back(self.service.call(request));
                    started = true;
                }
                Poll::Ready(Some(Err(error))) => {
                    // The decoder gave up (bad framing, over-limit, I/O):
                    // answer what was received, then close.
                    tracing::debug!(%error, "stopped reading a connection");
                    *self.reading = false;
                }
                Poll::Ready(None) => *self.reading = false,
                Poll::Pending => break,
            }
        }
        started
    }

    /// Writes finished responses in order and flushes; `true` if any written.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionError> {
        let mut wrote = false;
        while !self.in_flight.is_empty() {
            match Sink::<S::Response>::poll_ready(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => break,
            }
            match Pin::new(&mut *self.in_flight).poll_next(cx) {
                Poll::Ready(Some(Ok(response))) => {
                    self.transport
                        .as_mut()
                        .start_send(response)
                        .map_err(|e| ConnectionError::Write(e.into()))?;
                    *self.needs_flush = true;
                    wrote = true;
                }
                Poll::Ready(Some(Err(error))) => {
                    // A service error has no response to send: stop here, so
                    // that no later response is written out of its place.
                    let error = error.into();
                    tracing::debug!(%error, "service failed a request; closing the connection");
                    self.in_flight.clear();
                    *self.reading = false;
                    self.failed.get_or_insert(ConnectionError::Service(error));
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if *self.needs_flush {
            match Sink::<S::Response>::poll_flush(self.transport.as_mut(), cx) {
                Poll::Ready(Ok(())) => *self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(ConnectionError::Write(e.into())),
                Poll::Pending => {}
            }
        }
        Ok(wrote)
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
