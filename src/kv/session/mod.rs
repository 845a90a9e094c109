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
//! A session's answers are kept in order of `seq` in a ring buffer of
//! 24-byte entries, which doubles as it grows and is not shrunk, so each
//! answer costs at most 48 bytes and each session about 250 bytes plus its
//! buffer: the table holds at most about `max_sessions × (600 + 96 ×
//! window)` bytes (`tests/session_memory.rs` counts 251 bytes per full
//! session with window 1, 539 with window 16 and 12.5 KB with window 512).
//! The defaults (10 000 sessions, window 512) bound it near 500 MB (125 MB
//! counted); a client that acknowledges promptly keeps a handful of
//! answers, and so about 300 bytes.
//!
//! # Cost per write
//!
//! A sequenced write takes the table's lock twice (claim, record) and reads
//! the clock once; nothing is hashed per write (a connection hashes its
//! session's id once, at `HELLO`: `Sessions::key`), the idle check looks
//! at the least recently used session only once the earliest instant it
//! could be idle has come, and finding, claiming and dropping answers are
//! a few steps each on the ring buffer (see `answers.rs`).

use super::{Response, Status};
use answers::Answers;
use futures::future::{FutureExt, Shared};
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

mod answers;
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

/// A session id with its hash ([`Sessions::key`]): a connection hashes
/// its session's id once, at `HELLO`, not per write. The hash is the same
/// in every table of the process, so a key fits any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionKey {
    id: SessionId,
    hash: u64,
}

impl SessionKey {
    fn of(id: SessionId) -> Self {
        // SipHash with a random key, as the store's: peers choose the ids.
        static HASHER: OnceLock<RandomState> = OnceLock::new();
        SessionKey {
            id,
            hash: HASHER.get_or_init(RandomState::new).hash_one(id),
        }
    }
}

/// The sessions by id: a hash table whose hashes the callers bring
/// ([`SessionKey`]).
#[derive(Debug, Default)]
struct SessionMap {
    table: HashTable<Session>,
}

impl SessionMap {
    fn get(&self, key: &SessionKey) -> Option<&Session> {
        self.table.find(key.hash, |session| session.id == key.id)
    }

    fn get_mut(&mut self, key: &SessionKey) -> Option<&mut Session> {
        self.table.find_mut(key.hash, |session| session.id == key.id)
    }

    fn contains(&self, key: &SessionKey) -> bool {
        self.get(key).is_some()
    }

    /// Adds `session` (not there yet) under `key`.
    fn insert(&mut self, key: &SessionKey, session: Session) {
        self.table
            .insert_unique(key.hash, session, |session| SessionKey::of(session.id).hash);
    }

    fn remove(&mut self, id: SessionId) {
        let key = SessionKey::of(id);
        if let Ok(entry) = self.table.find_entry(key.hash, |session| session.id == id) {
            entry.remove();
        }
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The session `id` (hashed here: for the paths that are not per write).
    fn by_id(&self, id: SessionId) -> Option<&Session> {
        self.get(&SessionKey::of(id))
    }
}

#[derive(Debug, Default)]
struct Table {
    sessions: SessionMap,
    /// Sessions by their last use (a counter), oldest first.
    lru: BTreeMap<u64, SessionId>,
    tick: u64,
    /// Sessions forgotten, the last `max_sessions` of them: their seq 1 is
    /// refused too (see the module docs).
    forgotten: Forgotten,
    /// No session can have been idle for its lifetime before this instant
    /// (the least recently used one's last use plus the lifetime, or
    /// earlier): until then the idle check has nothing to look at. `None`:
    /// look.
    idle_check_at: Option<Instant>,
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
    id: SessionId,
    /// The highest `acked_below` seen: answers below it are dropped.
    floor: u64,
    answers: Answers<Entry>,
    /// Its key in `Table::lru`.
    tick: u64,
    last_used: Instant,
}

type Waiter = Shared<oneshot::Receiver<Status>>;

#[derive(Debug)]
enum Entry {
    /// Claimed: being applied. The channel to the resends that wait for
    /// its answer is made by the first of them (most writes have none;
    /// boxed, so that an entry stays two words).
    Pending(Option<Box<(oneshot::Sender<Status>, Waiter)>>),
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
    session: SessionKey,
    seq: u64,
    /// Until finished.
    live: bool,
}

impl Ticket {
    /// The write was applied and answered `status`: record it for resends
    /// and answer those waiting.
    pub fn finish(mut self, status: Status) {
        self.live = false;
        self.sessions.record(&self.session, self.seq, status);
    }

