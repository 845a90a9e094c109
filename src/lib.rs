//! # wirestack
//!
//! A protocol-agnostic client and server framework on [tower] and
//! [tokio-util], with a key-value store as its reference protocol.
//!
//! Any binary protocol is a tokio-util codec. A client is a tower `Service`
//! stack whose bottom is a pipelining multiplexer over one connection; a
//! server serves any tower `Service` over any codec, pipelined, with graceful
//! shutdown.
//!
//! ```text
//!  client side                                server side
//!  ───────────                                ───────────
//!  KvClient (typed: get/put/delete/ping)      kv serve
//!      │                                          │
//!  your tower layers (optional)               Server: accept, one task per
//!      │                                      connection, N requests in
//!  Pipeline: many callers, one connection,    flight, answers in order
//!  writes coalesced, answers in order             │
//!      │                                      Framed<TcpStream, ServerCodec>
//!  Framed<TcpStream, ClientCodec>                 │
//!      │                                      KvService ──► Store (sharded, TTL)
//!      └────────────── TCP ───────────────────────┘
//! ```
//!
//! * [`transport`]: what a transport is (`Sink` + `Stream`) and the TCP glue.
//! * [`pipeline`]: the in-order multiplexer, a `Service` many tasks share.
//! * [`server`]: serve any `Service` over any codec.
//! * [`kv`]: the reference protocol: codec, store, server service, [`kv::KvClient`].
//!
//! The framework modules never name a protocol; [`kv`] is built on them the
//! way your own protocol would be.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wirestack::kv::{self, KvClient};
//!
//! let server = kv::spawn_server("127.0.0.1:0", kv::ServerConfig::default()).await?;
//! let client = KvClient::connect(server.local_addr()).await?;
//! client.put("k", "v").await?;
//! assert_eq!(client.get("k").await?.as_deref(), Some(&b"v"[..]));
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [tower]: https://docs.rs/tower
//! [tokio-util]: https://docs.rs/tokio-util

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

pub mod kv;
pub mod pipeline;
pub mod server;
pub mod transport;

pub use transport::BoxError;

/// The README's code blocks, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
