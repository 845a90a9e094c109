//! # wirestack
//!
//! A protocol-agnostic client and server framework on tower and
//! tokio-util, with a key-value store as its reference protocol.
//!
//! Any binary protocol is a tokio-util codec. A client is a tower `Service`
//! stack whose bottom is a multiplexer over one connection — in order
//! (pipelining) or by tag (answers in any order); a server serves any tower
//! `Service` over any codec, pipelined, answering in order or by tag, with
//! graceful shutdown.
//!
//! ```text
//!  client side                                server side
//!  ───────────                                ───────────
//!  KvClient / RedisClient / yours             Server::serve (any codec,
//!      │                                      any tower Service)
//!  Deadline: one per request, kept by the         │
//!  pipeline's timer (none per request)            │
//!      │                                      accept, one task per
//!  Retry: only what is safe, with backoff,    connection, N requests in
//!  under a budget                             flight, answers in order or
//!      │                                      by tag; GOAWAY on shutdown
//!      │                                          │
//!  your tower layers (optional)               Framed<TcpStream, codec>
//!      │                                          │
//!  Reconnect: one live connection, replaced   your Service (KvService:
//!  with backoff; fail fast while down         Wal ──► Store)
//!      │                                          │
//!  Pipeline / Multiplex: many callers, one        │
//!  connection, writes coalesced, answers in       │
//!  order / by tag; keepalive                      │
//!      │                                          │
//!  Framed<TcpStream, codec>                       │
//!      └────────────── TCP ───────────────────────┘
//! ```
//!
//! The framework — it names no protocol:
//!
//! * [`transport`]: what a transport is (`Sink` + `Stream`), the
//!   [`Codec`](transport::Codec) bounds a client needs, the TCP connector,
//!   and handshakes on every new connection.
//! * [`pipeline`]: the in-order multiplexer, a `Service` many tasks share.
//! * [`multiplex`]: the tagged multiplexer — each request tagged, answers
//!   matched by tag in any order, cancel on drop, GOAWAY — for protocols
//!   that tag (KV 2.0, memcached's opaque, Kafka, CQL, HTTP/2).
//! * [`keepalive`]: pings on a silent connection, for both multiplexers, so
//!   that a peer that stopped answering is found without waiting for every
//!   caller's deadline.
//! * [`reconnect`]: keeps a connection alive, replacing it when it breaks.
//! * [`deadline`]: one deadline per request, without a timer per request.
//! * [`retry`]: retries only what is safe, within the deadline.
//! * [`session`]: numbers the writes a protocol deduplicates, so that
//!   [`retry`] may resend them after a lost answer.
//! * [`backoff`]: exponential backoff with full jitter, for the reconnect
//!   and retry layers and the router's probes.
//! * [`batch`]: many requests as one unit through the whole stack.
//! * [`route`]: one client over several endpoints — placement by key,
//!   batches split and put back in order, ejection and probes.
//! * [`pool`]: several connections to one endpoint, grown under load.
//! * [`balance`]: one client over several equivalent endpoints — power of
//!   two choices over peak-EWMA latency, ejection by failures and success
//!   rate under a cap, endpoints added and removed at run time.
//! * [`hedge`]: a late idempotent call's second copy to another endpoint,
//!   the first answer taken, within a budget shared with retries.
//! * [`failure`]: the failure vocabulary — the one rule that says whether a
//!   failed request timed out, was not sent, was lost with its connection or
//!   met a protocol error; each layer's errors answer it for themselves.
//!   [`BoxError`] is here at the root, as in tower.
//! * [`metrics`]: the names of what every layer records through the
//!   `metrics` facade (feature `metrics`, default), defined once with their
//!   descriptions, `enable()` and `describe()`; each layer records from its
//!   own module. No exporter: the application installs one.
//! * [`builder`]: [`ClientBuilder`](builder::ClientBuilder) stacks deadline,
//!   retry, your layers, reconnect and pipeline over any codec, for one
//!   endpoint, [several placed by key](builder::ClientBuilder::route), or
//!   [several equivalent ones](builder::ClientBuilder::balance).
//! * [`server`]: serve any `Service` over any codec, answers in order or
//!   by tag ([`Order`](server::Order)), GOAWAY on graceful shutdown.
//! * `tls` (feature `tls`, default): TLS as a transport on both sides —
//!   `TlsConnector` for clients, `TlsAcceptor` for the server.
//!
//! The protocols, each behind a cargo feature of the same name (all on by
//! default), built on the framework the way your own protocol would be — a
//! codec, and two answers for the retry layer: is this request
//! [idempotent](retry::Idempotent), is this response a
//! [refusal](retry::RetryableResponse):
//!
//! * `kv`: the reference key-value protocol — codec, store, write-ahead log,
//!   server and `KvClient`; its wire format is in the module's docs.
//! * `resp`: RESP2, to talk to Redis on the same stack: codec and
//!   `RedisClient`.
//! * `memcache`: memcached's meta protocol on the same stack: codec,
//!   `MemcacheClient`, and ketama placement over several servers (feature
//!   `ketama`, which `memcache` implies).
//! * `cli` (implies `kv`, `tls` and `metrics`): the `kv` binary — `serve`,
//!   `ping`, `get`, `put`, `del`, `bench` and `repair`.
//!
//! With `default-features = false` the crate is the framework alone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tokio_util::codec::LinesCodec;
//! use tower::{service_fn, ServiceExt};
//! use wirestack::builder::ClientBuilder;
//! use wirestack::server::Server;
//!
//! // A server: any tower service over any codec (here, lines of text).
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let shout = service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line.to_uppercase()) });
//! tokio::spawn(Server::new(LinesCodec::new()).serve(
//!     listener,
//!     tower::make::Shared::new(shout),
//!     std::future::pending(),
//! ));
//!
//! // A client: reconnecting, pipelined, with a deadline per request.
//! let client = ClientBuilder::new(LinesCodec::new())
//!     .no_retry() // retrying needs a protocol that says what is idempotent
//!     .connect::<String>(addr)
//!     .await?;
//! assert_eq!(client.oneshot("hello".to_string()).await?, "HELLO");
//! # Ok(())
//! # }
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod balance;
pub mod batch;
pub mod builder;
pub mod deadline;
pub mod failure;
pub mod hedge;
pub mod keepalive;
pub mod metrics;
pub mod multiplex;
#[cfg(feature = "sim-mutations")]
#[doc(hidden)]
pub mod mutations;
pub mod pipeline;
pub mod pool;
pub mod reconnect;
pub mod retry;
pub mod route;
pub mod server;
pub mod session;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
pub mod transport;

