//! [`RedisClient`]: a few typed Redis commands over any service stack.

use super::{RespCodec, Value};
use crate::batch::{Batch, BatchResponse};
use crate::builder::{ClientBuilder, DefaultStack, Stack};
use crate::failure::Failure;
use crate::keepalive::Keepalive;
use crate::pipeline;
use crate::BoxError;
use bytes::Bytes;
use std::time::Duration;
use tokio::net::ToSocketAddrs;
use tower::{Service, ServiceExt};

/// Everything a [`RedisClient`] call can fail with.
///
/// A missing key is not an error: [`RedisClient::get`] returns `None`. The
/// transport variants follow the framework's [failure rule](crate::failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The server answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
    #[error("server error: {0}")]
    Server(String),
    /// The server answered with a reply of a type the command never returns.
    #[error("unexpected reply to {command}: {reply:?}")]
    UnexpectedReply {
        /// The command it answered.
        command: &'static str,
        /// The reply.
        reply: Value,
    },
    /// The server refused the credentials of the on-connect `AUTH`
    /// ([`RedisAuth`](super::RedisAuth)); its error reply. Never retried.
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The request did not complete within the client's deadline (retries
    /// included). It may or may not have been applied.
    #[error("request timed out")]
    TimedOut,
    /// There is no connection to the server and the request was **not
    /// sent**; the source says why the last connect attempt failed.
    #[error("{0}")]
    Disconnected(#[source] BoxError),
    /// A Redis Cluster refused or could not route the command (keys in
    /// different slots, no slot map); see [`ClusterError`](super::cluster::ClusterError).
    #[error("cluster: {0}")]
    Cluster(#[from] super::cluster::ClusterError),
    /// The server sent bytes that are not RESP2. The connection was dropped
    /// and will be replaced; the request may have been applied.
    #[error("protocol error: {0}")]
    Protocol(#[source] BoxError),
    /// The connection failed after the request was written; the
    /// request may have been applied.
    #[error("connection failed: {0}")]
    Connection(#[source] BoxError),
    /// A layer of the stack that is not the framework's failed the request
    /// for a reason of its own; the source is its error.
    #[error("{0}")]
    Other(#[source] BoxError),
}

impl RedisError {
    /// Sorts an error from the service stack into the variant a caller acts on.
    pub fn from_service(error: BoxError) -> Self {
        if let Some(cluster) = find::<super::cluster::ClusterError>(&*error) {
            return RedisError::Cluster(cluster.clone());
        }
        match Failure::of(&*error) {
            Failure::TimedOut => RedisError::TimedOut,
            Failure::Rejected => match refusal(&*error) {
                Some(message) => RedisError::Auth(message),
                None => RedisError::Other(error),
            },
            Failure::NotSent => RedisError::Disconnected(error),
            Failure::Protocol => RedisError::Protocol(error),
            Failure::Connection => RedisError::Connection(error),
            _ => RedisError::Other(error),
        }
    }
}

/// The client's default stack, as [`RedisClient::connect`] builds it: a
/// deadline, retries, reconnection and one pipelined connection with
/// keepalive.
pub type DefaultService = Stack<DefaultStack<Value, Value>>;

/// A typed Redis client over a service stack `S` from RESP2 [`Value`]s to
/// [`Value`]s — the same [`ClientBuilder`] stack the KV client uses, with
/// [`RespCodec`] at the bottom. Clone it freely to share its connection.
///
/// ```no_run
/// # async fn example() -> Result<(), wirestack::resp::RedisError> {
/// use std::time::Duration;
/// use wirestack::resp::RedisClient;
///
/// let redis = RedisClient::connect("127.0.0.1:6379").await?;
/// redis.set("greeting", "hello").await?;
/// assert_eq!(redis.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// assert!(redis.expire("greeting", Duration::from_secs(60)).await?);
/// assert_eq!(redis.del(["greeting"]).await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisClient<S = DefaultService> {
    service: S,
}

impl RedisClient<DefaultService> {
    /// Connects to a Redis server with the default stack.
    ///
    /// `addr` is resolved once; its addresses are tried in order and the
    /// first that connects is the one the client reconnects to.
    ///
    /// Keepalive is on with its defaults ([`Keepalive`]): a connection that
    /// has received nothing for an interval sends `PING`, and one that then
    /// receives nothing for 900 ms more is failed like a reset, so that a
    /// server that stopped answering is found within 2 s.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, RedisError> {
        ClientBuilder::new(RespCodec::new())
            .pipeline(pipeline::Builder::new().keepalive(Keepalive::default(), ping))
            .connect_pinned(addr)
            .await
            .map(RedisClient::new)
            .map_err(|e| RedisError::Disconnected(e.into()))
    }
}

/// Redis's `PING`, keepalive's probe.
fn ping() -> Value {
    Value::Array(vec![Value::Bulk(Bytes::from_static(b"PING"))])
}

impl<S> RedisClient<S>
where
    S: Service<Value, Response = Value> + Clone,
    S::Error: Into<BoxError>,
{
    /// A client over a service stack of your own.
    pub fn new(service: S) -> Self {
        RedisClient { service }
    }

    /// The service stack under this client.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Sends one command (its arguments as bulk strings) and returns the raw
    /// reply; an error reply is a [`Value::Error`], not an `Err`.
    pub async fn command<I, A>(&self, args: I) -> Result<Value, RedisError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.send(Value::command(args)).await
    }

    /// Sends one command, already a [`Value`], and returns the raw reply.
    pub async fn send(&self, command: Value) -> Result<Value, RedisError> {
        ServiceExt::<Value>::oneshot(self.service.clone(), command)
            .await
            .map_err(|e| RedisError::from_service(e.into()))
    }

    /// Sends a command and turns an error reply into [`RedisError::Server`].
    async fn call(&self, command: Value) -> Result<Value, RedisError> {
        server_error(self.send(command).await?)
    }

    /// `PING`: checks that the server answers.
    pub async fn ping(&self) -> Result<(), RedisError> {
        match self.call(named(b"PING", [])).await? {
            Value::Simple(pong) if &pong[..] == b"PONG" => Ok(()),
            reply => Err(unexpected("PING", reply)),
        }
    }

    /// `GET key`: its value, or `None` if it does not exist.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, RedisError> {
        get_reply(self.call(named(b"GET", [key.as_ref()])).await?)
    }

    /// `SET key value`: sets it, clearing any TTL.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), RedisError> {
        set_reply(self.call(named(b"SET", [key.as_ref(), value.as_ref()])).await?)
    }

    /// `DEL key...`: removes the keys; returns how many existed.
    ///
    /// If the connection is lost after the command was sent, it is retried
    /// (deleting is idempotent), and the count then covers only what the
    /// retry found.
    pub async fn del<I, K>(&self, keys: I) -> Result<i64, RedisError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let keys: Vec<K> = keys.into_iter().collect();
        match self.call(named(b"DEL", keys.iter().map(AsRef::as_ref))).await? {
            Value::Integer(n) => Ok(n),
            reply => Err(unexpected("DEL", reply)),
        }
    }

    /// `PEXPIRE key ms`: the key expires after `ttl` (rounded down to
    /// milliseconds, at least one); `false` if the key does not exist.
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<bool, RedisError> {
        let millis = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            .to_string();
        match self
            .call(named(b"PEXPIRE", [key.as_ref(), millis.as_bytes()]))
            .await?
        {
            Value::Integer(n) => Ok(n == 1),
            reply => Err(unexpected("PEXPIRE", reply)),
        }
    }
}

