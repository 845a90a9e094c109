//! The reference protocol: a key-value store, client and server.
//!
//! This is the only module that knows the KV wire format (below). It is
//! built *on* the framework ([`crate::pipeline`], [`crate::server`],
//! [`crate::builder`]) exactly as your own protocol would be:
//!
//! * the codecs ([`ClientCodec`], [`ServerCodec`]) turn bytes into
//!   [`Request`]s and [`Response`]s and back, and nothing else;
//! * [`Request`] answers the retry layer's [`Idempotent`](crate::retry::Idempotent)
//!   and [`Response`] its [`RetryableResponse`](crate::retry::RetryableResponse);
//! * [`Store`] is the concurrent in-memory map with TTL, and [`Wal`](wal::Wal) the
//!   write-ahead log that makes it durable;
//! * [`KvService`] is the server side, a tower `Service` from requests to the
//!   store; [`serve`] and [`KvServer`] run it on the framework's server;
//! * [`KvClient`] is the typed client on top of any service stack.
//! * Authentication: [`AuthToken`], [`RequireAuth`] in front of the service
//!   on the server (closing a connection after a wrong token through the
//!   server's [`CloseAfter`](crate::server::CloseAfter) hook, by answering
//!   a [`Reply`]), [`AuthHandshake`] on the client's every new connection,
//!   and protected mode ([`check_protected`]).
//! * Version 2 (the last section below): [`Hello`] on the client's every
//!   new connection (after [`AuthHandshake`], with [`Hello::after`])
//!   switches its [`ClientCodec`] to version 2 frames, or leaves it on 1.1
//!   against an old server; the codec encodes the tagged multiplexer's
//!   [`Outgoing`](crate::multiplex::Outgoing) messages either way, and
//!   [`Response`] tells it which request an answer is for
//!   ([`Tagged`](crate::multiplex::Tagged), by [`Response::id`]). On the
//!   server, [`ServerCodec`] switches once it has encoded `HELLO`'s `OK`,
//!   decodes [`Incoming::Identified`] requests and [`Incoming::Cancel`]s,
//!   and [`ByRequestId`] is the server's [`Order`](crate::server::Order):
//!   answers leave by id, `GOAWAY` on shutdown. [`KvService`] orders a
//!   version 2 connection's effects per key, and honours deadlines and
//!   cancellation.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wirestack::kv::{KvClient, KvServer, KvServerConfig};
//!
//! // A server on a free loopback port, and a client connected to it.
//! let server = KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?;
//! let client = KvClient::connect(server.local_addr()).await?;
//!
//! client.put("greeting", "hello").await?;
//! assert_eq!(client.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! assert!(client.delete("greeting").await?);
//! assert_eq!(client.get("greeting").await?, None);
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## TLS and a token
//!
//! A server given a certificate and a token ([`KvServerConfig::tls`],
//! [`KvServerConfig::auth`]), and a client that checks the certificate and
//! authenticates every connection it makes, before any request:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use wirestack::builder::ClientBuilder;
//! use wirestack::kv::{AuthHandshake, AuthToken, ClientCodec, KvClient, KvServer, KvServerConfig, Request};
//! use wirestack::tls;
//! # let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! # let dir = tempfile::tempdir()?;
//! # let (cert_pem, key_pem) = (dir.path().join("server.pem"), dir.path().join("server.key"));
//! # std::fs::write(&cert_pem, certified.cert.pem())?;
//! # std::fs::write(&key_pem, certified.signing_key.serialize_pem())?;
//! # let ca_pem = &cert_pem;
//!
//! // `cert_pem`, `key_pem`: the server's certificate for "localhost" and its
//! // key; `ca_pem`: what clients trust (here the certificate itself).
//! let token = AuthToken::new("use 32 random bytes")?;
//! let server = KvServer::start(
//!     "127.0.0.1:0",
//!     KvServerConfig {
//!         tls: Some(tls::server_config_from_pem(&cert_pem, &key_pem, None)?),
//!         auth: Some(token.clone()),
//!         ..KvServerConfig::default()
//!     },
//! )
//! .await?;
//!
//! let client = KvClient::new(
//!     ClientBuilder::new(ClientCodec::new())
//!         .tls(tls::client_config(tls::read_roots(ca_pem)?, None)?, tls::server_name("localhost")?)
//!         .on_connect(AuthHandshake::new(token))
//!         .connect::<Request>(server.local_addr())
//!         .await?,
//! );
//! client.put("k", "v").await?;
//! # server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
#![doc = include_str!("PROTOCOL.md")]

