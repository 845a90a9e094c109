//! memcached's meta protocol (`mg`, `ms`, `md`, `ma`, `mn`) on the same
//! client stack as the other protocols, against a real memcached (1.6 or
//! later).
//!
//! * [`MemcacheCodec`] frames [`Request`]s and [`Reply`]s; values are any
//!   bytes, keys that are not plain ASCII go base64-encoded ([`Key`]). It
//!   treats the server as untrusted — every length is checked before
//!   anything is reserved, every malformed line is a typed [`CodecError`] —
//!   and checks that each answer belongs to its request with memcached's
//!   opaque token (`O`): an answer out of step is an error, never another
//!   caller's value.
//! * [`MemcacheClient`] puts typed commands on top of the
//!   [`ClientBuilder`](crate::builder::ClientBuilder) stack: `get`,
//!   `get_many`, `get_multi`, `set` with a TTL and client flags, `delete`, `incr`/`decr`
//!   (`ma`), `touch`, compare-and-swap with the CAS token, `noop`. The stack
//!   gives it deadlines, retries, reconnection and pipelining; this module
//!   only says which commands may be retried ([`Idempotent`](crate::retry::Idempotent):
//!   `mg`, plain `ms` and `md`, not `ma` nor anything with a CAS token),
//!   which key places a command, and what probes a server.
//! * [`MemcacheClient::sharded`] spreads keys over several servers with
//!   libmemcached's ketama ([`Ketama`](crate::route::Ketama)), so it shares
//!   a cluster with the ketama clients already on it.
//!
//! Quiet mode (`q`, answers suppressed until an `mn`) is not used: it
//! saves only the answers of misses — measured on batches of 64 gets, level
//! at 100 % hits, +10 % at 50 %, +24 % at 0 % (BENCHMARKS.md, "memcached")
//! — while an error answered in quiet mode carries no opaque token and could
//! not be tied to its request. For a batch on one server,
//! [`MemcacheClient::get_multi`] sends one multi-key `get` (the text
//! protocol's, which memcached takes between meta commands on the same
//! connection): 2.3x the keys per second of a batch of `mg`s there.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use wirestack::memcache::{Key, MemcacheCodec, Request, SetMode, Status};
//!
//! let mut codec = MemcacheCodec::new();
//! let mut out = BytesMut::new();
//! let set = Request::Set {
//!     key: Key::new("greeting")?,
//!     value: "hello".into(),
//!     ttl: 60,
//!     flags: 0,
//!     cas: None,
//!     mode: SetMode::Set,
//! };
//! codec.encode(set, &mut out)?;
//! assert_eq!(&out[..], b"ms greeting 5 T60 F0 O0\r\nhello\r\n");
//!
//! let reply = codec.decode(&mut BytesMut::from(&b"HD O0\r\n"[..]))?;
//! assert_eq!(reply.map(|reply| reply.status), Some(Status::Done));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classify;
mod client;
mod codec;
mod error;
mod key;
mod reply;
mod request;

pub use client::{CasOutcome, DefaultService, Item, MemcacheClient, MemcacheError, ShardedService};
pub use codec::MemcacheCodec;
pub use error::CodecError;
pub use key::{Key, KeyError, MAX_BINARY_KEY_LEN, MAX_KEY_LEN};
pub use reply::{Reply, Status};
pub use request::{Request, SetMode};
