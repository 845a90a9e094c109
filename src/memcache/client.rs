//! [`MemcacheClient`]: typed memcached commands over any service stack.

mod batch;
mod error;

pub use error::MemcacheError;

use super::{Key, KeyError, MemcacheCodec, Reply, Request, SetMode, Status};
use crate::builder::{ClientBuilder, DefaultStack, Routed, Stack};
use crate::keepalive::Keepalive;
use crate::pipeline;
use crate::retry::RetryConfig;
use crate::route::Placement;
use crate::transport::TcpConnector;
use crate::BoxError;
use bytes::Bytes;
use error::{server_error, unexpected};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::ToSocketAddrs;
use tower::layer::util::Identity;
use tower::{Service, ServiceExt};

/// An item as [`MemcacheClient::get_item`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value.
    pub value: Bytes,
    /// The client flags stored with it.
    pub flags: u32,
    /// Its CAS token, for [`MemcacheClient::cas`].
    pub cas: u64,
}

/// What a [`MemcacheClient::cas`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Stored: the item had not changed since the token was read.
    Stored,
    /// Not stored: the item changed since (`EX`).
    Conflict,
    /// Not stored: the item is gone (`NF`).
    NotFound,
}

/// The client's default stack, as [`MemcacheClient::connect`] builds it: a
/// deadline, retries, reconnection and one pipelined connection.
pub type DefaultService = Stack<DefaultStack<Request, Reply>>;

/// The stack [`MemcacheClient::sharded`] builds: a
/// [`Router`](crate::route::Router) with ketama placement over one default
/// stack per server.
pub type ShardedService =
    Routed<Request, Identity, Duration, RetryConfig, TcpConnector<MemcacheCodec>, pipeline::Builder>;

/// A typed memcached client over a service stack `S` from [`Request`]s to
/// [`Reply`]s — the same [`ClientBuilder`] stack the KV and Redis clients
/// use, with [`MemcacheCodec`] at the bottom. Clone it freely to share its
/// connection.
///
/// Keys are any bytes up to 250 (186 if they are not plain ASCII: those go
/// base64-encoded, see [`Key`]); values are any bytes.
///
/// ```no_run
/// # async fn example() -> Result<(), wirestack::memcache::MemcacheError> {
/// use std::time::Duration;
/// use wirestack::memcache::{CasOutcome, MemcacheClient};
///
/// let cache = MemcacheClient::connect("127.0.0.1:11211").await?;
/// cache.set("greeting", "hello").await?;
/// assert_eq!(cache.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// cache.set_with("session", "data", Some(Duration::from_secs(60)), 7).await?;
/// let item = cache.get_item("session").await?.expect("just set");
/// assert_eq!(item.flags, 7);
/// assert_eq!(cache.cas("session", "new", item.cas, None, 7).await?, CasOutcome::Stored);
/// assert_eq!(cache.incr("visits", 1).await?, None); // not there: no counter
/// assert!(cache.delete("greeting").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemcacheClient<S = DefaultService> {
    service: S,
}

impl MemcacheClient<DefaultService> {
    /// Connects to a memcached with the default stack, keepalive on with
    /// its defaults ([`Keepalive`]: an `mn` after an interval with nothing
    /// received; the connection is failed when nothing answers within
    /// 900 ms more, so a stopped server is found within 2 s).
    ///
    /// `addr` is resolved once; its addresses are tried in order and the
    /// first that connects is the one the client reconnects to.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, MemcacheError> {
        ClientBuilder::new(MemcacheCodec::new())
            .pipeline(pipeline::Builder::new().keepalive(Keepalive::default(), || Request::NoOp))
            .connect_pinned(addr)
            .await
            .map(MemcacheClient::new)
            .map_err(|e| MemcacheError::Disconnected(e.into()))
    }
}

