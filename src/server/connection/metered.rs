//! [`Metered`]: the connection's I/O, counting the bytes read through it so
//! that each request's size on the wire is known without knowing the codec.

use pin_project::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

    /// Bytes read through this so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.read
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
