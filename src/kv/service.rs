//! The server side of the KV protocol: a tower `Service` from frames to the store.

use super::hello::Negotiated;
use super::session::{Begin, Sequenced, SessionId, SessionKey, Waiting};
use super::store::{expiry_after, Store};
use super::wal::{Append, Applied, Claim, Lost, Mutation, ReadInOrder, Wal, WalError};
use super::{Incoming, Request, Response, Status, PROTOCOL_VERSION};
use bytes::Bytes;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;
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
/// **Version 2: per key.** A version 2 connection
/// ([`Incoming::Identified`]) is promised less (`PROTOCOL.md`, "Order"):
/// its requests **on the same key** take effect in the order sent;
/// requests on different keys may take effect in any order. So a read
/// waits only for a pending write *of its own key* on its connection:
///
/// * a write takes effect when the writer applies it, as above (the writes
///   of a connection still reach the log in the order they were called, so
///   two writes of one key keep their order);
/// * a GET of a key with no write of that key pending on this connection
///   reads the store in `call`, even while writes of other keys are
///   pending: the anomaly above (two connections each missing the other's
///   write of another key) is allowed by version 2, whose connection order
///   binds only requests on the same key — a client that needs two keys
///   ordered sends the second request after the first's answer, and then
///   the first's point lies before the second was read;
/// * a GET of a key with a write of it pending on this connection goes
///   through the log in order, exactly as a 1.1 read after a pending write.
///
/// Each point still lies between the read of its request and its answer,
/// and points of one key on one connection follow the order sent: the
/// history is linearizable with the per-key connection order.
///
/// A 1.1 request is unchanged: connection-wide order, as argued above.
///
/// # Deadlines and cancellation (version 2)
///
/// A request whose deadline (the frame's `budget_us` reckoned from when it
/// was read) has passed when `call` starts it is answered
/// `DEADLINE_EXCEEDED`, with no effect. A logged write, or a read waiting
/// in order, carries a [`Claim`] to the log's writer: if its deadline has
/// passed when the writer comes to take it, it is answered
/// `DEADLINE_EXCEEDED` and never applied. A `CANCEL` of a request of this
/// connection still queued for the writer makes it lose its claim: it is
/// never applied and is answered `CANCELLED` at once. A request the writer
/// has taken (or one with no log to wait for: without a log everything
/// takes effect in `call`) has taken effect, or will: it is answered as
/// usual, and the `CANCEL` does nothing — as it does for an id not in
/// flight. The claim's compare-and-swap makes the decision race-free.
///
/// # HELLO
///
/// `HELLO` (version 2 or later asked) is answered `OK` with version 2,
/// [`max_in_flight`](Self::with_max_in_flight), and the `session_window`
/// of the store's [session table](super::Sessions). The `session_id` it
/// names (if not all zero) is this connection's session. The codec switches
/// the connection to version 2 once that `OK` is encoded.
///
/// # Sessions (version 2)
///
/// A SEQUENCED write goes through [`Sessions::begin`](super::Sessions::begin),
/// which decides under one lock whether it is applied (its `seq` claimed
/// first, so two connections sending the same `seq` at once never both
/// apply it), answered with the first answer of its `seq`, made to wait
/// for a send of the same `seq` being applied, or refused (`BAD_REQUEST`,
/// `SESSION_EXPIRED`). Without a log the write is applied and its answer
/// recorded in `call`; with one it is logged as a sequenced record
/// ([`Wal::append_sequenced`]) and the writer records its answer right
/// after applying it. A SEQUENCED write on a connection whose `HELLO`
/// named no session is answered `BAD_REQUEST`.
///
/// A resend takes no place of its own: its effect is its first send's
/// (applied once, at that send's point). A resend answered at once is
/// answered after that point; one that waits for a first send still being
/// applied on another connection is answered after it too. It is not
/// recorded as a pending write of its own connection, so a GET of the same
/// key pipelined behind it on that connection does not wait for the first
/// send (a client resends a write only after its first connection broke,
/// so nothing it sent later on the new connection was ordered after it).
#[derive(Debug)]
pub struct KvService {
    store: Store,
    wal: Option<Wal>,
    /// The latest 1.1 write called on this service, until it has finished.
    pending_write: Option<Append>,
    /// Version 2: the latest write of each key called on this service, and
    /// the claims of the requests queued for the log's writer, by request
    /// id; entries of finished work are pruned as the maps grow.
    pending: Pending,
    /// What `HELLO` advertises as `max_in_flight`.
    max_in_flight: u32,
    /// The session this connection's `HELLO` named, hashed for the table.
    session: Option<SessionKey>,
}

