//! [`KvClient`]: the typed KV client, on top of any service stack.

use super::codec::ClientCodec;
use super::{Request, Response, Status};
use crate::batch::{Batch, BatchResponse};
use crate::builder::{ClientBuilder, Stack};
use crate::deadline::Deadline;
use crate::failure::Failure;
use crate::keepalive::Keepalive;
use crate::multiplex::{self, Multiplex};
use crate::pipeline;
use crate::reconnect::Reconnect;
use crate::retry::Retry;
use crate::session::{ClientSession, Session, SessionLayer, Stamped};
use crate::BoxError;
use bytes::Bytes;
use std::time::Duration;
use tokio::net::ToSocketAddrs;
use tower::{Service, ServiceExt};

/// Everything a [`KvClient`] call can fail with.
///
/// A missing key is not an error: [`KvClient::get`] returns `None` and
/// [`KvClient::delete`] returns `false`. The transport variants follow the
/// framework's [failure rule](crate::failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The server answered with an error status (`ERROR`, `BAD_REQUEST`,
    /// `TOO_LARGE` or `STORAGE`) and its message. (`BUSY` is
    /// [`KvError::Busy`], `UNAUTHENTICATED` is [`KvError::Unauthenticated`].)
    #[error("server answered {status}: {message}")]
    Server {
        /// The status the server sent.
        status: Status,
        /// The server's message.
        message: String,
    },
    /// The server refused the request for now (`BUSY`: overloaded) and went
    /// on refusing until the client's retries, retry budget or deadline ran
    /// out. Nothing was applied; the request may be sent again later.
    #[error("server answered BUSY: {message}")]
    Busy {
        /// The server's message.
        message: String,
    },
    /// The server answered with a status that makes no sense for the request
    /// (for example `NOT_FOUND` to a `PUT`).
    #[error("unexpected {status} in answer to {command}")]
    UnexpectedStatus {
        /// The status the server sent.
        status: Status,
        /// The request it answered.
        command: &'static str,
    },
    /// The server wants a valid `AUTH` first, or refused the token (then it
    /// closed the connection): the request was not applied. Never retried —
    /// sending it again cannot change the answer; fix the token.
    #[error("unauthenticated: {message}")]
    Unauthenticated {
        /// The server's message.
        message: String,
    },
    /// The server no longer knows the client's session (`SESSION_EXPIRED`:
    /// idle past its lifetime, or evicted) and did not apply this write; an
    /// earlier send of it, whose answer was lost, may have been applied. The
    /// client has started a new session: later writes are deduplicated again.
    #[error("session expired: {message}; the write may have been applied by an earlier send")]
    SessionExpired {
        /// The server's message.
        message: String,
    },
    /// The request did not complete within the client's deadline (retries
    /// included). It may or may not have been applied.
    #[error("request timed out")]
    TimedOut,
    /// There is no connection to the server: the last connect attempt failed
    /// (the source says how), and the request was **not sent**.
    #[error("{0}")]
    Disconnected(#[source] BoxError),
    /// The server sent bytes that are not a valid answer (an unknown status,
    /// an over-limit length, an answer to no request). The connection was
    /// dropped and will be replaced; the request may have been applied.
    #[error("protocol error: {0}")]
    Protocol(#[source] BoxError),
    /// The connection failed after the request was written (and
    /// retrying did not help or was not allowed); the source says how
    /// (downcast it, for example to [`pipeline::Error`]). The request may
    /// have been applied.
    #[error("connection failed: {0}")]
    Connection(#[source] BoxError),
    /// A layer of the stack that is not the framework's failed the request
    /// for a reason of its own (tower's `LoadShed` refusing it, say); the
    /// source is its error.
    #[error("{0}")]
    Other(#[source] BoxError),
}

impl KvError {
    /// Sorts an error from the service stack into the variant a caller acts on.
    pub fn from_service(error: BoxError) -> Self {
        match Failure::of(&*error) {
            Failure::TimedOut => KvError::TimedOut,
            Failure::Rejected => match refusal(&*error) {
                Some(message) => KvError::Unauthenticated { message },
                None => KvError::Other(error),
            },
            Failure::NotSent => KvError::Disconnected(error),
            Failure::Protocol => KvError::Protocol(error),
            Failure::Connection => KvError::Connection(error),
            _ => KvError::Other(error),
        }
    }

    fn server(response: Response) -> Self {
        match response.status {
            Status::Unauthenticated => KvError::Unauthenticated {
                message: response.message(),
            },
            Status::Busy => KvError::Busy {
                message: response.message(),
            },
            Status::SessionExpired => KvError::SessionExpired {
                message: response.message(),
            },
            status => KvError::Server {
                status,
                message: response.message(),
            },
        }
    }

    /// `true` if this is the server answering `BUSY` ([`KvError::Busy`]):
    /// nothing was applied, safe to retry later.
    pub fn is_busy(&self) -> bool {
        matches!(self, KvError::Busy { .. })
    }

    /// `true` if this is the server answering `STORAGE`: its log could not
    /// make a write durable, or (to [`KvClient::health`]) refuses writes.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            KvError::Server {
                status: Status::Storage,
                ..
            }
        )
    }
}

