//! The protocols `kv bench` speaks: the same load, the same engine, only
//! the requests, the codec and the multiplexer differ.

use super::report::Kind;
use super::BenchConfig;
use crate::secure::{connect_bare, Greeting};
use bytes::Bytes;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;
use tower::Service;
use wirestack::batch::{Batch, BatchResponse};
use wirestack::kv::{self, ClientCodec, Status};
#[cfg(feature = "memcache")]
use wirestack::memcache;
use wirestack::multiplex::{self, Multiplex};
use wirestack::pipeline::{self, Pipeline, Spawn};
use wirestack::resp::{RespCodec, Value};
use wirestack::route::{Probe, RouteKey};
use wirestack::transport;
use wirestack::BoxError;

/// Which protocol a load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The KV protocol, to `kv serve`: 2.0 (answers by request id, over a
    /// `Multiplex`) where the server speaks it, else 1.1.
    Kv,
    /// KV 1.1 only (answers in order, over a `Pipeline`).
    Kv1,
    /// RESP2 (`SET`/`GET`), to `redis-server` or anything that speaks it.
    Resp,
    /// memcached's meta protocol (`ms`/`mg`), to `memcached`.
    #[cfg(feature = "memcache")]
    Memcache,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Kv => "kv",
            Protocol::Kv1 => "kv1",
            Protocol::Resp => "resp",
            #[cfg(feature = "memcache")]
            Protocol::Memcache => "memcache",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "kv" => Ok(Protocol::Kv),
            "kv1" => Ok(Protocol::Kv1),
            "resp" => Ok(Protocol::Resp),
            #[cfg(feature = "memcache")]
            "memcache" => Ok(Protocol::Memcache),
            _ => Err(format!(
                "unknown protocol {text:?}: use kv, kv1, resp or memcache"
            )),
        }
    }
}

/// What the engine needs of a protocol.
pub(crate) trait Wire: Send + Sync + 'static {
    type Request: RouteKey + Probe + Send + 'static;
    /// What the server answers.
    type Answer: Send + 'static;
    /// One connection's multiplexer: a `Pipeline` or a `Multiplex`.
    type Conn: Service<Self::Request, Response = Self::Answer, Error = pipeline::Error, Future: Send>
        + Service<
            Batch<Self::Request>,
            Response = BatchResponse<Self::Answer, pipeline::Error>,
            Error = pipeline::Error,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static;
    fn get(key: Bytes) -> Self::Request;
    fn put(key: Bytes, value: Bytes) -> Self::Request;
    /// Whether `request` is a GET or a PUT, for latencies recorded apart.
    fn kind(request: &Self::Request) -> Kind;
    /// `true` for an answer that is not an error (a missing key included).
    fn is_ok(answer: &Self::Answer) -> bool;
    /// `true` once `conn`'s connection is gone.
    fn is_broken(conn: &Self::Conn) -> bool;
    /// One connection to `addr` as `config` says (TLS, a token), ready for the load.
    fn connect(
        config: &BenchConfig,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Conn, BoxError>> + Send
    where
        Self: Sized;
}

/// The KV protocol, in the version `V` says.
pub(crate) struct KvWire<V>(PhantomData<V>);

/// KV 2.0 where the server speaks it (else 1.1), over a `Multiplex`.
pub(crate) struct V2;

/// KV 1.1 only, over a `Pipeline`.
pub(crate) struct V1;

/// Which KV version a load speaks: whether it says HELLO, and the
/// multiplexer its connections get.
pub(crate) trait KvVersion: Send + Sync + 'static {
    const HELLO: bool;
    type Builder: Spawn<Framed<TcpStream, ClientCodec>, kv::Request, Service = Self::Conn>
        + Spawn<Framed<TlsStream<TcpStream>, ClientCodec>, kv::Request, Service = Self::Conn>
        + Send;
    type Conn;
    fn builder(in_flight: usize) -> Self::Builder;
    fn is_broken(conn: &Self::Conn) -> bool;
}

impl KvVersion for V2 {
    const HELLO: bool = true;
    type Builder = multiplex::Builder;
    type Conn = Multiplex<kv::Request, kv::Response>;

    fn builder(in_flight: usize) -> multiplex::Builder {
        multiplex::Builder::new().max_in_flight(in_flight)
    }

    fn is_broken(conn: &Self::Conn) -> bool {
        conn.broken().is_some()
    }
}

impl KvVersion for V1 {
    const HELLO: bool = false;
    type Builder = pipeline::Builder;
    type Conn = Pipeline<kv::Request, kv::Response>;

    fn builder(in_flight: usize) -> pipeline::Builder {
        pipeline::Builder::new().max_in_flight(in_flight)
    }

    fn is_broken(conn: &Self::Conn) -> bool {
        conn.broken().is_some()
    }
}