    /// The (session, `seq`) this ticket claims.
    pub fn key(&self) -> (SessionId, u64) {
        (self.session.id, self.seq)
    }
}

impl Drop for Ticket {
    /// Unfinished: never applied; a later resend may apply it.
    fn drop(&mut self) {
        if std::mem::take(&mut self.live) {
            self.sessions.unclaim(&self.session, self.seq);
        }
    }
}

/// [`Sessions::apply_once`]'s claim while it applies: frees it if the
/// write panics, as an unfinished [`Ticket`] does.
struct Applying<'a> {
    sessions: &'a Sessions,
    session: SessionKey,
    seq: u64,
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.sessions.unclaim(&self.session, self.seq);
    }
}

/// What [`Sessions::claim`] decided.
enum Claim {
    /// The entry of the write's `seq` is claimed (pending): apply it.
    Claimed,
    /// Anything but [`Begin::Apply`].
    Decided(Begin),
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
        self.lock()
            .sessions
            .by_id(*session)
            .map_or(0, |s| s.answers.len())
    }

    /// `id` with its hash, for [`begin_keyed`](Self::begin_keyed).
    pub(crate) fn key(&self, id: SessionId) -> SessionKey {
        SessionKey::of(id)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic under the lock leaves no half-updated entry: each change
        // is one map operation.
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what the write `sequenced` of `session` gets: see [`Begin`].
    pub fn begin(&self, session: SessionId, sequenced: Sequenced) -> Begin {
        self.begin_keyed(self.key(session), sequenced)
    }

    /// [`begin`](Self::begin) with the session's id hashed already.
    pub(crate) fn begin_keyed(&self, session: SessionKey, sequenced: Sequenced) -> Begin {
        match self.claim(session, sequenced) {
            Claim::Claimed => Begin::Apply(Ticket {
                sessions: self.clone(),
                session,
                seq: sequenced.seq,
                live: true,
            }),
            Claim::Decided(begin) => begin,
        }
    }

    /// [`begin_keyed`](Self::begin_keyed) for a write applied at once (a
    /// server without a log): if it is to be applied, `apply` applies it
    /// and its answer is recorded, and that answer is `Ok`; anything else
    /// [`begin`](Self::begin) decides is the `Err` (never
    /// [`Begin::Apply`]). The same as a ticket finished right away, without
    /// making one.
    pub(crate) fn apply_once(
        &self,
        session: SessionKey,
        sequenced: Sequenced,
        apply: impl FnOnce() -> Status,
    ) -> Result<Status, Begin> {
        match self.claim(session, sequenced) {
            Claim::Claimed => {
                let applying = Applying {
                    sessions: self,
                    session,
                    seq: sequenced.seq,
                };
                let status = apply();
                std::mem::forget(applying);
                self.record(&session, sequenced.seq, status);
                Ok(status)
            }
            Claim::Decided(begin) => Err(begin),
        }
    }

    /// The write `seq` of `session`, claimed, was applied and answered
    /// `status`: record it for resends and answer those waiting.
    fn record(&self, session: &SessionKey, seq: u64, status: Status) {
        let mut table = self.lock();
        let Some(session) = table.sessions.get_mut(session) else {
            return; // evicted meanwhile: its waiters are answered BUSY
        };
        let Some(entry @ Entry::Pending(_)) = session.answers.get_mut(seq) else {
            return;
        };
        let Entry::Pending(waiters) = std::mem::replace(entry, Entry::Answered(status)) else {
            return;
        };
        drop(table);
        if let Some(waiters) = waiters {
            let _ = waiters.0.send(status);
        }
    }

    /// The write `seq` of `session`, claimed, was never applied: a later
    /// resend may apply it.
    fn unclaim(&self, session: &SessionKey, seq: u64) {
        let mut table = self.lock();
        if let Some(session) = table.sessions.get_mut(session) {
            if matches!(session.answers.get(seq), Some(Entry::Pending(_))) {
                session.answers.remove(seq);
            }
        }
    }

    /// Decides what the write gets, claiming its entry if it is to be
    /// applied: see [`Begin`].
    fn claim(&self, session: SessionKey, sequenced: Sequenced) -> Claim {
        let Sequenced { seq, acked_below } = sequenced;
        let refuse =
            |message: String| Claim::Decided(Begin::Refused(Response::error(Status::BadRequest, message)));
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
        if !table.sessions.contains(&session) {
            // A new session: the one write in a session that looks twice.
            if seq > 1 || table.forgotten.contains(&session.id) {
                return Claim::Decided(Begin::Refused(Response::error(
                    Status::SessionExpired,
                    "this server does not know the session (expired or evicted); start a new one",
                )));
            }
            table.insert(session, now, &self.inner.config);
        }
        let Table {
            sessions, lru, tick, ..
        } = table;
        let Some(state) = sessions.get_mut(&session) else {
            return refuse("the session was evicted at once (max_sessions 0)".into());
        };
        state.touch(now, lru, tick);
        state.raise_floor(acked_below);
        if seq < state.floor {
            return refuse(format!(
                "seq {seq} is below acked_below {}: the client has its answer",
                state.floor
            ));
        }
        match state.answers.get_mut(seq) {
            Some(Entry::Answered(status)) => Claim::Decided(Begin::Answered(*status)),
            Some(Entry::Pending(waiters)) => {
                let waiters = waiters.get_or_insert_with(|| {
                    let (done, first) = oneshot::channel();
                    Box::new((done, first.shared()))
                });
                Claim::Decided(Begin::Wait(Waiting {
                    first: waiters.1.clone(),
                }))
            }
            None => {
                state.answers.insert(seq, Entry::Pending(None));
                Claim::Claimed
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
        let mut guard = self.lock();
        let table = &mut *guard;
        let session = SessionKey::of(session);
        if !table.sessions.contains(&session) {
            table.insert(session, now, &self.inner.config);
        }
        let Table {
            sessions, lru, tick, ..
        } = table;
        if let Some(state) = sessions.get_mut(&session) {
            state.touch(now, lru, tick);
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
            if let Some(session) = table.sessions.by_id(*id) {
                let mut answers = session.answers.iter().filter_map(|(seq, entry)| match entry {
                    Entry::Answered(status) => Some((seq, *status)),
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
            // the same; its ticket then records nothing.
            self.answers.drop_below(acked_below);
        }
    }

    /// Used now: the most recently used session of the table whose `lru`
    /// and `tick` these are.
    fn touch(&mut self, now: Instant, lru: &mut BTreeMap<u64, SessionId>, tick: &mut u64) {
        self.last_used = now;
        if self.tick == *tick {
            return; // the most recent already: its place stays
        }
        lru.remove(&self.tick);
        *tick += 1;
        self.tick = *tick;
        lru.insert(*tick, self.id);
    }
}

impl Table {
    fn expire_idle(&mut self, now: Instant, lifetime: Duration, max_sessions: usize) {
        if self.idle_check_at.is_some_and(|at| now < at) {
            return;
        }
        self.idle_check_at = None;
        while let Some((&tick, id)) = self.lru.first_key_value() {
            let last_used = self.sessions.by_id(*id).map(|session| session.last_used);
            if let Some(last_used) = last_used {
                if now.saturating_duration_since(last_used) < lifetime {
                    // The least recently used is not idle yet, nor any
                    // other: none can be before it is.
                    self.idle_check_at = last_used.checked_add(lifetime);
                    break;
                }
            }
            let id = *id;
            self.lru.remove(&tick);
            self.sessions.remove(id);
            self.forgotten.add(id, max_sessions);
        }
    }

    /// A new session, evicting the least recently used over `max_sessions`.
    fn insert(&mut self, key: SessionKey, now: Instant, config: &SessionConfig) {
        let max_sessions = config.max_sessions;
        while self.sessions.len() >= max_sessions {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.sessions.remove(oldest);
            self.forgotten.add(oldest, max_sessions);
        }
        if max_sessions == 0 {
            return;
        }
        if self.sessions.is_empty() {
            // The only one: idle no sooner than its lifetime from now (with
            // others, the bound they set holds, being earlier).
            self.idle_check_at = now.checked_add(config.lifetime);
        }
        self.tick += 1;
        self.lru.insert(self.tick, key.id);
        self.sessions.insert(
            &key,
            Session {
                id: key.id,
                floor: 1,
                answers: Answers::default(),
                tick: self.tick,
                last_used: now,
            },
        );
    }
}