/// The first error of type `E` in `error`'s chain of sources.
fn find<'a, E: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// The server's error reply, if a [`RedisError::Auth`] is `error` or one of
/// its sources (a refused on-connect `AUTH`).
fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(RedisError::Auth(message)) = error.downcast_ref::<RedisError>() {
            return Some(message.clone());
        }
        next = error.source();
    }
    None
}

/// Batches: many commands as one [`Batch`] through the stack — written back
/// to back, answered at once, retried as a unit (see [`crate::batch`]) —
/// as redis-rs's `pipe()` sends a pipeline.
impl<S, E> RedisClient<S>
where
    S: Service<Value, Response = Value> + Service<Batch<Value>, Response = BatchResponse<Value, E>> + Clone,
    <S as Service<Value>>::Error: Into<BoxError>,
    <S as Service<Batch<Value>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    /// Sends `commands` as one batch; returns the raw replies in order (an
    /// error reply is a [`Value::Error`]). Fails if any command failed in
    /// the stack (a lost connection, a deadline).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), wirestack::resp::RedisError> {
    /// use wirestack::resp::{RedisClient, Value};
    ///
    /// let redis = RedisClient::connect("127.0.0.1:6379").await?;
    /// let replies = redis
    ///     .batch([Value::command(["SET", "a", "1"]), Value::command(["GET", "a"])])
    ///     .await?;
    /// assert_eq!(replies[1], Value::bulk("1"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn batch(&self, commands: impl IntoIterator<Item = Value>) -> Result<Vec<Value>, RedisError> {
        let batch: Batch<Value> = commands.into_iter().collect();
        let replies = ServiceExt::<Batch<Value>>::oneshot(self.service.clone(), batch)
            .await
            .map_err(|e| RedisError::from_service(e.into()))?;
        replies
            .into_iter()
            .map(|reply| reply.map_err(|e| RedisError::from_service(e.into())))
            .collect()
    }

    /// `GET` of every key, as one batch; the values in the order of the keys.
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, RedisError> {
        let commands = keys.into_iter().map(|key| named(b"GET", [key.as_ref()]));
        self.batch(commands)
            .await?
            .into_iter()
            .map(|reply| get_reply(server_error(reply)?))
            .collect()
    }

    /// `SET` of every pair, as one batch; fails if any failed.
    pub async fn set_many<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), RedisError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let commands = pairs
            .into_iter()
            .map(|(key, value)| named(b"SET", [key.as_ref(), value.as_ref()]));
        for reply in self.batch(commands).await? {
            set_reply(server_error(reply)?)?;
        }
        Ok(())
    }
}

/// A command whose name is a constant: the name is not copied.
fn named<'a>(name: &'static [u8], args: impl IntoIterator<Item = &'a [u8]>) -> Value {
    let mut command = vec![Value::Bulk(Bytes::from_static(name))];
    command.extend(
        args.into_iter()
            .map(|arg| Value::Bulk(Bytes::copy_from_slice(arg))),
    );
    Value::Array(command)
}

fn server_error(reply: Value) -> Result<Value, RedisError> {
    match reply {
        Value::Error(message) => Err(RedisError::Server(String::from_utf8_lossy(&message).into_owned())),
        reply => Ok(reply),
    }
}

fn get_reply(reply: Value) -> Result<Option<Bytes>, RedisError> {
    match reply {
        Value::Bulk(value) => Ok(Some(value)),
        Value::Nil => Ok(None),
        reply => Err(unexpected("GET", reply)),
    }
}

fn set_reply(reply: Value) -> Result<(), RedisError> {
    match reply {
        Value::Simple(ok) if &ok[..] == b"OK" => Ok(()),
        reply => Err(unexpected("SET", reply)),
    }
}

fn unexpected(command: &'static str, reply: Value) -> RedisError {
    RedisError::UnexpectedReply { command, reply }
}
