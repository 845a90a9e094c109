//! One server connection, served pipelined, with its timeouts and its share
//! of the buffer budget.

use super::budget::{Budget, Charge};
use super::overload::{Overload, Overloaded};
use crate::failure::BoxError;
use futures::future::{Either, Ready};
use futures::stream::FuturesOrdered;
use futures::{Sink, Stream, TryStream};
use pin_project::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
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

/// An I/O object that counts the bytes read through it.
///
/// The connection compares that count with its codec's read buffer to learn
/// how many wire bytes each decoded request took, without knowing the codec.
#[pin_project]
#[derive(Debug)]
pub(crate) struct Metered<Io> {
    #[pin]
    io: Io,
    read: u64,
}

impl<Io> Metered<Io> {
    pub(crate) fn new(io: Io) -> Self {
        Metered { io, read: 0 }
    }
}

impl<Io: AsyncRead> AsyncRead for Metered<Io> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        *this.read += (buf.filled().len() - before) as u64;
        result
    }
}

impl<Io: AsyncWrite> AsyncWrite for Metered<Io> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// The limits one connection is served with.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_in_flight: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
}

/// A request being worked on: the service's future, or an answer the
/// server already has (a shed request).
type InFlight<S, Req> = Either<
    <S as Service<Req>>::Future,
    Ready<Result<<S as Service<Req>>::Response, <S as Service<Req>>::Error>>,
>;