mod auth;
mod client;
mod codec;
mod hello;
pub mod metrics;
mod order;
mod route;
mod server;
mod service;
pub mod session;
mod store;
pub mod wal;

pub use auth::{
    check_protected, AuthDeadline, AuthDeadlineFuture, AuthHandshake, AuthLimits, AuthTimedOut, AuthToken,
    Authenticator, EmptyToken, Reply, RequireAuth, Unprotected,
};
pub use client::{DefaultService, KvClient, KvError};
pub use codec::{
    ClientCodec, CodecError, Limits, ServerCodec, FLAG_DEADLINE, FLAG_SEQUENCED, REQUEST_HEADER_LEN,
    REQUEST_HEADER_LEN_V2, RESPONSE_HEADER_LEN, RESPONSE_HEADER_LEN_V2, TTL_LEN,
};
pub use hello::{Hello, Negotiated};
pub use order::ByRequestId;
pub use route::ShardedService;
pub use server::{serve, ConfigError, KvServer, KvServerConfig};
pub use service::{KvService, ResponseFuture};
pub use session::{Sequenced, SessionConfig, SessionId, Sessions};
pub use store::Store;

use crate::server::{Overload, Overloaded};
use bytes::Bytes;
use std::fmt;
use std::time::Instant;

/// Defines a byte of the frame header as a `#[repr(u8)]` enum from one row
/// per value — its doc, variant, byte and name in `PROTOCOL.md` — with
/// `from_byte` and `name` read off the same rows, so a value is added in one
/// place.
macro_rules! wire_byte {
    (
        $(#[$meta:meta])*
        pub enum $enum:ident ($what:literal) {
            $($(#[$row:meta])* $variant:ident = $byte:literal, $name:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum $enum {
            $($(#[$row])* $variant = $byte,)*
        }

        impl $enum {
            #[doc = concat!("The ", $what, " for a wire byte, or `None` for an unknown one.")]
            pub fn from_byte(byte: u8) -> Option<Self> {
                match byte {
                    $($byte => Some($enum::$variant),)*
                    _ => None,
                }
            }

            #[doc = concat!("The protocol's name for this ", $what, ", as in `PROTOCOL.md`.")]
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)*
                }
            }
        }
    };
}

wire_byte! {
    /// The command byte of a request frame.
    pub enum Command ("command") {
        /// `0x01`: liveness check; echoes its payload.
        Ping = 0x01, "PING";
        /// `0x02`: read a key.
        Get = 0x02, "GET";
        /// `0x03`: write a key, clearing any TTL.
        Put = 0x03, "PUT";
        /// `0x04`: remove a key.
        Delete = 0x04, "DELETE";
        /// `0x05`: write a key that expires after a number of milliseconds.
        PutTtl = 0x05, "PUT_TTL";
        /// `0x06`: authenticate the connection with a token.
        Auth = 0x06, "AUTH";
        /// `0x07` (version 2): ask for protocol version 2 on this connection.
        Hello = 0x07, "HELLO";
        /// `0x08` (version 2): cancel the request whose id the frame carries.
        Cancel = 0x08, "CANCEL";
        /// `0x80` (an extension of protocol 1.1): whether the server takes
        /// writes (`OK`) or its log refuses them for now (`STORAGE`).
        Health = 0x80, "HEALTH";
    }
}

wire_byte! {
    /// The status byte of a response frame.
    pub enum Status ("status") {
        /// `0x00`: success; the value is the result, or empty.
        Ok = 0x00, "OK";
        /// `0x01`: the key is missing or expired.
        NotFound = 0x01, "NOT_FOUND";
        /// `0x02`: an internal failure; the value is a UTF-8 message.
        Error = 0x02, "ERROR";
        /// `0x03`: the request was malformed; the value is a UTF-8 message.
        BadRequest = 0x03, "BAD_REQUEST";
        /// `0x04`: a length was over the server's limit; the connection closes.
        TooLarge = 0x04, "TOO_LARGE";
        /// `0x05`: the server refuses work for now; safe to retry later.
        Busy = 0x05, "BUSY";
        /// `0x06`: the write could not be made durable; the key is unchanged.
        Storage = 0x06, "STORAGE";
        /// `0x07`: the server wants `AUTH` first, or the token was wrong.
        Unauthenticated = 0x07, "UNAUTHENTICATED";
        /// `0x08` (version 2): the request was cancelled before it took effect.
        Cancelled = 0x08, "CANCELLED";
        /// `0x09` (version 2): the request's deadline passed before it
        /// started; it had no effect.
        DeadlineExceeded = 0x09, "DEADLINE_EXCEEDED";
        /// `0x0A` (version 2): from the server, with request id 0: it reads
        /// no more requests from this connection; the value is a UTF-8 reason.
        GoAway = 0x0A, "GOAWAY";
        /// `0x0B` (version 2): the server no longer knows the session; the
        /// write was not applied.
        SessionExpired = 0x0B, "SESSION_EXPIRED";
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One request of the protocol, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Liveness check; the server echoes the payload.
    Ping {
        /// Bytes the server sends back.
        payload: Bytes,
    },
    /// Read a key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Write a key, clearing any earlier TTL.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Write a key that expires `ttl_ms` milliseconds after the server applies it.
    PutTtl {
        /// The key.
        key: Bytes,
        /// Milliseconds to live; never zero in a valid request.
        ttl_ms: u64,
        /// The value.
        value: Bytes,
    },
    /// Authenticate this connection.
    Auth {
        /// The token.
        token: Bytes,
    },
    /// Ask whether the server takes writes.
    Health,
    /// Ask for protocol version 2 on this connection (sent in 1.1 framing,
    /// by [`Hello`] on every new connection; see `PROTOCOL.md`).
    Hello {
        /// The highest version the client speaks: [`PROTOCOL_VERSION`].
        version: u16,
        /// The client's session; all zero: no session.
        session_id: [u8; 16],
    },
}

impl Request {
    /// The command byte this request is sent with.
    pub fn command(&self) -> Command {
        match self {
            Request::Ping { .. } => Command::Ping,
            Request::Get { .. } => Command::Get,
            Request::Put { .. } => Command::Put,
            Request::Delete { .. } => Command::Delete,
            Request::PutTtl { .. } => Command::PutTtl,
            Request::Auth { .. } => Command::Auth,
            Request::Health => Command::Health,
            Request::Hello { .. } => Command::Hello,
        }
    }
}

/// Which KV requests the retry layer may send again after their connection
/// was lost under them (an answer that never came): `PING`, `GET` and
/// `HEALTH`, which change nothing. Writes are not, though each is idempotent on its own:
///
/// * a `PUT` or `PUT_TTL` whose answer was lost may have been applied, and
///   another client may have written the key since; sending it again would
///   apply it a second time, over that newer write, so that a reader could
///   see the key go back to a value it had already seen replaced — which
///   no single order of the operations explains (the store's promise,
///   `PROTOCOL.md`, is linearizability);
/// * a `DELETE` sent again may delete a key another client wrote since.
///
/// Such a write fails with [`KvError::Connection`]: it may or may not have
/// been applied, and the caller decides (read the key, or write again).
/// A write that was **never sent** (no connection, or still queued when the
/// connection failed: [`KvError::Disconnected`]) or refused with `BUSY` is
/// still retried, whatever it is. `tests/linearizability.rs` checks these
/// claims against a server killed and restarted under load.
///
/// `AUTH` and `HELLO` are sent again: their effect belongs to the
/// connection, and a retry goes out on a fresh one.
impl crate::retry::Idempotent for Request {
    fn is_idempotent(&self) -> bool {
        match self {
            Request::Ping { .. }
            | Request::Get { .. }
            | Request::Health
            | Request::Auth { .. }
            | Request::Hello { .. } => true,
            Request::Put { .. } | Request::Delete { .. } | Request::PutTtl { .. } => false,
        }
    }
}

/// `BUSY` is the server refusing work before doing any (`PROTOCOL.md`: safe
/// to retry later); every other status is an answer — `UNAUTHENTICATED`
/// too: sending the same request again cannot make it authenticated.
/// PUT, PUT_TTL and DELETE: the writes a KV 2.0 server with sessions
/// applies once per `seq` (SEQUENCED).
impl crate::session::Deduplicated for Request {
    fn is_deduplicated(&self) -> bool {
        matches!(
            self,
            Request::Put { .. } | Request::PutTtl { .. } | Request::Delete { .. }
        )
    }
}

/// `SESSION_EXPIRED`: the client's [`Session`](crate::session::Session)
/// layer starts a new session.
impl crate::session::SessionAnswer for Response {
    fn is_session_expired(&self) -> bool {
        self.status == Status::SessionExpired
    }
}

impl crate::retry::RetryableResponse for Response {
    fn is_retryable(&self) -> bool {
        self.status == Status::Busy
    }
}

/// One response of the protocol: a status, the request it answers and
/// its value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// What happened.
    pub status: Status,
    /// The request id it answers (version 2); 0 on a 1.1 connection and for
    /// a message from the server (`GOAWAY`). The server's codec writes it in
    /// a version 2 frame; the client's codec fills it in (on a 1.1
    /// connection driven by the tagged multiplexer, with the tag of the
    /// request it answers, since 1.1 answers in order).
    pub id: u32,
    /// The result (for `OK`) or a UTF-8 message (for the error statuses).
    pub value: Bytes,
}

impl Response {
    /// `OK` with a value.
    pub fn ok(value: Bytes) -> Self {
        Response {
            status: Status::Ok,
            id: 0,
            value,
        }
    }

    /// This response, answering the request with id `id`.
    #[must_use]
    pub fn with_id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }

    /// The server's `GOAWAY` message (request id 0), with `reason`.
    pub fn goaway(reason: &str) -> Self {
        Self::error(Status::GoAway, reason)
    }

    /// `OK` with no value.
    pub fn ok_empty() -> Self {
        Self::ok(Bytes::new())
    }

    /// `NOT_FOUND`.
    pub fn not_found() -> Self {
        Response {
            status: Status::NotFound,
            id: 0,
            value: Bytes::new(),
        }
    }

    /// An error status with a human-readable message.
    pub fn error(status: Status, message: impl Into<String>) -> Self {
        Response {
            status,
            id: 0,
            value: Bytes::from(message.into()),
        }
    }

    /// The value read as a UTF-8 message (lossy), for error statuses.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// What the server's decoder yields for one frame.
///
/// Most frames are valid [`Request`]s: [`Incoming::Request`] on a 1.1
/// connection, [`Incoming::Identified`] (with its id and deadline) on a
/// version 2 one. A frame that is well framed but wrong (an unknown
/// command, a key where none belongs, a bad TTL, a SEQUENCED read) is
/// already answered by the codec: the service sends the [`Response`] back
/// as it is (on version 2 with the frame's id), and the connection goes on.
/// A version 2 `CANCEL` is [`Incoming::Cancel`], which gets no answer of
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A valid request of a 1.1 connection, answered in order.
    Request(Request),
    /// A frame the codec rejected, with the response it gets (whose
    /// [`id`](Response::id) is the frame's request id on version 2).
    Rejected(Response),
    /// A valid request of a version 2 connection.
    Identified {
        /// Its request id, never 0; its answer carries it.
        id: u32,
        /// With the DEADLINE flag: the moment the server read it plus its
        /// `budget_us`. A request not started by then is answered
        /// `DEADLINE_EXCEEDED` and has no effect.
        deadline: Option<Instant>,
        /// With the SEQUENCED flag (only on PUT, PUT_TTL and DELETE; the
        /// codec rejects it on any other command): the write's `seq` and
        /// the client's `acked_below` in the connection's session.
        sequenced: Option<Sequenced>,
        /// The request.
        request: Request,
    },
    /// A version 2 `CANCEL` of the request with id `id` of this
    /// connection; no answer of its own.
    Cancel {
        /// The id of the request to cancel.
        id: u32,
    },
}

impl Incoming {
    /// The request id a version 2 frame carried (that of the request a
    /// `CANCEL` names, for a cancel); `None` for a 1.1 frame.
    pub fn id(&self) -> Option<u32> {
        match self {
            Incoming::Identified { id, .. } | Incoming::Cancel { id } => Some(*id),
            Incoming::Rejected(response) if response.id != 0 => Some(response.id),
            Incoming::Request(_) | Incoming::Rejected(_) => None,
        }
    }
}

/// The protocol version a [`Hello`] asks for, and the highest a
/// [`KvService`] answers with.
pub const PROTOCOL_VERSION: u16 = 2;

/// The KV answer to work the server refuses: `BUSY`, with the reason as its
/// message. Give it to [`Server::with_overload`](crate::server::Server::with_overload).
///
/// ```
/// use wirestack::kv::{Busy, Status};
/// use wirestack::server::{Overload, Overloaded};
///
/// let answer = Busy.overloaded(&Overloaded::TooManyConnections { limit: 4 }).unwrap();
/// assert_eq!(answer.status, Status::Busy);
/// assert_eq!(answer.message(), "too many connections (limit 4)");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Busy;

impl Overload<Response> for Busy {
    fn overloaded(&self, reason: &Overloaded) -> Option<Response> {
        Some(Response::error(Status::Busy, reason.to_string()))
    }
}
