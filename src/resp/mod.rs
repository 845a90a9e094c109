//! RESP2, the Redis serialization protocol (version 2), as a `tokio-util` codec.
//!
//! This module lets a `wirestack` client speak to Redis-compatible servers: it
//! frames a byte stream into [`Value`]s and back. [`RespCodec`] implements
//! [`Encoder`](tokio_util::codec::Encoder) and
//! [`Decoder`](tokio_util::codec::Decoder), so it plugs straight into
//! `tokio_util::codec::Framed`.
//!
//! The decoder treats the peer as untrusted: every length a frame claims is
//! checked against the codec's limits before anything is allocated, a frame is
//! only turned into a [`Value`] once it has fully arrived, and every malformed
//! input yields a typed [`RespError`] rather than a panic.
//!
//! [`RedisClient`] puts a few typed commands on top of the same client stack
//! as the KV protocol ([`ClientBuilder`](crate::builder::ClientBuilder):
//! timeout, retry, reconnect, pipeline); this module only adds the codec and
//! RESP's answers to "is this command idempotent?" and "is this reply a
//! refusal?" (see [`RedisClient`]). [`RedisAuth`] authenticates every new
//! connection (`requirepass` or an ACL user) through the builder's
//! on-connect hook, and `ClientBuilder::tls` (feature `tls`) runs it over
//! TLS, as `redis-server --tls-port` serves.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use wirestack::resp::{RespCodec, Value};
//!
//! let mut codec = RespCodec::new();
//!
//! // Encode a command.
//! let mut out = BytesMut::new();
//! codec.encode(Value::command(["SET", "greeting", "hello"]), &mut out)?;
//! assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$5\r\nhello\r\n");
//!
//! // Decode the reply; a partial frame yields `Ok(None)` until it is complete.
//! let mut input = BytesMut::from(&b"+O"[..]);
//! assert_eq!(codec.decode(&mut input)?, None);
//! input.extend_from_slice(b"K\r\n");
//! assert_eq!(codec.decode(&mut input)?, Some(Value::simple("OK")));
//! assert!(input.is_empty());
//! # Ok::<(), wirestack::resp::RespError>(())
//! ```

mod auth;
mod classify;
mod client;
pub mod cluster;
mod codec;
mod error;
mod value;

pub use auth::RedisAuth;
pub use client::{DefaultService, RedisClient, RedisError};
pub use codec::RespCodec;
pub use error::RespError;
pub use value::Value;
