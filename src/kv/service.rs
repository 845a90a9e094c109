//! The server side of the KV protocol: a tower `Service` from frames to the store.

use super::store::Store;
use super::{Incoming, Request, Response};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// Answers KV requests from a [`Store`].
///
/// Every request is applied when it is *called*, not when its future is
/// polled, so the requests of one pipelined connection take effect in the
/// order they were sent even though the server runs several at once.
#[derive(Debug, Clone)]
pub struct KvService {
    store: Store,
}

impl KvService {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        KvService { store }
    }

    /// The store this service answers from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies one request to the store and says what to answer.
    pub fn apply(&self, request: Request) -> Response {
        match request {
            Request::Ping { payload } => Response::ok(payload),
            Request::Get { key } => match self.store.get(&key) {
                Some(value) => Response::ok(value),
                None => Response::not_found(),
            },
            Request::Put { key, value } => {
                self.store.put(&key, &value);
                Response::ok_empty()
            }
            Request::PutTtl { key, ttl_ms, value } => {
                self.store
                    .put_with_ttl(&key, &value, Duration::from_millis(ttl_ms));
                Response::ok_empty()
            }
            Request::Delete { key } => {
                if self.store.delete(&key) {
                    Response::ok_empty()
                } else {
                    Response::not_found()
                }
            }
        }
    }
}

impl Service<Incoming> for KvService {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        ready(Ok(match incoming {
            Incoming::Request(request) => self.apply(request),
            Incoming::Rejected(response) => response,
        }))
    }
}

impl Service<Request> for KvService {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ready(Ok(self.apply(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Status;
    use bytes::Bytes;

    fn key(k: &'static str) -> Bytes {
        Bytes::from_static(k.as_bytes())
    }

    #[test]
    fn every_command_and_its_statuses() {
        let service = KvService::new(Store::new());
        let ping = service.apply(Request::Ping { payload: key("x") });
        assert_eq!((ping.status, &ping.value[..]), (Status::Ok, &b"x"[..]));
        assert_eq!(
            service.apply(Request::Get { key: key("k") }).status,
            Status::NotFound
        );
        assert_eq!(
            service.apply(Request::Put {
                key: key("k"),
                value: key("v")
            }),
            Response::ok_empty()
        );
        assert_eq!(
            service.apply(Request::Get { key: key("k") }),
            Response::ok(key("v"))
        );
        assert_eq!(
            service.apply(Request::Delete { key: key("k") }),
            Response::ok_empty()
        );
        assert_eq!(
            service.apply(Request::Delete { key: key("k") }).status,
            Status::NotFound
        );
        let put_ttl = Request::PutTtl {
            key: key("t"),
            ttl_ms: 60_000,
            value: key("v"),
        };
        assert_eq!(service.apply(put_ttl), Response::ok_empty());
        assert_eq!(
            service.apply(Request::Get { key: key("t") }),
            Response::ok(key("v"))
        );
    }

    #[test]
    fn rejected_frames_are_answered_as_the_codec_said() {
        let mut service = KvService::new(Store::new());
        let rejection = Response::error(Status::BadRequest, "unknown command byte 0x7f");
        let answer = futures::executor::block_on(Service::<Incoming>::call(
            &mut service,
            Incoming::Rejected(rejection.clone()),
        ));
        assert_eq!(answer, Ok(rejection));
    }
}