/// Which timer is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Nothing buffered, nothing in flight, waiting on the peer.
    Idle,
    /// Part of a frame buffered, waiting on the peer for the rest.
    PartialFrame,
    /// Responses to write, waiting on the peer to read.
    Write,
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
    in_flight: FuturesOrdered<InFlight<S, Req>>,
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
    /// Since when the socket has taken no byte, and how many were waiting then.
    stalled_since: Option<(Instant, usize)>,
    /// Since when the connection has been idle, or has had a partial frame.
    idle_since: Option<Instant>,
    partial_since: Option<Instant>,
    timer: Option<(Timer, Pin<Box<Sleep>>)>,
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
        Connection {
            transport,
            service,
            overload,
            in_flight: FuturesOrdered::new(),
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
            stalled_since: None,
            idle_since: None,
            partial_since: None,
            timer: None,
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
            .read
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
                    *self.idle_since = None;
                    *self.partial_since = None;
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
                                self.in_flight
                                    .push_back(Either::Right(futures::future::ready(Ok(response))));
                                self.in_flight_sizes.push_back(0);
                            }
                            None => {
                                tracing::debug!(%reason, "shedding load: closing a connection");
                                *self.reading = false;
                                break;
                            }
                        }
                    } else {
                        self.in_flight.push_back(Either::Left(self.service.call(request)));
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
            let output = match Pin::new(&mut *self.in_flight).poll_next(cx) {
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

    /// Arms the idle, partial-frame or write timer for the state the
    /// connection rests in; returns the timer if it has expired.
    ///
    /// Only time spent waiting on the peer counts: a connection that stopped
    /// reading because its own requests are in flight is neither idle nor
    /// slow. The write timer restarts whenever the socket takes a byte.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<Timer> {
        let waiting = *self.reading && *self.waiting_on_peer;
        let buffered = !self.transport.read_buffer().is_empty();
        let quiet = self.in_flight.is_empty() && !*self.needs_flush;
        let now = Instant::now();

        if waiting && buffered {
            self.partial_since.get_or_insert(now);
        } else {
            *self.partial_since = None;
        }
        if waiting && !buffered && quiet {
            self.idle_since.get_or_insert(now);
        } else {
            *self.idle_since = None;
        }

        if *self.write_blocked {
            let unwritten = self.transport.write_buffer().len();
            match *self.stalled_since {
                Some((_, before)) if before == unwritten => {}
                _ => *self.stalled_since = Some((now, unwritten)),
            }
        } else {
            *self.stalled_since = None;
        }

        let deadline = [
            (Timer::PartialFrame, *self.partial_since, self.limits.read_timeout),
            (Timer::Idle, *self.idle_since, self.limits.idle_timeout),
            (
                Timer::Write,
                self.stalled_since.map(|(since, _)| since),
                self.limits.write_timeout,
            ),
        ]
        .into_iter()
        .filter_map(|(kind, since, timeout)| Some((kind, since? + timeout?)))
        .min_by_key(|&(_, deadline)| deadline);
        let Some((kind, deadline)) = deadline else {
            *self.timer = None;
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
                *self.timer = None;
                Some(kind)
            }
            Poll::Pending => None,
        }
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

#[cfg(test)]
mod tests {
    //! The timers, on an in-memory pipe with the clock paused: no real waiting.

    use super::*;
    use crate::server::Refuse;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::codec::LinesCodec;
    use tokio_util::sync::CancellationToken;

    const IDLE: Duration = Duration::from_secs(60);
    const READ: Duration = Duration::from_secs(10);
    const WRITE: Duration = Duration::from_secs(20);

    /// A connection's task: how it ended and how long it lasted.
    type Served = tokio::task::JoinHandle<(Result<(), ConnectionError>, Duration)>;

    /// Serves an echo-lines service on one end of a pipe of `capacity`
    /// bytes; returns the other end and the connection's task, which
    /// reports how long (in paused time) it lasted.
    fn serve_lines(capacity: usize) -> (DuplexStream, Served) {
        let (peer, server) = tokio::io::duplex(capacity);
        let service = tower::service_fn(|line: String| async move { Ok::<_, Infallible>(line) });
        let connection = Connection::new(
            Framed::new(Metered::new(server), LinesCodec::new()),
            service,
            Refuse,
            Budget::new(usize::MAX),
            Limits {
                max_in_flight: 4,
                idle_timeout: Some(IDLE),
                read_timeout: Some(READ),
                write_timeout: Some(WRITE),
            },
            CancellationToken::new().cancelled_owned(),
        );
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let result = connection.await;
            (result, start.elapsed())
        });
        (peer, task)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes_after_the_idle_timeout() {
        let (mut peer, task) = serve_lines(1024);
        peer.write_all(b"hello\n").await.unwrap();
        let mut echo = [0u8; 6];
        peer.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello\n");
        let (result, lasted) = task.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(lasted >= IDLE && lasted < IDLE + READ, "lasted {lasted:?}");
        assert_eq!(peer.read(&mut echo).await.unwrap(), 0, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_frame_closes_after_the_read_timeout_however_it_trickles() {
        let (mut peer, task) = serve_lines(1024);
        // One byte every 3 s: bytes arriving are not a frame finishing.
        // The server closes in the middle of it, failing a later write.
        for byte in b"slowly" {
            if peer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let (result, lasted) = task.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(
            lasted >= READ && lasted < READ + Duration::from_secs(3),
            "lasted {lasted:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn frames_that_keep_finishing_keep_the_connection() {
        let (mut peer, task) = serve_lines(1024);
        let mut echo = [0u8; 3];
        // A frame finishing every 6 s, each sent in two halves 3 s apart:
        // 60 s in all, several read timeouts long.
        for _ in 0..10 {
            peer.write_all(b"h").await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            peer.write_all(b"i\n").await.unwrap();
            peer.read_exact(&mut echo).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        assert!(
            !task.is_finished(),
            "closed a connection that kept finishing frames"
        );
        drop(peer);
        let (result, _) = task.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_nothing_is_dropped_after_the_write_timeout() {
        // A 64-byte pipe: the echoes fill it at once, and nobody reads them.
        let (mut peer, task) = serve_lines(64);
        let writer = tokio::spawn(async move {
            for _ in 0..100 {
                if peer.write_all(b"0123456789abcdef\n").await.is_err() {
                    return;
                }
            }
            // Keep the pipe open: only the server may end this.
            std::future::pending::<()>().await;
        });
        let (result, lasted) = task.await.unwrap();
        assert!(
            matches!(result, Err(ConnectionError::WriteTimedOut(t)) if t == WRITE),
            "{result:?}"
        );
        assert!(lasted >= WRITE && lasted < WRITE + READ, "lasted {lasted:?}");
        writer.abort();
    }
}
