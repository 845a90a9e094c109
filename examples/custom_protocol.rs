//! Bring your own protocol: a line-based counter service, end to end, on
//! nothing but the framework (`cargo run --example custom_protocol`).
//!
//! The protocol: `INCR name` adds one to a counter and answers `VALUE n`,
//! `GET name` answers `VALUE n`, and an overloaded server answers `BUSY`
//! (nothing applied). It needs three things from us — a codec, and the retry
//! layer's two answers (is a request idempotent, is a reply a refusal) — and
//! gets the pipelined server, reconnection, retries and deadlines for free.

use bytes::BytesMut;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};
use tower::limit::ConcurrencyLimitLayer;
use tower::ServiceExt;
use wirestack::builder::ClientBuilder;
use wirestack::retry::{Idempotent, RetryableResponse};
use wirestack::server::Server;

#[derive(Debug, Clone, PartialEq)]
enum Request {
    Incr(String),
    Get(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Value(u64),
    Busy,
}

/// INCR applied twice counts twice: retried only if it was never sent.
impl Idempotent for Request {
    fn is_idempotent(&self) -> bool {
        matches!(self, Request::Get(_))
    }
}

/// BUSY means "not applied, try later": retried whatever the request.
impl RetryableResponse for Reply {
    fn is_retryable(&self) -> bool {
        *self == Reply::Busy
    }
}

/// The codec's error keeps I/O failures as their own source, so the
/// framework tells a lost connection from a peer that speaks something else.
#[derive(Debug, thiserror::Error)]
enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("bad line: {0}")]
    Malformed(String),
}

impl From<LinesCodecError> for CodecError {
    fn from(error: LinesCodecError) -> Self {
        match error {
            LinesCodecError::Io(io) => CodecError::Io(io),
            other => CodecError::Malformed(other.to_string()),
        }
    }
}

/// A message's wire form: `VERB argument`, one line.
trait Line: Sized {
    fn to_line(&self) -> String;
    fn from_line(verb: &str, arg: &str) -> Option<Self>;
}

impl Line for Request {
    fn to_line(&self) -> String {
        match self {
            Request::Incr(name) => format!("INCR {name}"),
            Request::Get(name) => format!("GET {name}"),
        }
    }
    fn from_line(verb: &str, name: &str) -> Option<Self> {
        match verb {
            "INCR" => Some(Request::Incr(name.into())),
            "GET" => Some(Request::Get(name.into())),
            _ => None,
        }
    }
}

impl Line for Reply {
    fn to_line(&self) -> String {
        match self {
            Reply::Value(n) => format!("VALUE {n}"),
            Reply::Busy => "BUSY".into(),
        }
    }
    fn from_line(verb: &str, n: &str) -> Option<Self> {
        match verb {
            "VALUE" => n.parse().ok().map(Reply::Value),
            "BUSY" => Some(Reply::Busy),
            _ => None,
        }
    }
}

/// The codec of both ends: lines of at most 256 bytes, decoded into `In`.
#[derive(Debug, Clone)]
struct Lines<In>(LinesCodec, PhantomData<fn() -> In>);

impl<In> Lines<In> {
    fn new() -> Self {
        Lines(LinesCodec::new_with_max_length(256), PhantomData)
    }
}

impl<In: Line> Decoder for Lines<In> {
    type Item = In;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        let Some(line) = self.0.decode(src)? else {
            return Ok(None);
        };
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        In::from_line(verb, arg)
            .map(Some)
            .ok_or(CodecError::Malformed(line))
    }
}

impl<In, Out: Line> Encoder<Out> for Lines<In> {
    type Error = CodecError;
    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(self.0.encode(message.to_line(), dst)?)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The server: a plain tower service, refusing every fifth request.
    let counters = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let seen = Arc::new(AtomicU64::new(0));
    let service = tower::service_fn(move |request: Request| {
        let (counters, seen) = (counters.clone(), seen.clone());
        async move {
            if seen.fetch_add(1, Ordering::Relaxed) % 5 == 4 {
                return Ok::<_, std::convert::Infallible>(Reply::Busy);
            }
            let mut counters = counters.lock().unwrap_or_else(|e| e.into_inner());
            Ok(match request {
                Request::Incr(name) => {
                    Reply::Value(*counters.entry(name).and_modify(|n| *n += 1).or_insert(1))
                }
                Request::Get(name) => Reply::Value(counters.get(&name).copied().unwrap_or(0)),
            })
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = tower::make::Shared::new(service);
    tokio::spawn(Server::new(Lines::<Request>::new()).serve(listener, shared, std::future::pending()));

    // The client: the default stack, plus one layer of tower's own.
    let client = ClientBuilder::new(Lines::<Reply>::new())
        .timeout(Duration::from_secs(5))
        .layer(ConcurrencyLimitLayer::new(16))
        .connect::<Request>(addr)
        .await?;
    let incrs = (0..100).map(|_| client.clone().oneshot(Request::Incr("visits".into())));
    futures::future::try_join_all(incrs).await?;
    let total = client.clone().oneshot(Request::Get("visits".into())).await?;
    println!(
        "visits = {total:?}; retries of refused requests: {}",
        client.retry_stats().retries
    );
    assert_eq!(total, Reply::Value(100), "every INCR applied exactly once");
    Ok(())
}
