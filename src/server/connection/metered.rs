//! [`Metered`]: the connection's I/O, counting the bytes read through it so
//! that each request's size on the wire is known without knowing the codec,
//! and reading no more than the connection's budget allows.

use pin_project::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An I/O object that counts the bytes read through it, and reads at most
/// an allowance of bytes.
///
/// The connection compares the count with its codec's read buffer to learn
/// how many wire bytes each decoded request took, without knowing the codec.
/// It sets the allowance from its share of the budget; when the allowance is
/// spent, a read returns `Pending` *without* registering a waker and
/// [`starved`](Self::starved) says so: the connection, the only reader,
/// then asks the budget for more (and waits on it) before reading again.
#[pin_project]
#[derive(Debug)]
pub(crate) struct Metered<Io> {
    #[pin]
    io: Io,
    read: u64,
    written: u64,
    allowance: usize,
    starved: bool,
}

impl<Io> Metered<Io> {
    pub(crate) fn new(io: Io) -> Self {
        Metered {
            io,
            read: 0,
            written: 0,
            allowance: usize::MAX,
            starved: false,
        }
    }

    /// Bytes read through this so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Bytes written through this so far.
    pub(super) fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Reads at most `bytes` more, until the next call.
    pub(super) fn allow(self: Pin<&mut Self>, bytes: usize) {
        let this = self.project();
        *this.allowance = bytes;
        *this.starved = false;
    }

    /// The last read found the allowance spent.
    pub(super) fn starved(&self) -> bool {
        self.starved
    }
}

impl<Io: AsyncRead> AsyncRead for Metered<Io> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.allowance == 0 {
            *this.starved = true;
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = if buf.remaining() <= *this.allowance {
            this.io.poll_read(cx, buf)
        } else {
            // Read into the first `allowance` bytes of the buffer only.
            let room = buf.initialize_unfilled_to(*this.allowance);
            let mut limited = ReadBuf::new(room);
            let result = this.io.poll_read(cx, &mut limited);
            let n = limited.filled().len();
            buf.advance(n);
            result
        };
        let n = buf.filled().len() - before;
        *this.read += n as u64;
        *this.allowance -= n;
        result
    }
}

impl<Io: AsyncWrite> AsyncWrite for Metered<Io> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = futures::ready!(this.io.poll_write(cx, buf))?;
        *this.written += written as u64;
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = futures::ready!(this.io.poll_write_vectored(cx, bufs))?;
        *this.written += written as u64;
        Poll::Ready(Ok(written))
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
