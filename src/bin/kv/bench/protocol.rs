//! The protocols `kv bench` speaks: the same load, the same engine, only
//! the requests and the codec differ.

use super::report::Kind;
use super::BenchConfig;
use bytes::Bytes;
use std::future::Future;
use wirestack::kv::{self, ClientCodec, Status};
#[cfg(feature = "memcache")]
use wirestack::memcache;
use wirestack::pipeline::Builder;
use wirestack::resp::{RespCodec, Value};
use wirestack::transport::{self, Codec};
use wirestack::BoxError;

use super::connection::Pipe;
use std::net::SocketAddr;
use wirestack::route::{Probe, RouteKey};

/// Which protocol a load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The KV protocol, to `kv serve`.
    Kv,
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
            "resp" => Ok(Protocol::Resp),
            #[cfg(feature = "memcache")]
            "memcache" => Ok(Protocol::Memcache),
            _ => Err(format!("unknown protocol {text:?}: use kv, resp or memcache")),
        }
    }
}

/// What the engine needs of a protocol.
pub(crate) trait Wire: Send + Sync + 'static {
    type Request: RouteKey + Probe + Send + 'static;
    type Codec: Codec<Self::Request>;
    fn get(key: Bytes) -> Self::Request;
    fn put(key: Bytes, value: Bytes) -> Self::Request;
    /// Whether `request` is a GET or a PUT, for latencies recorded apart.
    fn kind(request: &Self::Request) -> Kind;
    /// `true` for an answer that is not an error (a missing key included).
    fn is_ok(answer: &<Self::Codec as Codec<Self::Request>>::Response) -> bool;
    /// One connection to `addr` as `config` says (TLS, a token), ready for the load.
    fn connect(
        config: &BenchConfig,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Pipe<Self>, BoxError>> + Send
    where
        Self: Sized;
}

pub(crate) struct KvWire;

impl Wire for KvWire {
    type Request = kv::Request;
    type Codec = ClientCodec;

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

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Pipe<Self>, BoxError> {
        let pipeline = crate::secure::connect_bare(addr, &config.tls, &config.token, config.pipeline).await?;
        Ok(pipeline)
    }
}

pub(crate) struct RespWire;

impl Wire for RespWire {
    type Request = Value;
    type Codec = RespCodec;

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

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Pipe<Self>, BoxError> {
        if config.tls.is_some() || config.token.is_some() {
            return Err("--tls and --auth-token-file apply to --protocol kv only".into());
        }
        let transport = transport::connect(addr, RespCodec::new()).await?;
        Ok(Builder::new()
            .max_in_flight(config.pipeline.max(1))
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
    type Codec = memcache::MemcacheCodec;

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

    async fn connect(config: &BenchConfig, addr: SocketAddr) -> Result<Pipe<Self>, BoxError> {
        if config.tls.is_some() || config.token.is_some() {
            return Err("--tls and --auth-token-file apply to --protocol kv only".into());
        }
        let transport = transport::connect(addr, memcache::MemcacheCodec::new()).await?;
        Ok(Builder::new()
            .max_in_flight(config.pipeline.max(1))
            .spawn(transport))
    }
}
