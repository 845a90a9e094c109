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
//!  KvClient / RedisClient (typed calls)       kv serve
//!      │                                          │
//!  Timeout: one deadline per request          Server: accept, one task per
//!      │                                      connection, N requests in
//!  Retry: only what is safe, with backoff,    flight, answers in order
//!  under a budget                                 │
//!      │                                      Framed<TcpStream, ServerCodec>
//!  your tower layers (optional)                   │
//!      │                                      KvService ──► Store (sharded, TTL)
//!  Reconnect: one live connection, replaced       │
//!  with backoff; fail fast while down             │
//!      │                                          │
//!  Pipeline: many callers, one connection,        │
//!  writes coalesced, answers in order             │
//!      │                                          │
//!  Framed<TcpStream, ClientCodec | RespCodec>     │
//!      └────────────── TCP ───────────────────────┘
//! ```
//!
//! * [`transport`]: what a transport is (`Sink` + `Stream`) and the TCP glue.
//! * [`pipeline`]: the in-order multiplexer, a `Service` many tasks share.
//! * [`reconnect`]: keeps a connection alive, replacing it when it breaks.
//! * [`retry`]: a tower retry policy that retries only what is safe.
//! * [`builder`]: [`ClientBuilder`](builder::ClientBuilder) stacks timeout,
//!   retry, your layers, reconnect and pipeline over any codec.
//! * [`failure`]: sorts a boxed error from a stack into timed out, not sent,
//!   protocol error or lost connection, for typed clients.
//! * [`server`]: serve any `Service` over any codec.
//! * [`kv`]: the reference protocol: codec, store, server service, [`kv::KvClient`].
//! * [`resp`]: RESP2, to talk to Redis on the same stack: codec and
//!   [`resp::RedisClient`].
//!
//! The framework modules never name a protocol; [`kv`] and [`resp`] are
//! built on them the way your own protocol would be: a codec, and answers to
//! two questions for the retry layer — is this request
//! [idempotent](retry::Idempotent), is this response a
//! [refusal](retry::RetryableResponse).
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

pub mod builder;
pub mod failure;
pub mod kv;
pub mod pipeline;
pub mod reconnect;
pub mod resp;
pub mod retry;
pub mod server;
pub mod transport;

pub use transport::BoxError;

/// The README's code blocks, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