/// A version 2 connection's work queued for the log.
#[derive(Debug, Default)]
struct Pending {
    /// The latest write of each key, with its claim.
    writes: HashMap<Bytes, (Append, Arc<Claim>)>,
    claims: HashMap<u32, Arc<Claim>>,
    /// Prune when either map reaches this size.
    prune_at: usize,
}

/// A write still to be waited for: neither answered nor lost (a lost
/// write is never applied, and its `Append` may never be polled).
fn still_pending((write, claim): &(Append, Arc<Claim>)) -> bool {
    !write.is_finished() && claim.lost().is_none()
}

impl Pending {
    const MIN_PRUNE_AT: usize = 64;

    fn has_write_of(&self, key: &[u8]) -> bool {
        self.writes.get(key).is_some_and(still_pending)
    }

    fn insert(&mut self, id: u32, claim: Arc<Claim>, write: Option<(Bytes, Append)>) {
        if let Some((key, write)) = write {
            self.writes.insert(key, (write, claim.clone()));
        }
        self.claims.insert(id, claim);
        if self.claims.len().max(self.writes.len()) >= self.prune_at {
            // Amortized: the maps at most double between prunings.
            self.claims.retain(|_, claim| claim.is_queued());
            self.writes.retain(|_, write| still_pending(write));
            self.prune_at = (2 * self.claims.len().max(self.writes.len())).max(Self::MIN_PRUNE_AT);
        }
    }
}

/// The `max_in_flight` a [`KvService`] advertises by default: the server's
/// default per-connection limit.
fn default_max_in_flight() -> u32 {
    u32::try_from(crate::server::ServeConfig::default().max_in_flight_per_connection).unwrap_or(u32::MAX)
}

impl Clone for KvService {
    fn clone(&self) -> Self {
        KvService {
            store: self.store.clone(),
            wal: self.wal.clone(),
            pending_write: None,
            pending: Pending::default(),
            max_in_flight: self.max_in_flight,
            session: None,
        }
    }
}

/// What a version 2 request brings besides itself.
#[derive(Debug, Clone, Copy)]
struct Identified {
    id: u32,
    deadline: Option<Instant>,
}

impl KvService {
    /// A service over an in-memory `store`, without durability.
    pub fn new(store: Store) -> Self {
        KvService {
            store,
            wal: None,
            pending_write: None,
            pending: Pending::default(),
            max_in_flight: default_max_in_flight(),
            session: None,
        }
    }

    /// A service that logs every write to `wal` and answers from its store.
    pub fn with_wal(wal: Wal) -> Self {
        KvService {
            wal: Some(wal.clone()),
            ..KvService::new(wal.store().clone())
        }
    }

