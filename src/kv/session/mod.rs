//! The server's session table: what makes a SEQUENCED write apply at most
//! once however often it is resent (`PROTOCOL.md`, "Sessions").
//!
//! One [`Sessions`] is shared by every connection of a server (it lives in
//! the [`Store`](super::Store), so that the log's writer, recovery and
//! snapshots reach it too). For each session it keeps the answers of the
//! writes the client does not have yet (`seq` at or over the highest
//! `acked_below` it sent), by `seq`.
//!
//! # Deciding once, race-free
//!
//! [`Sessions::begin`] decides under one lock what a sequenced write gets:
//! an entry for its `seq` is *claimed* (pending) before the write is
//! applied, so a resend of the same `seq` arriving meanwhile, on any
//! connection, waits for the first one's answer instead of applying it a
//! second time. The [`Ticket`] of the claim records the answer when the
//! write has been applied ([`Ticket::finish`]), by the log's writer right
//! after it applied the write, or frees the entry if the write was never
//! applied (dropped unfinished: a failed or cancelled write), so a later
//! resend applies it.
//!
//! # Memory and eviction
//!
//! A session keeps at most `window` answers: a write is refused unless
//! `seq < acked_below + window`, and the answers below the highest
//! `acked_below` are dropped. At most `max_sessions` sessions are kept;
//! the eviction order is:
//!
//! 1. a session idle (no sequenced write) for `lifetime` is forgotten,
//!    oldest first, checked on every call;
//! 2. when a new session would pass `max_sessions`, the least recently used
//!    session is forgotten.
//!
//! A forgotten session's writes with `seq > 1` are answered
//! `SESSION_EXPIRED`. So is its seq 1, as long as the table remembers the
//! session was forgotten: the ids of the last `max_sessions` forgotten
//! sessions are kept (about 50 bytes each, in memory only), because a
//! client resending its seq 1 — lost with its connection — after the
//! session was forgotten would otherwise open it anew and apply that write
//! a second time (the simulator found it: `tests/sim.rs`, seed 9000127).
//! After a restart the log's records bring its sessions back; only a
//! session evicted, dropped by a snapshot and then restarted past, all
//! while its client still resends its seq 1, is not covered.
//!
//! A session's answers are a B-tree of nodes of 11
//! entries (about 450 bytes; written in order, they stay about half full),
//! so each answer costs about 80 bytes and each session about 150 bytes
//! plus its first node: the table holds at most about
//! `max_sessions × (600 + 96 × window)` bytes (`tests/session_memory.rs`
//! counts 601 bytes per full session with window 1, 1.6 KB with window 16
//! and 39.6 KB with window 512). The defaults (10 000 sessions, window
//! 512) bound it near 500 MB; a client that acknowledges promptly keeps a
//! handful of answers, and so about 600 bytes.

use super::{Response, Status};
use futures::future::{FutureExt, Shared};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// A client's session id, chosen at random by the client; all zero is no session.
pub type SessionId = [u8; 16];

/// What the SEQUENCED flag adds to a version 2 write: its number in the
/// session and the lowest `seq` whose answer the client does not have yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequenced {
    /// The write's number in its session, from 1; the same on every resend.
    pub seq: u64,
    /// The client has the answer of every `seq` below this.
    pub acked_below: u64,
}

/// How big the session table may grow and how long it remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// How far past `acked_below` a `seq` may run, and so how many answers
    /// one session keeps at most; advertised in the answer to `HELLO`.
    /// 0 turns sessions off (every SEQUENCED write is refused).
    pub window: u32,
    /// How many sessions are kept; over it, the least recently used is
    /// forgotten.
    pub max_sessions: usize,
    /// A session with no sequenced write for this long is forgotten.
    pub lifetime: Duration,
}

impl Default for SessionConfig {
    /// Window 512, 10 000 sessions, one hour.
    fn default() -> Self {
        SessionConfig {
            window: 512,
            max_sessions: 10_000,
            lifetime: Duration::from_secs(3600),
        }
    }
}

/// The session table of one server: see the module docs.
///
/// Cloning is cheap and gives another handle to the same table.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<SessionsInner>,
}

#[derive(Debug)]
struct SessionsInner {
    config: SessionConfig,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<SessionId, Session>,
    /// Sessions by their last use (a counter), oldest first.
    lru: BTreeMap<u64, SessionId>,
    tick: u64,
    /// Sessions forgotten, the last `max_sessions` of them: their seq 1 is
    /// refused too (see the module docs).
    forgotten: Forgotten,
}

/// A bounded set of forgotten session ids, oldest dropped first.
#[derive(Debug, Default)]
struct Forgotten {
    ids: std::collections::HashSet<SessionId>,
    order: std::collections::VecDeque<SessionId>,
}

