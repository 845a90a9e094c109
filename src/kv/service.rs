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
mod tests {
    use super::*;
    use crate::kv::wal::{FsyncPolicy, WalConfig};
    use bytes::Bytes;
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
        assert_eq!(call(&mut service, Request::Health), Response::ok_empty());
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

    fn logged(fsync: FsyncPolicy) -> (tempfile::TempDir, KvService) {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            fsync,
            ..WalConfig::default()
        };
        let wal = Wal::open(dir.path(), config, Store::new()).unwrap();
        (dir, KvService::with_wal(wal))
    }

    const POLICIES: [FsyncPolicy; 3] = [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::Never];

    #[test]
    fn a_read_after_a_pending_write_of_the_same_connection_sees_it() {
        for fsync in POLICIES {
            let (_dir, mut connection) = logged(fsync);
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
                assert_eq!(read, Response::ok(value), "{fsync}");
            }
            for write in batch {
                assert_eq!(block_on(write), Ok(Response::ok_empty()));
            }
            // A clone is another connection: it has no write to wait for.
            assert!(connection.clone().pending_write.is_none());
        }
    }

    /// The report of issue 10: PUT v1, GET, PUT v2, GET, PUT v3, GET in one
    /// write; every GET answered v3, because it read the store once its
    /// write was done, when the later writes of the batch were applied too.
    #[test]
    fn a_pipelined_read_sees_no_later_write_of_its_connection() {
        for fsync in POLICIES {
            for round in 0..50 {
                let (_dir, mut connection) = logged(fsync);
                let mut answers = Vec::new();
                for v in ["v1", "v2", "v3"] {
                    answers.push(connection.call(put("k", v)));
                    // A read of another key sits between the writes too.
                    answers.push(connection.call(get("other")));
                    answers.push(connection.call(get("k")));
                    answers.push(connection.call(put("other", v)));
                }
                let answers: Vec<Response> = answers.into_iter().map(|a| block_on(a).unwrap()).collect();
                for (i, v) in ["v1", "v2", "v3"].into_iter().enumerate() {
                    let other_before = if i == 0 {
                        Response::not_found()
                    } else {
                        Response::ok(key(["v1", "v2"][i - 1]))
                    };
                    assert_eq!(answers[4 * i + 1], other_before, "{fsync}, round {round}");
                    assert_eq!(answers[4 * i + 2], Response::ok(key(v)), "{fsync}, round {round}");
                }
            }
        }
    }

    /// Two connections, each writing one key and then, pipelined, reading
    /// the other's: at least one of the reads comes after both writes.
    #[test]
    fn a_read_of_another_key_does_not_overtake_a_pending_write() {
        for fsync in POLICIES {
            for round in 0..50 {
                let (_dir, mut a) = logged(fsync);
                let mut b = a.clone();
                // Called in this order, none awaited: A's read may miss y,
                // but then B's read comes after A's write.
                let write_x = a.call(put("x", "1"));
                let read_y = a.call(get("y"));
                let write_y = b.call(put("y", "1"));
                let read_x = b.call(get("x"));
                let reads = [read_y, read_x].map(|read| block_on(read).unwrap().status);
                for write in [write_x, write_y] {
                    assert_eq!(block_on(write).unwrap(), Response::ok_empty());
                }
                assert_ne!(reads, [Status::NotFound; 2], "{fsync}, round {round}");
            }
        }
    }

    #[test]
    fn a_read_after_a_failed_write_sees_the_store_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            fsync: FsyncPolicy::Always,
            ..WalConfig::default()
        };
        let (wal, faults) = Wal::open_with_faults(dir.path(), config, Store::new()).unwrap();
        let mut service = KvService::with_wal(wal);
        assert_eq!(call(&mut service, put("k", "old")), Response::ok_empty());
        faults.inject(false, true);
        let failed = service.call(put("k", "new"));
        let read = service.call(get("k"));
        assert_eq!(block_on(failed).unwrap().status, Status::Storage);
        assert_eq!(block_on(read).unwrap(), Response::ok(key("old")));
    }

    #[test]
    fn a_read_queued_after_the_log_stopped_reads_the_store() {
        let (_dir, mut service) = logged(FsyncPolicy::Always);
        assert_eq!(call(&mut service, put("k", "v")), Response::ok_empty());
        let wal = service.wal().unwrap().clone();
        let write = service.call(put("k", "w"));
        block_on(wal.shutdown()).unwrap();
        // The log is closed: this read cannot be answered by its writer.
        let read = service.call(get("k"));
        assert_eq!(block_on(write).unwrap(), Response::ok_empty());
        assert_eq!(block_on(read).unwrap(), Response::ok(key("w")));
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
        // PING still echoes; HEALTH says writes are refused, and why.
        let ping = call(&mut service, Request::Ping { payload: key("p") });
        assert_eq!(ping, Response::ok(key("p")));
        let health = call(&mut service, Request::Health);
        assert_eq!(health.status, Status::Storage);
        assert!(health.message().contains("fsync"), "{}", health.message());

        // Once the disk is back the log recovers by itself.
        faults.inject(false, false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while call(&mut service, Request::Health).status != Status::Ok {
            assert!(std::time::Instant::now() < deadline, "the log never recovered");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(call(&mut service, put("k", "newer")), Response::ok_empty());
        assert_eq!(call(&mut service, get("k")), Response::ok(key("newer")));
    }
}