/// The client's default stack, as [`KvClient::connect`] builds it: a
/// deadline, retries, reconnection and one connection multiplexed by
/// request id (protocol 2.0, or 1.1 against a server that has no 2.0),
/// with keepalive.
///
/// Over it, a [`Session`]: against a server with sessions every write is
/// stamped with the client's session and a sequence number, so the retry
/// layer resends a write lost with its connection and the server applies
/// it once.
pub type DefaultService = Stack<Session<Deadline<Retry<Reconnect<Multiplex<Stamped<Request>, Response>>>>>>;

/// A typed KV client over a service stack `S`.
///
/// `S` is any tower service from [`Request`] to [`Response`]; clone the
/// client freely to share its connection among tasks. [`KvClient::connect`]
/// builds the default stack ([`ClientBuilder`] with its defaults: 5 s
/// deadline, retries, reconnection, protocol 2.0 over a
/// [`Multiplex`] with keepalive); [`KvClient::new`] takes a stack of your
/// own — a [`ClientBuilder`] with other settings or layers, or a bare
/// [`Pipeline`](crate::pipeline::Pipeline) or [`Multiplex`] with none of them.
///
/// The default stack retries a GET or PING whose connection was lost. A
/// write (PUT, PUT_TTL, DELETE) is sent in the client's session against a
/// server with sessions (protocol 2.0 with a `session_window`): one lost
/// after it was written is resent with its sequence number, on the next
/// connection, within the deadline and the retry budget, and the server
/// applies it once — `Ok` means applied exactly once. It fails as possibly
/// applied only when the deadline passes ([`KvError::TimedOut`]), the
/// retries run out ([`KvError::Connection`]) or the server forgot the
/// session ([`KvError::SessionExpired`]). Against a server without sessions
/// a write is never sent twice: one lost after it was written fails with
/// [`KvError::Connection`] (it may have been applied), so that the store
/// stays linearizable (see the `Idempotent` impl of [`Request`]). A write
/// that was never sent, or refused `BUSY`, is retried.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use wirestack::kv::{KvClient, KvServer, KvServerConfig};
///
/// let server = KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?;
/// let client = KvClient::connect(server.local_addr()).await?;
///
/// client.put_many((0..100).map(|i| (format!("key{i}"), format!("value{i}")))).await?;
/// let values = client.get_many(["key7", "missing"]).await?;
/// assert_eq!(values[0].as_deref(), Some(&b"value7"[..]));
/// assert_eq!(values[1], None);
/// # server.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KvClient<S = DefaultService> {
    service: S,
}

impl KvClient<DefaultService> {
    /// Connects to a KV server with the default stack: every connection
    /// says [`Hello`](super::Hello) and speaks protocol 2.0 — answers in any
    /// order, matched by request id, so that a slow write never holds up a
    /// read of another key — or 1.1 against a server that has no 2.0; a
    /// [`Keepalive`] with its defaults finds a server that stopped
    /// answering within 2 s.
    ///
    /// `addr` is resolved once; its addresses are tried in order and the
    /// first that connects is the one the client reconnects to.
    ///
    /// Writes go in a new [`ClientSession`] (see the type's docs): the
    /// session lives as long as the client, so its guarantee does not
    /// reach past a restart of the client.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, KvError> {
        let session = ClientSession::new();
        ClientBuilder::new(ClientCodec::new())
            .on_connect(super::Hello::new().with_session(session.clone()))
            .multiplex(multiplex::Builder::new().keepalive(Keepalive::default()))
            .connect_pinned(addr)
            .await
            .map(|stack| KvClient::new(stack.layer(&SessionLayer::new(session))))
            .map_err(|e| KvError::Disconnected(e.into()))
    }
}