    /// Advertises `max_in_flight` in the answer to `HELLO`: how many
    /// requests of a connection the server works on at once (the server's
    /// [`ServeConfig::max_in_flight_per_connection`](crate::server::ServeConfig::max_in_flight_per_connection),
    /// which is the default and what [`KvServer`](super::KvServer) sets).
    #[must_use]
    pub fn with_max_in_flight(mut self, max_in_flight: u32) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// The store this service answers from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The log this service writes through, if any.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    fn start(&mut self, request: Request, identified: Option<Identified>) -> ResponseFuture {
        if self.pending_write.as_ref().is_some_and(Append::is_finished) {
            self.pending_write = None;
        }
        let mutation = match write_of(request) {
            Ok(mutation) => mutation,
            Err(Request::Ping { payload }) => return ResponseFuture::ready(Response::ok(payload)),
            Err(Request::Health) => return ResponseFuture::ready(health(self.wal.as_ref())),
            // Authentication is `kv::RequireAuth`'s, in front of this
            // service; reaching here, the server has no token: OK.
            Err(Request::Auth { .. }) => return ResponseFuture::ready(Response::ok_empty()),
            Err(Request::Hello { version, session_id }) => {
                return ResponseFuture::ready(self.hello(version, session_id, identified))
            }
            Err(Request::Get { key }) => return self.get(key, identified),
            // `write_of` takes every write.
            Err(other) => {
                let message = format!("{:?} was not taken as a write", other.command());
                return ResponseFuture::ready(Response::error(Status::Error, message));
            }
        };
        let Some(wal) = &self.wal else {
            return ResponseFuture::ready(answer(Ok(apply(&self.store, mutation))));
        };
        match identified {
            None => {
                let write = wal.append(mutation);
                self.pending_write = Some(write.clone());
                ResponseFuture::new(State::Write(write), None)
            }
            Some(Identified { id, deadline }) => {
                let key = mutation.key().clone();
                let claim = Claim::new(deadline);
                let write = wal.append_claimed(mutation, claim.clone());
                self.pending.insert(id, claim.clone(), Some((key, write.clone())));
                ResponseFuture::new(State::Write(write), Some(claim))
            }
        }
    }

    /// A SEQUENCED write of a version 2 connection: see the type's docs.
    fn start_sequenced(
        &mut self,
        request: Request,
        identified: Identified,
        sequenced: Sequenced,
    ) -> ResponseFuture {
        let Some(session) = self.session else {
            return ResponseFuture::ready(Response::error(
                Status::BadRequest,
                "SEQUENCED on a connection whose HELLO named no session",
            ));
        };
        let Ok(mutation) = write_of(request) else {
            // The codec lets SEQUENCED through on writes only.
            return ResponseFuture::ready(Response::error(
                Status::BadRequest,
                "SEQUENCED is for PUT, PUT_TTL and DELETE only",
            ));
        };
        let Some(wal) = &self.wal else {
            // No log: applied and its answer recorded at once, no ticket made.
            let store = &self.store;
            let once = store
                .sessions()
                .apply_once(session, sequenced, || apply(store, mutation).status());
            return match once {
                Ok(status) => ResponseFuture::ready(status_only(status)),
                Err(begin) => not_applied(begin),
            };
        };
        let ticket = match self.store.sessions().begin_keyed(session, sequenced) {
            Begin::Apply(ticket) => ticket,
            begin => return not_applied(begin),
        };
        if self.pending_write.as_ref().is_some_and(Append::is_finished) {
            self.pending_write = None;
        }
        let Identified { id, deadline } = identified;
        let key = mutation.key().clone();
        let claim = Claim::new(deadline);
        let write = wal.append_sequenced(mutation, claim.clone(), ticket, sequenced);
        self.pending.insert(id, claim.clone(), Some((key, write.clone())));
        ResponseFuture::new(State::Write(write), Some(claim))
    }

    fn get(&mut self, key: Bytes, identified: Option<Identified>) -> ResponseFuture {
        let Some(wal) = &self.wal else {
            return ResponseFuture::ready(read(&self.store, &key));
        };
        // 1.1: after any pending write of the connection; version 2: after
        // a pending write of this key (or a 1.1 write still pending).
        let behind_a_write =
            self.pending_write.is_some() || identified.is_some() && self.pending.has_write_of(&key);
        match (behind_a_write, identified) {
            (false, _) => ResponseFuture::ready(read(&self.store, &key)),
            (true, None) => ResponseFuture::new(State::ReadInOrder(wal.read(key)), None),
            (true, Some(Identified { id, deadline })) => {
                let claim = Claim::new(deadline);
                let read = wal.read_claimed(key, claim.clone());
                self.pending.insert(id, claim.clone(), None);
                ResponseFuture::new(State::ReadInOrder(read), Some(claim))
            }
        }
    }

    fn hello(&mut self, version: u16, session_id: SessionId, identified: Option<Identified>) -> Response {
        if identified.is_some() {
            return Response::error(Status::BadRequest, "a second HELLO");
        }
        if version < PROTOCOL_VERSION {
            return Response::error(
                Status::BadRequest,
                format!("HELLO asks for version {version}; this server speaks 1.1 and 2"),
            );
        }
        let negotiated = Negotiated {
            version: PROTOCOL_VERSION,
            max_in_flight: self.max_in_flight,
            session_window: self.store.sessions().config().window,
        };
        self.session = (session_id != [0; 16]).then(|| self.store.sessions().key(session_id));
        Response::ok(negotiated.encode())
    }

    /// A version 2 `CANCEL` of request `id`: see the type's docs.
    fn cancel(&mut self, id: u32) {
        if let Some(claim) = self.pending.claims.remove(&id) {
            claim.cancel();
        }
    }
}

