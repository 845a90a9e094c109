//! An in-memory transport for the multiplexers' tests: what the client
//! writes goes down a bounded channel (the peer's socket buffer: when the
//! peer does not read, writes wait), what the peer answers comes up an
//! unbounded one.

use futures::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The client's end.
pub(crate) struct Fake<W, A> {
    sink: PollSender<W>,
    answers: mpsc::UnboundedReceiver<io::Result<A>>,
}

/// The peer's end.
pub(crate) struct Peer<W, A> {
    pub(crate) written: mpsc::Receiver<W>,
    pub(crate) answers: mpsc::UnboundedSender<io::Result<A>>,
}

/// A connection whose peer holds up to `buffer` unread messages.
pub(crate) fn pair<W: Send + 'static, A>(buffer: usize) -> (Fake<W, A>, Peer<W, A>) {
    let (tx, written) = mpsc::channel(buffer);
    let (answers, rx) = mpsc::unbounded_channel();
    (
        Fake {
            sink: PollSender::new(tx),
            answers: rx,
        },
        Peer { written, answers },
    )
}

/// Lets every task run until none can go on.
pub(crate) async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

impl<W, A> Peer<W, A> {
    /// What the client wrote and the peer has not read, in order.
    pub(crate) fn read_all(&mut self) -> Vec<W> {
        std::iter::from_fn(|| self.written.try_recv().ok()).collect()
    }

    pub(crate) fn send(&self, answer: A) {
        let _ = self.answers.send(Ok(answer));
    }

    /// The peer reads no more: the client's next write fails (a broken
    /// pipe), while what the peer sent before can still be read.
    pub(crate) fn stop_reading(&mut self) {
        self.written.close();
    }

    /// The connection breaks.
    pub(crate) fn reset(&self) {
        let _ = self
            .answers
            .send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")));
    }
}

fn broken_pipe<E>(_: E) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone")
}

impl<W: Send + 'static, A> Sink<W> for Fake<W, A> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().sink.poll_reserve(cx).map_err(broken_pipe)
    }

    fn start_send(self: Pin<&mut Self>, item: W) -> io::Result<()> {
        self.get_mut().sink.send_item(item).map_err(broken_pipe)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().sink.close();
        Poll::Ready(Ok(()))
    }
}

impl<W, A> Stream for Fake<W, A> {
    type Item = io::Result<A>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().answers.poll_recv(cx)
    }
}

impl<W, A> Unpin for Fake<W, A> {}
