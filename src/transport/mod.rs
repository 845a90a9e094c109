//! What a transport is, and how one is made from a socket and a codec.
//!
//! wirestack's client and server never see bytes. They see a *transport*: a
//! [`Sink`] of outgoing messages and a [`Stream`] of incoming ones, which is
//! exactly what tokio-util's [`Framed`] makes of any `AsyncRead + AsyncWrite`
//! and any codec. The [`Transport`] trait names that shape so that bounds stay
//! readable; it is implemented for every type that has it.
//!
//! * [`Codec`] names what a client needs of a codec: it encodes requests
//!   and decodes responses with one error type.
//! * [`TcpConnector`] makes transports: a new TCP connection framed by a
//!   clone of a codec, for every address it is called with. It is the
//!   connector the [reconnect](crate::reconnect) layer uses, through
//!   [`pipeline::MakePipeline`](crate::pipeline::MakePipeline). With the
//!   `tls` feature, `tls::TlsConnector` makes TLS transports the same way.
//! * [`OnConnect`] runs a [`Handshake`] (an authentication exchange, say)
//!   on every transport a connector makes, before it carries requests.
//! * [`MakeTransport`] names what a client needs of a connector.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::LinesCodec;
//!
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move {
//! #     let (socket, _) = listener.accept().await.unwrap();
//! #     let mut lines = tokio_util::codec::Framed::new(socket, LinesCodec::new());
//! #     while let Some(Ok(line)) = lines.next().await {
//! #         lines.send(line.to_uppercase()).await.unwrap();
//! #     }
//! # });
//! // An upper-casing line server listens on `addr`.
//! let mut transport = wirestack::transport::connect(addr, LinesCodec::new()).await?;
//! transport.send("hello").await?;
//! assert_eq!(transport.next().await.transpose()?.as_deref(), Some("HELLO"));
//! # Ok(())
//! # }
//! ```

mod handshake;
mod make;
mod target;
mod tcp;

pub use handshake::{Handshake, HandshakeError, OnConnect};
pub use make::MakeTransport;
pub use target::Target;
pub use tcp::TcpConnector;

use crate::BoxError;
use futures::{Sink, Stream};
use std::io;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::{Decoder, Encoder, Framed};

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

/// A codec a client frames its connections with: it encodes `Req`, decodes
/// [`Response`](Codec::Response)s, and fails with one
/// [`Error`](Codec::Error) type that an I/O error converts into.
///
/// This only names a set of bounds, so that signatures stay short: it is
/// implemented for every tokio-util codec that has them, and cannot be
/// implemented otherwise. Make the error carry I/O failures as a source (a
/// `thiserror` variant `Io(#[from] io::Error)`), so that the
/// [failure rule](crate::failure) can tell a lost connection from a peer
/// that speaks something else.
pub trait Codec<Req>:
    Encoder<Req, Error = <Self as Codec<Req>>::Error>
    + Decoder<Item = Self::Response, Error = <Self as Codec<Req>>::Error>
    + Clone
    + Send
    + 'static
    + sealed::Sealed<Req>
{
    /// What the codec decodes: the peer's answers.
    type Response: Send + 'static;
    /// What a failed read, write or frame reports.
    type Error: From<io::Error> + Into<BoxError>;
}

impl<C, Req, E> Codec<Req> for C
where
    C: Encoder<Req, Error = E> + Decoder<Error = E> + Clone + Send + 'static,
    C::Item: Send + 'static,
    E: From<io::Error> + Into<BoxError>,
{
    type Response = C::Item;
    type Error = E;
}

mod sealed {
    pub trait Sealed<Req> {}
    impl<C, Req> Sealed<Req> for C {}
}

/// Connects to `addr` over TCP with Nagle's algorithm off, framed by `codec`.
///
/// Pipelining coalesces writes itself, so `TCP_NODELAY` only removes latency.
pub async fn connect<A: ToSocketAddrs, C>(addr: A, codec: C) -> io::Result<Framed<TcpStream, C>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Framed::new(stream, codec))
}
