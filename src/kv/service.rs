//! The server side of the KV protocol: a tower `Service` from frames to the store.

use super::store::{expiry_after, Store};
use super::wal::{Append, Applied, Mutation, ReadInOrder, Wal, WalError};
use super::{Incoming, Request, Response, Status};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// Answers KV requests from a [`Store`], optionally through a write-ahead [`Wal`].
///
/// Without a log ([`KvService::new`]) every request is applied to the store
/// when it is called. With one ([`KvService::with_wal`]) a write is
/// appended to the log when it is called and its future answers once the
/// log has applied it (durable as the fsync policy promises), or `STORAGE`
/// if it could not be logged.
///
/// The server makes one service per connection by cloning: a clone shares
/// the store and the log but starts with no write to wait for.
///
/// # Order of effects
///
/// `PROTOCOL.md` promises that the requests of one connection take effect
/// as if executed one at a time in the order sent, and that across
/// connections the store is linearizable. The server calls a connection's
/// service once per request, in the order the requests arrived, and works
/// on many at once; what makes the effects come out in order is that each
/// request takes its place when it is *called*, at one of these instants
/// (its *linearization point*):
///
/// * **A write** (PUT, PUT_TTL, DELETE) takes effect when the store is
///   changed: at once without a log; with one, when the log's writer
///   thread applies it, in the order of the appends — after its batch was
///   written (and fsynced under `always`), before its answer is sent.
/// * **A read** (GET) of a connection with no write still pending reads
///   the store in `call`: every earlier write of the connection is
///   applied, no later one has been called yet.
/// * **A read that follows a pending write** of its connection is sent to
///   the writer thread down the same channel as the writes
///   ([`Wal::read`]) and answered there at its place in the apply
///   sequence: after that write and every write before it, before any
///   write called after it. (Reading the store when the pending write is
///   done would be too late: the writer applies a whole batch before the
///   connection's task runs again, so later writes of the same connection
///   could already be in the store.) This holds for a read of *any* key,
///   not only the written one: letting a read of another key overtake a
///   pending write would let two connections each miss the other's write
///   (PUT x, GET y on one; PUT y, GET x on the other, both GETs missing),
///   which no single order of the four requests explains.
///
/// Every point lies between the moment the server read the request and the
/// moment its answer left, and within a connection the points follow the
/// order of the requests; all the points of all connections form one
/// order, which is what linearizability asks for.
///
/// **No read sees a write a crash could undo.** With a log, only the writer
/// thread changes the store, and it applies a batch only after writing it
/// to the log — and under `always` after fsyncing it — whether the reader
/// is the writer itself or another connection reading the store directly.
/// So under `always` anything a read returns is on disk, and a `kill -9`
/// right after cannot take it back; under `everysec` and `never` it is at
/// least in the OS's page cache, which a killed process does not lose (an
/// OS crash may, as those policies say). A write the log failed to make
/// durable is answered `STORAGE` and never reaches the store.
///
/// `tests/linearizability.rs` checks this against the real server with a
/// history checker — in memory, under `never` and `always`, and across a
/// `kill -9` — key by key; the cross-key case above is argued here and
/// guarded by a unit test below.
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
            Request::Health => return ResponseFuture::ready(health(self.wal.as_ref())),
            // Authentication is `kv::RequireAuth`'s, in front of this
            // service; reaching here, the server has no token: OK.
            Request::Auth { .. } => return ResponseFuture::ready(Response::ok_empty()),
            Request::Get { key } => {
                return match (&self.pending_write, &self.wal) {
                    (Some(_), Some(wal)) => ResponseFuture {
                        state: State::ReadInOrder(wal.read(key)),
                    },
                    _ => ResponseFuture::ready(read(&self.store, &key)),
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

/// `OK` while writes are taken; `STORAGE` with the reason while the log refuses them.
fn health(wal: Option<&Wal>) -> Response {
    match wal.and_then(Wal::failure) {
        Some(failure) => Response::error(Status::Storage, failure.to_string()),
        None => Response::ok_empty(),
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
    /// A read called while a write of the same connection was pending:
    /// answered by the log's writer at its place among the writes.
    ReadInOrder(ReadInOrder),
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
            State::ReadInOrder(read) => match futures::ready!(Pin::new(read).poll(cx)) {
                Some(value) => Response::ok(value),
                None => Response::not_found(),
            },
        };
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests;
