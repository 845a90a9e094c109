//! What a transport is, and the glue that makes one from a socket and a codec.
//!
//! wirestack's client and server never see bytes. They see a *transport*: a
//! [`Sink`] of outgoing messages and a [`Stream`] of incoming ones, which is
//! exactly what tokio-util's [`Framed`] makes of any `AsyncRead + AsyncWrite`
//! and any codec. The [`Transport`] trait names that shape so that bounds stay
//! readable; it is implemented for every type that has it.

use futures::{Sink, Stream};
use std::io;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;

/// A boxed error, as tower uses at the boundary between layers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A message transport: sends `Req`s, receives `Result<Self::Response, Self::Error>`.
///
/// Implemented for any `Sink<Req> + Stream<Item = Result<Resp, E>>` whose sink
/// and stream share an error type, such as `Framed<TcpStream, C>` for a codec
/// `C` that encodes `Req` and decodes `Resp`.
pub trait Transport<Req>:
    Sink<Req, Error = <Self as Transport<Req>>::Error>
    + Stream<Item = Result<Self::Response, <Self as Transport<Req>>::Error>>
{
    /// What the peer sends back.
    type Response;
    /// What a failed read or write reports.
    type Error;
}

impl<T, Req, Resp, E> Transport<Req> for T
where
    T: Sink<Req, Error = E> + Stream<Item = Result<Resp, E>>,
{
    type Response = Resp;
    type Error = E;
}

/// Connects to `addr` over TCP with Nagle's algorithm off, framed by `codec`.
///
/// Pipelining coalesces writes itself, so `TCP_NODELAY` only removes latency.
pub async fn connect<A: ToSocketAddrs, C>(addr: A, codec: C) -> io::Result<Framed<TcpStream, C>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Framed::new(stream, codec))
}