impl MemcacheClient<ShardedService> {
    /// One client over several memcached servers, keys placed by
    /// libmemcached's ketama ([`Ketama`](crate::route::Ketama)) over the
    /// addresses as written — the server other ketama clients given the same
    /// list put each key on. Each server gets the default stack; a batch is
    /// split per server and sent to all at once. A server that fails
    /// repeatedly is ejected (its keys fail at once with
    /// [`MemcacheError::Disconnected`]) until an `mn` probe brings it back;
    /// its keys are not moved.
    ///
    /// Connects in the background. For other settings use
    /// [`ClientBuilder::route`], [`Router::with_placement`](crate::route::Router::with_placement)
    /// and [`MemcacheClient::new`]. Must be called within a Tokio runtime;
    /// fails if `addrs` is empty or lists one twice.
    pub fn sharded<A>(addrs: impl IntoIterator<Item = A>) -> Result<Self, MemcacheError>
    where
        A: ToSocketAddrs + fmt::Display + Clone + Send + Sync + 'static,
    {
        ClientBuilder::new(MemcacheCodec::new())
            .route(addrs)
            .map(|router| MemcacheClient::new(router.with_placement(Placement::Ketama)))
            .map_err(|e| MemcacheError::Other(e.into()))
    }
}

impl<S> MemcacheClient<S>
where
    S: Service<Request, Response = Reply> + Clone,
    S::Error: Into<BoxError>,
{
    /// A client over a service stack of your own.
    pub fn new(service: S) -> Self {
        MemcacheClient { service }
    }

    /// The service stack under this client.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Sends one command and returns the raw answer; an error answer is a
    /// [`Reply`] with an error [`Status`], not an `Err`.
    pub async fn send(&self, request: Request) -> Result<Reply, MemcacheError> {
        ServiceExt::<Request>::oneshot(self.service.clone(), request)
            .await
            .map_err(|e| MemcacheError::from_service(e.into()))
    }

    /// Sends a command and turns an error answer into an `Err`.
    async fn call(&self, request: Request) -> Result<Reply, MemcacheError> {
        server_error(self.send(request).await?)
    }

    /// `mn`: checks that the server answers.
    pub async fn noop(&self) -> Result<(), MemcacheError> {
        match self.call(Request::NoOp).await?.status {
            Status::NoOp => Ok(()),
            status => Err(unexpected("mn", status)),
        }
    }

    /// The value of `key`, or `None` if it does not exist.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, MemcacheError> {
        let key = key_of(key)?;
        Ok(get_reply(self.call(Request::Get { key }).await?)?.map(|item| item.value))
    }

    /// The value of `key` with its client flags and CAS token, or `None`.
    pub async fn get_item(&self, key: impl AsRef<[u8]>) -> Result<Option<Item>, MemcacheError> {
        let key = key_of(key)?;
        get_reply(self.call(Request::GetItem { key }).await?)
    }

    /// Stores `value` under `key`, with no TTL and client flags 0.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<(), MemcacheError> {
        self.set_with(key, value, None, 0).await
    }

    /// Stores `value` under `key` with client flags `flags`, expiring after
    /// `ttl` (rounded up to whole seconds; `None`: never). A value larger
    /// than the server's item limit is [`MemcacheError::TooLarge`].
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
        flags: u32,
    ) -> Result<(), MemcacheError> {
        let request = set_request(key, value, ttl, flags, None)?;
        match self.call(request).await?.status {
            Status::Done => Ok(()),
            status => Err(unexpected("ms", status)),
        }
    }

    /// Compare-and-swap: stores `value` only if `key`'s CAS token is still
    /// `token` (from [`get_item`](Self::get_item)). Never retried after a
    /// lost answer: the retry would see its own write as a conflict.
    pub async fn cas(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        token: u64,
        ttl: Option<Duration>,
        flags: u32,
    ) -> Result<CasOutcome, MemcacheError> {
        let request = set_request(key, value, ttl, flags, Some(token))?;
        match self.call(request).await?.status {
            Status::Done => Ok(CasOutcome::Stored),
            Status::Exists => Ok(CasOutcome::Conflict),
            Status::NotFound => Ok(CasOutcome::NotFound),
            status => Err(unexpected("ms", status)),
        }
    }

    /// Deletes `key`; `true` if it existed.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, MemcacheError> {
        let key = key_of(key)?;
        match self.call(Request::Delete { key, cas: None }).await?.status {
            Status::Done => Ok(true),
            Status::NotFound => Ok(false),
            status => Err(unexpected("md", status)),
        }
    }

    /// Adds `delta` to the decimal value of `key` (wrapping at 2^64) and
    /// returns the new value, or `None` if `key` does not exist. Never
    /// retried after a lost answer.
    pub async fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>, MemcacheError> {
        self.arithmetic(key, delta, false).await
    }

    /// Subtracts `delta` from the decimal value of `key` (stopping at 0)
    /// and returns the new value, or `None` if `key` does not exist.
    pub async fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>, MemcacheError> {
        self.arithmetic(key, delta, true).await
    }

    async fn arithmetic(
        &self,
        key: impl AsRef<[u8]>,
        delta: u64,
        decrement: bool,
    ) -> Result<Option<u64>, MemcacheError> {
        let key = key_of(key)?;
        let reply = self
            .call(Request::Arithmetic {
                key,
                delta,
                decrement,
            })
            .await?;
        match (reply.status, reply.value) {
            (Status::Value, Some(value)) => std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .map(Some)
                .ok_or_else(|| unexpected("ma", Status::Value)),
            (Status::NotFound, _) => Ok(None),
            (status, _) => Err(unexpected("ma", status)),
        }
    }

    /// Sets `key` to expire after `ttl` (`None`: never); `false` if it does
    /// not exist.
    pub async fn touch(&self, key: impl AsRef<[u8]>, ttl: Option<Duration>) -> Result<bool, MemcacheError> {
        let key = key_of(key)?;
        let ttl = ttl_seconds(ttl);
        match self.call(Request::Touch { key, ttl }).await?.status {
            Status::Done => Ok(true),
            Status::Miss => Ok(false),
            status => Err(unexpected("mg", status)),
        }
    }
}