/// The answer of a sequenced write that is not to be applied now:
/// answered before, waiting for another send of its `seq`, or refused.
fn not_applied(begin: Begin) -> ResponseFuture {
    match begin {
        Begin::Answered(status) => ResponseFuture::ready(status_only(status)),
        Begin::Wait(waiting) => ResponseFuture::new(State::Waiting(waiting), None),
        Begin::Refused(response) => ResponseFuture::ready(response),
        // Not a decision this is called with; a ticket dropped unfinished
        // frees its claim.
        Begin::Apply(_) => ResponseFuture::ready(Response::error(Status::Error, "not applied")),
    }
}

/// The change a write makes; any other request back as it is.
fn write_of(request: Request) -> Result<Mutation, Request> {
    match request {
        Request::Put { key, value } => Ok(Mutation::Put {
            key,
            value,
            expires_at: None,
        }),
        Request::PutTtl { key, ttl_ms, value } => Ok(Mutation::Put {
            key,
            value,
            expires_at: Some(expiry_after(Duration::from_millis(ttl_ms))),
        }),
        Request::Delete { key } => Ok(Mutation::Delete { key }),
        other => Err(other),
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
        Ok(applied) => status_only(applied.status()),
        Err(error) => Response::error(Status::Storage, error.to_string()),
    }
}

/// A write's answer: a status, no value.
fn status_only(status: Status) -> Response {
    Response {
        status,
        id: 0,
        value: Bytes::new(),
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
            Incoming::Request(request) => self.start(request, None),
            Incoming::Rejected(response) => ResponseFuture::ready(response),
            Incoming::Identified {
                id,
                deadline,
                sequenced,
                request,
            } => {
                let identified = Identified { id, deadline };
                let future = if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    ResponseFuture::ready(lost(Lost::DeadlineExceeded))
                } else if let Some(sequenced) = sequenced {
                    self.start_sequenced(request, identified, sequenced)
                } else {
                    self.start(request, Some(identified))
                };
                future.answering(id)
            }
            Incoming::Cancel { id } => {
                self.cancel(id);
                // No answer of its own: the server's order drops it.
                ResponseFuture::ready(Response::ok_empty())
            }
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
        self.start(request, None)
    }
}

/// The answer to one request of a [`KvService`].
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
    /// The request id the answer carries (0 on 1.1).
    id: u32,
    /// For work queued for the log on version 2: lost (cancelled, expired)
    /// means that answer, at once.
    claim: Option<Arc<Claim>>,
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
    /// A resend of a sequenced write whose first send is being applied:
    /// answered with the first's answer.
    Waiting(Waiting),
}

impl ResponseFuture {
    fn new(state: State, claim: Option<Arc<Claim>>) -> Self {
        ResponseFuture { state, id: 0, claim }
    }

    /// Answered already; with the response's own id (a rejection's).
    fn ready(response: Response) -> Self {
        let id = response.id;
        Self::new(State::Ready(Some(response)), None).answering(id)
    }

    fn answering(mut self, id: u32) -> Self {
        self.id = id;
        self
    }
}

/// The answer to work that was never applied.
fn lost(why: Lost) -> Response {
    match why {
        Lost::Cancelled => Response::error(Status::Cancelled, "cancelled before it took effect"),
        Lost::DeadlineExceeded => Response::error(
            Status::DeadlineExceeded,
            "the deadline passed before the request started; it had no effect",
        ),
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every state is `Unpin`: nothing here is pinned structurally.
        let this = self.get_mut();
        let lost_claim = |claim: &Option<Arc<Claim>>| claim.as_ref().and_then(|claim| claim.lost());
        if let Some(claim) = &this.claim {
            // Lost while the writer is busy: answered now, not when the
            // writer comes to drop it.
            claim.register(cx.waker());
        }
        let response = match (lost_claim(&this.claim), &mut this.state) {
            (Some(why), _) => lost(why),
            (None, State::Ready(response)) => {
                response.take().expect("ResponseFuture polled after it completed")
            }
            (None, State::Write(write)) => answer(futures::ready!(Pin::new(write).poll(cx))),
            (None, State::ReadInOrder(read)) => match futures::ready!(Pin::new(read).poll(cx)) {
                Some(value) => Response::ok(value),
                None => Response::not_found(),
            },
            (None, State::Waiting(waiting)) => futures::ready!(waiting.poll_answer(cx)),
        };
        // Lost while it was being polled: the writer dropped it (the
        // answer above is then `Closed`, or a read of the store).
        let response = match lost_claim(&this.claim) {
            Some(why) => lost(why),
            None => response,
        };
        Poll::Ready(Ok(response.with_id(this.id)))
    }
}

#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