impl Forgotten {
    fn add(&mut self, id: SessionId, max: usize) {
        if max == 0 || !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > max {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    fn contains(&self, id: &SessionId) -> bool {
        self.ids.contains(id)
    }
}

#[derive(Debug)]
struct Session {
    /// The highest `acked_below` seen: answers below it are dropped.
    floor: u64,
    answers: BTreeMap<u64, Entry>,
    /// Its key in `Table::lru`.
    tick: u64,
    last_used: Instant,
}

type Waiter = Shared<oneshot::Receiver<Status>>;

#[derive(Debug)]
enum Entry {
    /// Claimed: being applied. The channel to the resends that wait for
    /// its answer is made by the first of them (most writes have none).
    Pending(Option<(oneshot::Sender<Status>, Waiter)>),
    /// Applied, with the status of its answer (writes answer with no value).
    Answered(Status),
}

/// What [`Sessions::begin`] decided for one sequenced write.
#[derive(Debug)]
pub enum Begin {
    /// Apply it, then [`finish`](Ticket::finish) the ticket with its answer.
    Apply(Ticket),
    /// Applied before: answer this status (with an empty value) and change nothing.
    Answered(Status),
    /// Another send of the same `seq` is being applied: answer what
    /// [`Waiting`] resolves to.
    Wait(Waiting),
    /// Refused without effect: answer this.
    Refused(Response),
}

/// The claim on one (session, `seq`) being applied: see the module docs.
#[derive(Debug)]
pub struct Ticket {
    sessions: Sessions,
    session: SessionId,
    seq: u64,
    /// Until finished.
    live: bool,
}

impl Ticket {
    /// The write was applied and answered `status`: record it for resends
    /// and answer those waiting.
    pub fn finish(mut self, status: Status) {
        self.live = false;
        let mut table = self.sessions.lock();
        let Some(session) = table.sessions.get_mut(&self.session) else {
            return; // evicted meanwhile: its waiters are answered BUSY
        };
        let Some(entry @ Entry::Pending(_)) = session.answers.get_mut(&self.seq) else {
            return;
        };
        let Entry::Pending(waiters) = std::mem::replace(entry, Entry::Answered(status)) else {
            return;
        };
        drop(table);
        if let Some((done, _)) = waiters {
            let _ = done.send(status);
        }
    }

    /// The (session, `seq`) this ticket claims.
    pub fn key(&self) -> (SessionId, u64) {
        (self.session, self.seq)
    }
}

impl Drop for Ticket {
    /// Unfinished: never applied; a later resend may apply it.
    fn drop(&mut self) {
        if std::mem::take(&mut self.live) {
            let mut table = self.sessions.lock();
            if let Some(session) = table.sessions.get_mut(&self.session) {
                if matches!(session.answers.get(&self.seq), Some(Entry::Pending(_))) {
                    session.answers.remove(&self.seq);
                }
            }
        }
    }
}

/// The answer of a resend that came while the first send was being
/// applied: the first's status, or `BUSY` if the first was not applied
/// after all (the client may send it again).
#[derive(Debug)]
pub struct Waiting {
    first: Waiter,
}

impl Waiting {
    /// The answer, once the first send is answered.
    pub fn poll_answer(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Response> {
        let first = futures::ready!(self.first.poll_unpin(cx));
        std::task::Poll::Ready(match first {
            Ok(status) => Response {
                status,
                id: 0,
                value: bytes::Bytes::new(),
            },
            Err(_) => Response::error(
                Status::Busy,
                "an earlier send of this seq was not applied; send it again",
            ),
        })
    }
}

impl Sessions {
    /// An empty table.
    pub fn new(config: SessionConfig) -> Self {
        Sessions {
            inner: Arc::new(SessionsInner {
                config,
                table: Mutex::new(Table::default()),
            }),
        }
    }

    /// How the table was configured.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// How many sessions are known now.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// `true` if no session is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many answers (recorded or pending) `session` holds now.
    pub fn answers_of(&self, session: &SessionId) -> usize {
        self.lock().sessions.get(session).map_or(0, |s| s.answers.len())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic under the lock leaves no half-updated entry: each change
        // is one map operation.
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what the write `sequenced` of `session` gets: see [`Begin`].
    pub fn begin(&self, session: SessionId, sequenced: Sequenced) -> Begin {
        let Sequenced { seq, acked_below } = sequenced;
        let refuse = |message: String| Begin::Refused(Response::error(Status::BadRequest, message));
        let window = u64::from(self.inner.config.window);
        if window == 0 {
            return refuse("SEQUENCED: this server has no sessions (session_window 0)".into());
        }
        if seq == 0 {
            return refuse("seq 0: a session's writes are numbered from 1".into());
        }
        if acked_below > seq {
            return refuse(format!(
                "acked_below {acked_below} is over seq {seq}, still unanswered"
            ));
        }
        if seq >= acked_below.max(1).saturating_add(window) {
            return refuse(format!(
                "seq {seq} is at or over acked_below {acked_below} plus session_window {window}"
            ));
        }
        let now = Instant::now();
        let mut guard = self.lock();
        let table = &mut *guard;
        table.expire_idle(now, self.inner.config.lifetime, self.inner.config.max_sessions);
        if !table.sessions.contains_key(&session) {
            if seq > 1 || table.forgotten.contains(&session) {
                return Begin::Refused(Response::error(
                    Status::SessionExpired,
                    "this server does not know the session (expired or evicted); start a new one",
                ));
            }
            table.insert(session, now, self.inner.config.max_sessions);
        }
        table.touch(&session, now);
        let Some(state) = table.sessions.get_mut(&session) else {
            return refuse("the session was evicted at once (max_sessions 0)".into());
        };
        state.raise_floor(acked_below);
        if seq < state.floor {
            return refuse(format!(
                "seq {seq} is below acked_below {}: the client has its answer",
                state.floor
            ));
        }
        match state.answers.get_mut(&seq) {
            Some(Entry::Answered(status)) => Begin::Answered(*status),
            Some(Entry::Pending(waiters)) => {
                let (_, first) = waiters.get_or_insert_with(|| {
                    let (done, first) = oneshot::channel();
                    (done, first.shared())
                });
                Begin::Wait(Waiting { first: first.clone() })
            }
            None => {
                state.answers.insert(seq, Entry::Pending(None));
                drop(guard);
                Begin::Apply(Ticket {
                    sessions: self.clone(),
                    session,
                    seq,
                    live: true,
                })
            }
        }
    }

    /// Recovery: the log holds the write `sequenced` of `session`, which was
    /// answered `status`.
    pub(crate) fn replay(&self, session: SessionId, sequenced: Sequenced, status: Status) {
        self.restore(session, sequenced.acked_below, [(sequenced.seq, status)]);
    }

    /// Recovery from a snapshot: `session` with its floor and answers.
    pub(crate) fn restore(
        &self,
        session: SessionId,
        floor: u64,
        answers: impl IntoIterator<Item = (u64, Status)>,
    ) {
        let now = Instant::now();
        let mut table = self.lock();
        if !table.sessions.contains_key(&session) {
            table.insert(session, now, self.inner.config.max_sessions);
        }
        table.touch(&session, now);
        if let Some(state) = table.sessions.get_mut(&session) {
            state.raise_floor(floor);
            for (seq, status) in answers {
                if seq >= state.floor {
                    state.answers.insert(seq, Entry::Answered(status));
                }
            }
        }
    }

    /// Calls `each` with every session, its floor and its recorded answers
    /// (pending ones are not applied yet), least recently used first: what
    /// a snapshot keeps. The table is locked meanwhile.
    pub(crate) fn for_each(
        &self,
        mut each: impl FnMut(&SessionId, u64, &mut dyn Iterator<Item = (u64, Status)>),
    ) {
        let table = self.lock();
        for id in table.lru.values() {
            if let Some(session) = table.sessions.get(id) {
                let mut answers = session.answers.iter().filter_map(|(seq, entry)| match entry {
                    Entry::Answered(status) => Some((*seq, *status)),
                    Entry::Pending(_) => None,
                });
                each(id, session.floor, &mut answers);
            }
        }
    }
}

impl Session {
    fn raise_floor(&mut self, acked_below: u64) {
        if acked_below > self.floor {
            self.floor = acked_below;
            // A pending entry dropped here is answered to its waiters all
            // the same; its ticket then records nothing. One by one from
            // the front: usually one or two go per write, and `split_off`
            // would make a new tree each time.
            while let Some(entry) = self.answers.first_entry() {
                if *entry.key() >= acked_below {
                    break;
                }
                entry.remove();
            }
        }
    }
}

impl Table {
    fn expire_idle(&mut self, now: Instant, lifetime: Duration, max_sessions: usize) {
        while let Some((&tick, id)) = self.lru.first_key_value() {
            let idle = self
                .sessions
                .get(id)
                .is_none_or(|session| now.saturating_duration_since(session.last_used) >= lifetime);
            if !idle {
                break;
            }
            let id = *id;
            self.lru.remove(&tick);
            self.sessions.remove(&id);
            self.forgotten.add(id, max_sessions);
        }
    }

    /// A new session, evicting the least recently used over `max_sessions`.
    fn insert(&mut self, id: SessionId, now: Instant, max_sessions: usize) {
        while self.sessions.len() >= max_sessions {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.sessions.remove(&oldest);
            self.forgotten.add(oldest, max_sessions);
        }
        if max_sessions == 0 {
            return;
        }
        self.tick += 1;
        self.lru.insert(self.tick, id);
        self.sessions.insert(
            id,
            Session {
                floor: 1,
                answers: BTreeMap::new(),
                tick: self.tick,
                last_used: now,
            },
        );
    }

    fn touch(&mut self, id: &SessionId, now: Instant) {
        if let Some(session) = self.sessions.get_mut(id) {
            session.last_used = now;
            if session.tick == self.tick {
                return; // the most recent already: its place stays
            }
            self.lru.remove(&session.tick);
            self.tick += 1;
            session.tick = self.tick;
            session.last_used = now;
            self.lru.insert(self.tick, *id);
        }
    }
}