fn key_of(key: impl AsRef<[u8]>) -> Result<Key, KeyError> {
    Key::new(Bytes::copy_from_slice(key.as_ref()))
}

fn set_request(
    key: impl AsRef<[u8]>,
    value: impl Into<Bytes>,
    ttl: Option<Duration>,
    flags: u32,
    cas: Option<u64>,
) -> Result<Request, MemcacheError> {
    Ok(Request::Set {
        key: key_of(key)?,
        value: value.into(),
        ttl: ttl_seconds(ttl),
        flags,
        cas,
        mode: SetMode::Set,
    })
}

/// The longest TTL memcached takes as relative: 30 days. Longer ones are
/// absolute Unix times.
const MAX_RELATIVE_TTL: u64 = 30 * 24 * 3600;

/// A TTL in memcached's terms: 0 for never, whole seconds (rounded up, at
/// least 1) up to 30 days, past that the Unix time it ends at.
fn ttl_seconds(ttl: Option<Duration>) -> u32 {
    let Some(ttl) = ttl else {
        return 0;
    };
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    if seconds <= MAX_RELATIVE_TTL {
        return seconds as u32;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    u32::try_from(now.saturating_add(seconds)).unwrap_or(u32::MAX)
}

fn get_reply(reply: Reply) -> Result<Option<Item>, MemcacheError> {
    match (reply.status, reply.value) {
        (Status::Value, Some(value)) => Ok(Some(Item {
            value,
            flags: reply.flags.unwrap_or(0),
            cas: reply.cas.unwrap_or(0),
        })),
        (Status::Miss, _) => Ok(None),
        (status, _) => Err(unexpected("mg", status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_seconds_and_long_ones_absolute() {
        assert_eq!(ttl_seconds(None), 0);
        assert_eq!(ttl_seconds(Some(Duration::from_millis(1))), 1);
        assert_eq!(ttl_seconds(Some(Duration::from_millis(1500))), 2);
        assert_eq!(
            ttl_seconds(Some(Duration::from_secs(MAX_RELATIVE_TTL))),
            2_592_000
        );
        let absolute = ttl_seconds(Some(Duration::from_secs(MAX_RELATIVE_TTL + 1)));
        assert!(absolute > 1_700_000_000, "{absolute}");
    }

    /// `sharded` places keys where libmemcached does: the placements of
    /// `route::Ketama`'s pinned test, through the client's own router.
    #[tokio::test]
    async fn a_sharded_client_places_keys_where_libmemcached_does() {
        let servers = ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"];
        let client = MemcacheClient::sharded(servers).unwrap();
        // Computed from libmemcached's documented algorithm (Python's hashlib).
        let expected = [0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 2, 0, 1, 2, 1];
        for (i, &server) in expected.iter().enumerate() {
            let key = format!("k{i}");
            assert_eq!(
                client.service().endpoint_of(key.as_bytes()),
                servers[server],
                "{key}"
            );
        }
        assert_eq!(client.service().endpoint_of(b"foo"), servers[0]);
        assert_eq!(client.service().endpoint_of(b"bar"), servers[1]);
    }
}
