//! The server side of the KV protocol: a tower `Service` from frames to the store.

use super::store::{expiry_after, Store};
use super::wal::{Append, Applied, Mutation, Wal, WalError};
use super::{Incoming, Request, Response, Status};
use bytes::Bytes;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// Answers KV requests from a [`Store`], optionally through a write-ahead [`Wal`].
///
/// Every request takes its place when it is *called*, not when its future
/// is polled, so the requests of one pipelined connection take effect in
/// the order they were sent even though the server runs several at once.
///
/// Without a log ([`KvService::new`]) a write is applied to the store at
/// once. With one ([`KvService::with_wal`]) a write is appended to the log
/// in call order and its future answers once the log has applied it
/// (durable as the fsync policy promises), or `STORAGE` if it could not be
/// logged. A read on the same service that was called after a write waits
/// for that write first (read-your-writes); reads on other services never
/// wait for the log.
///
/// The server makes one service per connection by cloning: a clone shares
/// the store and the log but starts with no write to wait for.
#[derive(Debug)]
pub struct KvService {
    store: Store,
    wal: Option<Wal>,
    /// The latest write called on this service, until it has finished.
    pending_write: Option<Append>,
}

impl Clone for KvService {
    fn clone(&self) -> Self {
        KvService {
            store: self.store.clone(),
            wal: self.wal.clone(),
            pending_write: None,
        }
    }
}

impl KvService {
    /// A service over an in-memory `store`, without durability.
    pub fn new(store: Store) -> Self {
        KvService {
            store,
            wal: None,
            pending_write: None,
        }
    }

    /// A service that logs every write to `wal` and answers from its store.
    pub fn with_wal(wal: Wal) -> Self {
        KvService {
            store: wal.store().clone(),
            wal: Some(wal),
            pending_write: None,
        }
    }

    /// The store this service answers from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The log this service writes through, if any.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    fn start(&mut self, request: Request) -> ResponseFuture {
        if self.pending_write.as_ref().is_some_and(Append::is_finished) {
            self.pending_write = None;
        }
        let mutation = match request {
            Request::Ping { payload } => return ResponseFuture::ready(Response::ok(payload)),
            // Authentication is `kv::RequireAuth`'s, in front of this
            // service; reaching here, the server has no token: OK.
            Request::Auth { .. } => return ResponseFuture::ready(Response::ok_empty()),
            Request::Get { key } => {
                return match &self.pending_write {
                    Some(write) => ResponseFuture {
                        state: State::ReadAfterWrite {
                            write: write.clone(),
                            key,
                            store: self.store.clone(),
                        },
                    },
                    None => ResponseFuture::ready(read(&self.store, &key)),
                };
            }
            Request::Put { key, value } => Mutation::Put {
                key,
                value,
                expires_at: None,
            },
            Request::PutTtl { key, ttl_ms, value } => Mutation::Put {
                key,
                value,
                expires_at: Some(expiry_after(Duration::from_millis(ttl_ms))),
            },
            Request::Delete { key } => Mutation::Delete { key },
        };
        match &self.wal {
            None => ResponseFuture::ready(answer(Ok(apply(&self.store, mutation)))),
            Some(wal) => {
                let write = wal.append(mutation);
                self.pending_write = Some(write.clone());
                ResponseFuture {
                    state: State::Write(write),
                }
            }
        }
    }
}

fn read(store: &Store, key: &[u8]) -> Response {
    match store.get(key) {
        Some(value) => Response::ok(value),
        None => Response::not_found(),
    }
}

/// Applies a write to a store that has no log.
fn apply(store: &Store, mutation: Mutation) -> Applied {
    match mutation {
        Mutation::Put {
            key,
            value,
            expires_at,
        } => {
            store.put_until(&key, &value, expires_at);
            Applied::Written
        }
        Mutation::Delete { key } => Applied::Deleted {
            existed: store.delete(&key),
        },
    }
}

fn answer(outcome: Result<Applied, WalError>) -> Response {
    match outcome {
        Ok(Applied::Written | Applied::Deleted { existed: true }) => Response::ok_empty(),
        Ok(Applied::Deleted { existed: false }) => Response::not_found(),
        Err(error) => Response::error(Status::Storage, error.to_string()),
    }
}

impl Service<Incoming> for KvService {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        match incoming {
            Incoming::Request(request) => self.start(request),
            Incoming::Rejected(response) => ResponseFuture::ready(response),
        }
    }
}

impl Service<Request> for KvService {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.start(request)
    }
}

/// The answer to one request of a [`KvService`].
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Answered already (reads, pings, writes without a log).
    Ready(Option<Response>),
    /// A write, answered when the log has applied it.
    Write(Append),
    /// A read called after a write of the same connection: it waits for
    /// that write (whatever its outcome), then reads.
    ReadAfterWrite { write: Append, key: Bytes, store: Store },
}

