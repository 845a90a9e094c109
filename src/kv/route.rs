//! The KV protocol's answers to the router — a request's key, and `PING` as
//! the probe — and [`KvClient::sharded`]: one client over several servers.

use super::client::{KvClient, KvError};
use super::codec::ClientCodec;
use super::Hello;
use super::{Request, Response};
use crate::builder::{ClientBuilder, Stack};
use crate::deadline::Deadline;
use crate::keepalive::Keepalive;
use crate::multiplex::{self, Multiplex};
use crate::pool::Pool;
use crate::reconnect::Reconnect;
use crate::retry::Retry;
use crate::route::{Accrual, Router};
use crate::session::{ClientSession, Session, SessionLayer, Stamped};
use crate::transport::{OnConnect, TcpConnector};
use bytes::Bytes;
use std::fmt;
use tokio::net::ToSocketAddrs;

/// A request is placed by its key; `PING`, `HEALTH` and `AUTH` have none
/// and go to any server that is up.
impl crate::route::RouteKey for Request {
    fn route_key(&self) -> Option<&[u8]> {
        match self {
            Request::Get { key }
            | Request::Put { key, .. }
            | Request::Delete { key }
            | Request::PutTtl { key, .. } => Some(key),
            Request::Ping { .. } | Request::Auth { .. } | Request::Health | Request::Hello { .. } => None,
        }
    }
}

/// An ejected server is probed with an empty `PING`.
impl crate::route::Probe for Request {
    fn probe() -> Self {
        Request::Ping {
            payload: Bytes::new(),
        }
    }
}

/// The stack [`KvClient::sharded`] builds: a [`Router`] over one default
/// stack per server (protocol 2.0 where the server speaks it, over a
/// [`Multiplex`] with keepalive), each with a [`Session`] of its own — the
/// session of that server, shared by every connection to it.
pub type ShardedService =
    Router<Stack<Session<Deadline<Retry<Accrual<Pool<Reconnect<Multiplex<Stamped<Request>, Response>>>>>>>>>;

impl KvClient<ShardedService> {
    /// One client over several KV servers, as a memcached client spreads
    /// keys: each key lives on one server, chosen by rendezvous hashing of
    /// the servers' addresses as written (see [`crate::route`]) — every
    /// client given the same list, in any order, puts a key on the same
    /// server. Each server gets the default stack ([`KvClient::connect`]'s);
    /// a batch is split per server and sent to all of them at once.
    ///
    /// Writes go in sessions, as [`KvClient::connect`]'s do: one session per
    /// server (a session is numbered by the server that deduplicates it),
    /// shared by every connection to that server, so that a write lost with
    /// its connection is resent with its number and applied once.
    ///
    /// A server that fails repeatedly is ejected: calls for its keys fail
    /// at once with [`KvError::Disconnected`], whose source is a
    /// [`route::Ejected`](crate::route::Ejected) naming it, until a `PING`
    /// probe brings it back; the other servers' keys are unaffected. Their
    /// state: `client.service().handle().stats()`.
    ///
    /// Connects in the background (calls wait for their server's first
    /// connection within their deadline). For other settings (a pool of
    /// connections per server, TLS, a token, the ejection rule) use
    /// [`ClientBuilder::route`] and [`KvClient::new`]. Must be called
    /// within a Tokio runtime; fails if `addrs` is empty or lists one twice.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wirestack::kv::{KvClient, KvServer, KvServerConfig};
    ///
    /// let a = KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?;
    /// let b = KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?;
    /// let client = KvClient::sharded([a.local_addr(), b.local_addr()])?;
    /// client.put_many((0..100).map(|i| (format!("key{i}"), "v"))).await?;
    /// assert_eq!(a.store().len() + b.store().len(), 100);
    /// assert!(a.store().len() > 20 && b.store().len() > 20);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sharded<A>(addrs: impl IntoIterator<Item = A>) -> Result<Self, KvError>
    where
        A: ToSocketAddrs + fmt::Display + Clone + Send + Sync + 'static,
    {
        let targets = addrs.into_iter().map(|address| (address.to_string(), address));
        ClientBuilder::new(ClientCodec::new())
            .on_connect(Hello::new())
            .multiplex(multiplex::Builder::new().keepalive(Keepalive::default()))
            .route_layered::<Stamped<Request>, _, _>(targets, |_, builder| {
                let session = ClientSession::new();
                let hello = Hello::new().with_session(session.clone());
                let connector = OnConnect::new(TcpConnector::new(ClientCodec::new()), hello);
                (builder.connector(connector), SessionLayer::new(session))
            })
            .map(KvClient::new)
            .map_err(|e| KvError::Other(e.into()))
    }
}