impl<V> Wire for KvWire<V>
where
    V: KvVersion,
    V::Conn: Service<kv::Request, Response = kv::Response, Error = pipeline::Error, Future: Send>
        + Service<
            Batch<kv::Request>,
            Response = BatchResponse<kv::Response, pipeline::Error>,
            Error = pipeline::Error,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type Request = kv::Request;
    type Answer = kv::Response;
    type Conn = V::Conn;

    fn get(key: Bytes) -> kv::Request {
        kv::Request::Get { key }
    }

    fn put(key: Bytes, value: Bytes) -> kv::Request {
        kv::Request::Put { key, value }
    }

    fn kind(request: &kv::Request) -> Kind {
        match request {
            kv::Request::Get { .. } => Kind::Get,
            _ => Kind::Put,
        }
    }

    fn is_ok(answer: &kv::Response) -> bool {
        matches!(answer.status, Status::Ok | Status::NotFound)
    }

    fn is_broken(conn: &Self::Conn) -> bool {
        V::is_broken(conn)
    }

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Self::Conn, BoxError> {
        let greeting = Greeting {
            token: config.token.clone(),
            hello: V::HELLO,
        };
        let builder = V::builder(in_flight(config));
        Ok(connect_bare(addr, &config.tls, greeting, builder).await?)
    }
}

/// The in-flight limit of one load connection: what its load keeps in flight.
fn in_flight(config: &BenchConfig) -> usize {
    config.depth.unwrap_or(config.pipeline).max(1)
}

pub(crate) struct RespWire;

impl Wire for RespWire {
    type Request = Value;
    type Answer = Value;
    type Conn = Pipeline<Value, Value>;

    fn get(key: Bytes) -> Value {
        Value::Array(vec![Value::Bulk(Bytes::from_static(b"GET")), Value::Bulk(key)])
    }

    fn put(key: Bytes, value: Bytes) -> Value {
        Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"SET")),
            Value::Bulk(key),
            Value::Bulk(value),
        ])
    }

    fn kind(request: &Value) -> Kind {
        match request {
            Value::Array(parts) if matches!(parts.first(), Some(Value::Bulk(name)) if &name[..] == b"GET") => {
                Kind::Get
            }
            _ => Kind::Put,
        }
    }

    fn is_ok(answer: &Value) -> bool {
        !matches!(answer, Value::Error(_))
    }

    fn is_broken(conn: &Self::Conn) -> bool {
        conn.broken().is_some()
    }

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Self::Conn, BoxError> {
        if config.tls.is_some() || config.token.is_some() {
            return Err("--tls and --auth-token-file apply to --protocol kv and kv1 only".into());
        }
        let transport = transport::connect(addr, RespCodec::new()).await?;
        Ok(pipeline::Builder::new()
            .max_in_flight(in_flight(config))
            .spawn(transport))
    }
}

/// memcached's meta protocol: `mg <key> v f c` and `ms <key> <len>`, each
/// with the opaque token the codec checks answers against.
#[cfg(feature = "memcache")]
pub(crate) struct MemcacheWire;

#[cfg(feature = "memcache")]
impl MemcacheWire {
    /// The bench's keys (`key:N`, with a prefix) are short plain ASCII,
    /// which every memcached takes.
    fn key(key: Bytes) -> memcache::Key {
        memcache::Key::new(key).expect("the bench's keys are short ASCII")
    }
}

#[cfg(feature = "memcache")]
impl Wire for MemcacheWire {
    type Request = memcache::Request;
    type Answer = memcache::Reply;
    type Conn = Pipeline<memcache::Request, memcache::Reply>;

    fn get(key: Bytes) -> memcache::Request {
        memcache::Request::Get { key: Self::key(key) }
    }

    fn put(key: Bytes, value: Bytes) -> memcache::Request {
        memcache::Request::Set {
            key: Self::key(key),
            value,
            ttl: 0,
            flags: 0,
            cas: None,
            mode: memcache::SetMode::Set,
        }
    }

    fn kind(request: &memcache::Request) -> Kind {
        match request {
            memcache::Request::Get { .. } => Kind::Get,
            _ => Kind::Put,
        }
    }

    fn is_ok(answer: &memcache::Reply) -> bool {
        !answer.is_error()
    }

    fn is_broken(conn: &Self::Conn) -> bool {
        conn.broken().is_some()
    }

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Self::Conn, BoxError> {
        if config.tls.is_some() || config.token.is_some() {
            return Err("--tls and --auth-token-file apply to --protocol kv and kv1 only".into());
        }
        let transport = transport::connect(addr, memcache::MemcacheCodec::new()).await?;
        Ok(pipeline::Builder::new()
            .max_in_flight(in_flight(config))
            .spawn(transport))
    }
}