impl ResponseFuture {
    fn ready(response: Response) -> Self {
        ResponseFuture {
            state: State::Ready(Some(response)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every state is `Unpin`: nothing here is pinned structurally.
        let response = match &mut self.get_mut().state {
            State::Ready(response) => response.take().expect("ResponseFuture polled after it completed"),
            State::Write(write) => answer(futures::ready!(Pin::new(write).poll(cx))),
            State::ReadAfterWrite { write, key, store } => {
                let _ = futures::ready!(Pin::new(write).poll(cx));
                read(store, key)
            }
        };
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::wal::{FsyncPolicy, WalConfig};
    use futures::executor::block_on;

    fn key(k: &'static str) -> Bytes {
        Bytes::from_static(k.as_bytes())
    }

    fn call(service: &mut KvService, request: Request) -> Response {
        let Ok(response) = block_on(Service::<Request>::call(service, request));
        response
    }

    fn get(k: &'static str) -> Request {
        Request::Get { key: key(k) }
    }

    fn put(k: &'static str, v: &'static str) -> Request {
        Request::Put {
            key: key(k),
            value: key(v),
        }
    }

    /// The same conversation, in memory and through a log.
    fn every_command_and_its_statuses(mut service: KvService) {
        let ping = call(&mut service, Request::Ping { payload: key("x") });
        assert_eq!((ping.status, &ping.value[..]), (Status::Ok, &b"x"[..]));
        assert_eq!(call(&mut service, get("k")).status, Status::NotFound);
        assert_eq!(call(&mut service, put("k", "v")), Response::ok_empty());
        assert_eq!(call(&mut service, get("k")), Response::ok(key("v")));
        let delete = Request::Delete { key: key("k") };
        assert_eq!(call(&mut service, delete.clone()), Response::ok_empty());
        assert_eq!(call(&mut service, delete).status, Status::NotFound);
        let put_ttl = Request::PutTtl {
            key: key("t"),
            ttl_ms: 60_000,
            value: key("v"),
        };
        assert_eq!(call(&mut service, put_ttl), Response::ok_empty());
        assert_eq!(call(&mut service, get("t")), Response::ok(key("v")));
    }

    #[test]
    fn every_command_and_its_statuses_in_memory() {
        every_command_and_its_statuses(KvService::new(Store::new()));
    }

    #[test]
    fn every_command_and_its_statuses_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap();
        every_command_and_its_statuses(KvService::with_wal(wal));
    }

    #[test]
    fn rejected_frames_are_answered_as_the_codec_said() {
        let mut service = KvService::new(Store::new());
        let rejection = Response::error(Status::BadRequest, "unknown command byte 0x7f");
        let answer = block_on(Service::<Incoming>::call(
            &mut service,
            Incoming::Rejected(rejection.clone()),
        ));
        assert_eq!(answer, Ok(rejection));
    }

    #[test]
    fn a_read_after_a_pending_write_of_the_same_connection_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            fsync: FsyncPolicy::Always,
            ..WalConfig::default()
        };
        let wal = Wal::open(dir.path(), config, Store::new()).unwrap();
        let mut connection = KvService::with_wal(wal);
        // Pipelined: both called before either is awaited.
        let mut batch = Vec::new();
        for i in 0..100u32 {
            let value = Bytes::from(i.to_string());
            batch.push(connection.call(Request::Put {
                key: key("k"),
                value: value.clone(),
            }));
            batch.push(connection.call(get("k")));
            let Ok(read) = block_on(batch.pop().unwrap());
            assert_eq!(read, Response::ok(value));
        }
        for write in batch {
            assert_eq!(block_on(write), Ok(Response::ok_empty()));
        }
        // A clone is another connection: it has no write to wait for.
        assert!(connection.clone().pending_write.is_none());
    }

    #[test]
    fn a_write_that_cannot_be_logged_is_answered_storage_and_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            fsync: FsyncPolicy::Always,
            ..WalConfig::default()
        };
        let (wal, faults) = Wal::open_with_faults(dir.path(), config, Store::new()).unwrap();
        let mut service = KvService::with_wal(wal);
        assert_eq!(call(&mut service, put("k", "old")), Response::ok_empty());
        faults.inject(false, true);
        let failed = call(&mut service, put("k", "new"));
        assert_eq!(failed.status, Status::Storage, "{}", failed.message());
        assert!(failed.message().contains("fsync"), "{}", failed.message());
        assert_eq!(call(&mut service, get("k")), Response::ok(key("old")));
        let delete = call(&mut service, Request::Delete { key: key("k") });
        assert_eq!(delete.status, Status::Storage);
        assert_eq!(call(&mut service, get("k")), Response::ok(key("old")));
    }
}
