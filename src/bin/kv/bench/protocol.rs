//! The two protocols `kv bench` speaks: the same load, the same engine,
//! only the requests and the codec differ.

use bytes::Bytes;
use wirestack::kv::{self, ClientCodec, Status};
use wirestack::resp::{RespCodec, Value};
use wirestack::transport::Codec;

/// Which protocol a load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The KV protocol, to `kv serve`.
    Kv,
    /// RESP2 (`SET`/`GET`), to `redis-server` or anything that speaks it.
    Resp,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "kv" => Ok(Protocol::Kv),
            "resp" => Ok(Protocol::Resp),
            _ => Err(format!("unknown protocol {text:?}: use kv or resp")),
        }
    }
}

/// What the engine needs of a protocol.
pub(crate) trait Wire: Send + Sync + 'static {
    type Request: Send + 'static;
    type Codec: Codec<Self::Request>;
    fn codec() -> Self::Codec;
    fn get(key: Bytes) -> Self::Request;
    fn put(key: Bytes, value: Bytes) -> Self::Request;
    /// `true` for an answer that is not an error (a missing key included).
    fn is_ok(answer: &<Self::Codec as Codec<Self::Request>>::Response) -> bool;
}

pub(crate) struct KvWire;

impl Wire for KvWire {
    type Request = kv::Request;
    type Codec = ClientCodec;

    fn codec() -> ClientCodec {
        ClientCodec::new()
    }

    fn get(key: Bytes) -> kv::Request {
        kv::Request::Get { key }
    }

    fn put(key: Bytes, value: Bytes) -> kv::Request {
        kv::Request::Put { key, value }
    }

    fn is_ok(answer: &kv::Response) -> bool {
        matches!(answer.status, Status::Ok | Status::NotFound)
    }
}

pub(crate) struct RespWire;

impl Wire for RespWire {
    type Request = Value;
    type Codec = RespCodec;

    fn codec() -> RespCodec {
        RespCodec::new()
    }

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

    fn is_ok(answer: &Value) -> bool {
        !matches!(answer, Value::Error(_))
    }
}