impl<S> KvClient<S>
where
    S: Service<Request, Response = Response> + Clone,
    S::Error: Into<BoxError>,
{
    /// A client over a service stack of your own.
    pub fn new(service: S) -> Self {
        KvClient { service }
    }

    /// The service stack under this client.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Sends one request and returns the raw response, whatever its status.
    pub async fn call(&self, request: Request) -> Result<Response, KvError> {
        ServiceExt::<Request>::oneshot(self.service.clone(), request)
            .await
            .map_err(|e| KvError::from_service(e.into()))
    }

    /// Checks that the server answers; returns its echo of `payload`.
    pub async fn ping_with(&self, payload: impl Into<Bytes>) -> Result<Bytes, KvError> {
        let response = self
            .call(Request::Ping {
                payload: payload.into(),
            })
            .await?;
        expect_ok(response, "PING")
    }

    /// Authenticates this client's connection with `token`.
    ///
    /// This authenticates the connection the request goes out on, not its
    /// replacements: to authenticate every connection, reconnects included,
    /// build the stack with an [`AuthHandshake`](super::AuthHandshake)
    /// instead. A wrong token fails with [`KvError::Unauthenticated`], and
    /// the server closes the connection.
    pub async fn auth(&self, token: &super::AuthToken) -> Result<(), KvError> {
        let request = Request::Auth {
            token: token.as_bytes().clone(),
        };
        expect_ok(self.call(request).await?, "AUTH").map(drop)
    }

    /// Checks that the server answers.
    pub async fn ping(&self) -> Result<(), KvError> {
        self.ping_with(Bytes::new()).await.map(drop)
    }

    /// Checks that the server takes writes: `Ok` if it does, the server's
    /// `STORAGE` answer (see [`KvError::is_storage`]) while its log refuses
    /// them, `BAD_REQUEST` from a server without the `HEALTH` extension.
    pub async fn health(&self) -> Result<(), KvError> {
        expect_ok(self.call(Request::Health).await?, "HEALTH").map(drop)
    }

    /// The value of `key`, or `None` if it is missing or expired.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, KvError> {
        get_result(self.call(Request::Get { key: key.into() }).await?)
    }

    /// Sets `key` to `value`, clearing any TTL.
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), KvError> {
        let request = Request::Put {
            key: key.into(),
            value: value.into(),
        };
        expect_ok(self.call(request).await?, "PUT").map(drop)
    }

    /// Sets `key` to `value` for `ttl` (rounded down to milliseconds, at
    /// least one).
    pub async fn put_with_ttl(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<(), KvError> {
        let request = Request::PutTtl {
            key: key.into(),
            ttl_ms: ttl_millis(ttl),
            value: value.into(),
        };
        expect_ok(self.call(request).await?, "PUT_TTL").map(drop)
    }

    /// Removes `key`; `true` if it existed.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool, KvError> {
        let response = self.call(Request::Delete { key: key.into() }).await?;
        match response.status {
            Status::Ok => Ok(true),
            Status::NotFound => Ok(false),
            _ => Err(KvError::server(response)),
        }
    }

    /// Sends every request as one [`Batch`]: one message through the stack,
    /// written back to back, answered at once, retried as a unit (see
    /// [`crate::batch`]). Returns the responses in order, whatever their
    /// status; fails if any request failed in the stack.
    pub async fn batch<E>(
        &self,
        requests: impl IntoIterator<Item = Request>,
    ) -> Result<Vec<Response>, KvError>
    where
        S: Service<Batch<Request>, Response = BatchResponse<Response, E>>,
        <S as Service<Batch<Request>>>::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        let batch: Batch<Request> = requests.into_iter().collect();
        let answers = ServiceExt::<Batch<Request>>::oneshot(self.service.clone(), batch)
            .await
            .map_err(|e| KvError::from_service(e.into()))?;
        answers
            .into_iter()
            .map(|answer| answer.map_err(|e| KvError::from_service(e.into())))
            .collect()
    }

    /// Writes every pair in one [`Batch`]; fails if any write failed.
    pub async fn put_many<K, V, E>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), KvError>
    where
        K: Into<Bytes>,
        V: Into<Bytes>,
        S: Service<Batch<Request>, Response = BatchResponse<Response, E>>,
        <S as Service<Batch<Request>>>::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        let requests = pairs.into_iter().map(|(key, value)| Request::Put {
            key: key.into(),
            value: value.into(),
        });
        for response in self.batch(requests).await? {
            expect_ok(response, "PUT")?;
        }
        Ok(())
    }

    /// Reads every key in one [`Batch`]; the values come back in the order
    /// of the keys.
    pub async fn get_many<K, E>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, KvError>
    where
        K: Into<Bytes>,
        S: Service<Batch<Request>, Response = BatchResponse<Response, E>>,
        <S as Service<Batch<Request>>>::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        let requests = keys.into_iter().map(|key| Request::Get { key: key.into() });
        self.batch(requests).await?.into_iter().map(get_result).collect()
    }
}

/// The server's message, if a [`KvError::Unauthenticated`] is `error` or
/// one of its sources (a refused on-connect `AUTH`).
fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(KvError::Unauthenticated { message }) = error.downcast_ref::<KvError>() {
            return Some(message.clone());
        }
        next = error.source();
    }
    None
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn expect_ok(response: Response, command: &'static str) -> Result<Bytes, KvError> {
    match response.status {
        Status::Ok => Ok(response.value),
        Status::NotFound => Err(KvError::UnexpectedStatus {
            status: Status::NotFound,
            command,
        }),
        _ => Err(KvError::server(response)),
    }
}

fn get_result(response: Response) -> Result<Option<Bytes>, KvError> {
    match response.status {
        Status::Ok => Ok(Some(response.value)),
        Status::NotFound => Ok(None),
        _ => Err(KvError::server(response)),
    }
}

impl From<pipeline::Error> for KvError {
    fn from(error: pipeline::Error) -> Self {
        KvError::from_service(error.into())
    }
}