#[cfg(feature = "kv")]
#[cfg_attr(docsrs, doc(cfg(feature = "kv")))]
pub mod kv;
#[cfg(feature = "memcache")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcache")))]
pub mod memcache;
#[cfg(feature = "resp")]
#[cfg_attr(docsrs, doc(cfg(feature = "resp")))]
pub mod resp;

/// A boxed error, as tower uses at the boundary between layers: the error
/// type of every middleware that must carry any inner error. Downcast it (or
/// ask [`failure::Failure::of`]) to learn what happened.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The framework's errors that the [failure rule](failure) knows. Each says
/// what it means beside its definition; this list, in the one module that
/// knows every other, is how the rule finds them without naming a layer.
const KNOWN_ERRORS: &[failure::Known] = &[
    failure::Known::of::<deadline::Elapsed>(),
    failure::Known::of::<tower::timeout::error::Elapsed>(),
    failure::Known::of::<transport::HandshakeError>(),
    failure::Known::of::<retry::MaybeApplied>(),
    failure::Known::of::<reconnect::error::Disconnected>(),
    failure::Known::of::<pipeline::Error>(),
    failure::Known::of::<route::Ejected>(),
    failure::Known::of::<balance::BalanceError>(),
    failure::Known::of::<session::NoRoom>(),
];

/// The README's code blocks, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "kv"))]
pub struct ReadmeDoctests;
