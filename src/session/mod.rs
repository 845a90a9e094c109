//! Client sessions: writes a server applies once however often they are
//! resent, so that the [retry](crate::retry) layer may resend them after a
//! lost answer.
//!
//! A protocol with sessions (KV 2.0's SEQUENCED writes) lets a client name
//! a session on each connection and number the writes the server should
//! deduplicate; the server applies each number at most once and answers a
//! resend with the first answer. This module is the client's half, and
//! knows no protocol:
//!
//! * the protocol says which requests are deduplicated ([`Deduplicated`]),
//!   and carries a [`Stamp`] to the wire with a [`Stamped`] request (its
//!   codec encodes `Stamped<Req>`);
//! * a [`ClientSession`] holds the session id (random, shared by every
//!   connection of one client: the protocol's handshake sends it), the next
//!   sequence number, the numbers still unanswered — whose lowest is
//!   `acked_below` — and the window the server allows
//!   ([`set_window`](ClientSession::set_window), from the handshake);
//! * the [`Session`] service (its [`SessionLayer`]) stamps each deduplicated
//!   request with the next number and the current `acked_below`, and counts
//!   it answered when its call ends, however it ends.
//!
//! Put the layer **above** [`Retry`](crate::retry::Retry): a resend is a
//! clone of the stamped request, so it keeps its number. A stamped request
//! is [`Idempotent`] (see the impl on [`Stamped`]), which is all the retry
//! policy needs to resend it after it may have been sent: the server's
//! deduplication makes sending it twice the same as sending it once.
//!
//! A request is sent unstamped — as without sessions — while the server
//! has told no window (a server without sessions: window 0). A
//! deduplicated call *waits* for a number while the session's first number
//! is unanswered (the server learns of a session from its seq 1, and a
//! later number that overtook it on the wire would be answered
//! `SESSION_EXPIRED`) or while as many numbers as the window allows are
//! out past the oldest unanswered one, so the client never sends a number
//! the server would refuse. The wait is bounded ([`SessionLayer::max_wait`],
//! 5 s by default, the builder's default deadline): a call still without a
//! number then fails with [`NoRoom`], which the failure rule counts as
//! [not sent](crate::failure::Failure::NotSent) — it was not. A write sent
//! unstamped instead would have had to be reported "may have been applied"
//! if its connection failed. (A [batch](crate::batch::Batch) does not wait:
//! its requests take the numbers free when it is called, the others go
//! unstamped.)

use crate::retry::Idempotent;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

pub use future::{Answers, CallFuture, ResponseFuture};
pub use layer::{SessionLayer, DEFAULT_MAX_WAIT};
pub use service::Session;

/// A session's id: 16 bytes, random.
pub type SessionId = [u8; 16];

/// What a deduplicated request carries: its number in the session and the
/// lowest number whose answer the client does not have yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The session it is numbered in: a connection whose handshake named
    /// another one must not send it.
    pub session: SessionId,
    /// The request's number, from 1; the same on every resend.
    pub seq: u64,
    /// The client has the answer of every number below this.
    pub acked_below: u64,
}

/// A response that may say the server no longer knows the session (KV
/// `SESSION_EXPIRED`): the [`Session`] layer then renews its session.
pub trait SessionAnswer {
    /// `true` if the server answered that it no longer knows the session.
    fn is_session_expired(&self) -> bool;
}

/// A request the protocol deduplicates in a session (KV: PUT, PUT_TTL,
/// DELETE). Others pass the [`Session`] layer unstamped.
pub trait Deduplicated {
    /// `true` if the server applies this request once per session number.
    fn is_deduplicated(&self) -> bool;
}

/// A request with its session [`Stamp`], if it has one: what the layers
/// under [`Session`] carry, and what the protocol's codec encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<R> {
    /// The request.
    pub request: R,
    /// Its number in the session; `None`: sent as without sessions.
    pub stamp: Option<Stamp>,
}

impl<R> Stamped<R> {
    /// `request` without a stamp.
    pub fn plain(request: R) -> Self {
        Stamped { request, stamp: None }
    }
}

impl<R: Idempotent> Idempotent for Stamped<R> {
    /// A stamped request is: the server applies its number once. Otherwise
    /// as the request says.
    fn is_idempotent(&self) -> bool {
        self.stamp.is_some() || self.request.is_idempotent()
    }
}

/// A router's probe of an ejected endpoint goes unstamped (a read).
impl<R: crate::route::Probe> crate::route::Probe for Stamped<R> {
    fn probe() -> Self {
        Stamped::plain(R::probe())
    }
}

/// The client's side of one session: see the module docs.
///
/// Cloning is cheap and gives another handle to the same session; give one
/// to the [`SessionLayer`] and one to the protocol's handshake.
#[derive(Debug, Clone)]
pub struct ClientSession {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What the server allows past `acked_below`; 0: stamp nothing.
    window: AtomicU32,
    numbers: Mutex<Numbers>,
    /// Woken when a call waiting for a number may find one: the oldest
    /// number was answered, the window changed, or the session was renewed.
    room: Arc<Notify>,
    /// Calls waiting for a number: [`Outstanding`]'s drop wakes them only
    /// if there are any, so the common path pays no lock for them.
    waiting: AtomicUsize,
}

#[derive(Debug)]
struct Numbers {
    /// The session's id: renewed when the server no longer knows it.
    id: SessionId,
    /// The next number to give.
    next: u64,
    /// Numbers given whose calls have not ended.
    unanswered: Unanswered,
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSession {
    /// A new session with a random id (from the standard library's
    /// randomly seeded hasher keys: unique, not secret).
    pub fn new() -> Self {
        Self::with_id(random_id())
    }

    /// A session with the id `id` (never all zero: that means "no session"
    /// to KV).
    pub fn with_id(id: SessionId) -> Self {
        ClientSession {
            inner: Arc::new(Inner {
                window: AtomicU32::new(0),
                numbers: Mutex::new(Numbers {
                    id,
                    next: 1,
                    unanswered: Unanswered::default(),
                }),
                room: Arc::new(Notify::new()),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// The session id (what a new connection's handshake sends).
    pub fn id(&self) -> SessionId {
        self.lock().id
    }

    /// Records the window the server allows for session `id` (the
    /// protocol's handshake calls it with the id it sent and what the
    /// server said; 0 stops stamping). Ignored if the session was renewed
    /// meanwhile.
    pub fn set_window(&self, id: SessionId, window: u32) {
        let numbers = self.lock();
        if numbers.id == id {
            self.inner.window.store(window, Ordering::Relaxed);
            self.inner.room.notify_waiters();
        }
    }

    /// The server no longer knows session `id`: start a new one (a new
    /// random id, numbers from 1), stamping nothing until a handshake names
    /// it ([`set_window`](Self::set_window)). The calls still out in the
    /// old session end as they end; their numbers no longer count.
    pub fn renew(&self, id: SessionId) {
        let mut numbers = self.lock();
        if numbers.id == id {
            self.inner.window.store(0, Ordering::Relaxed);
            *numbers = Numbers {
                id: random_id(),
                next: 1,
                unanswered: Unanswered::default(),
            };
            tracing::debug!("the server no longer knows the session: starting a new one");
            self.inner.room.notify_waiters();
        }
    }

    /// The window the server allows, as last set.
    pub fn window(&self) -> u32 {
        self.inner.window.load(Ordering::Relaxed)
    }

    /// The lowest number whose call has not ended (the next number if none).
    pub fn acked_below(&self) -> u64 {
        let numbers = self.lock();
        numbers.acked_below()
    }

    fn lock(&self) -> MutexGuard<'_, Numbers> {
        // Each change is one set operation: a panic leaves nothing half done.
        self.inner.numbers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next stamp, unless the window is 0 or full (or the first
    /// number is out).
    pub fn stamp(&self) -> Option<Outstanding> {
        match self.number() {
            Numbering::Given(outstanding) => Some(outstanding),
            Numbering::Plain | Numbering::Wait => None,
        }
    }

    /// The next number, or why there is none.
    pub(crate) fn number(&self) -> Numbering {
        let window = u64::from(self.window());
        if window == 0 {
            return Numbering::Plain;
        }
        let mut numbers = self.lock();
        let acked_below = numbers.acked_below();
        if numbers.next >= acked_below.saturating_add(window) {
            return Numbering::Wait;
        }
        // The server learns of a session from its seq 1: until that call
        // has ended, a later number could reach it first (calls made
        // together race to the wire) and be answered SESSION_EXPIRED. So
        // seq 1 goes alone.
        if numbers.next > 1 && numbers.unanswered.contains(1) {
            return Numbering::Wait;
        }
        let seq = numbers.next;
        numbers.next += 1;
        numbers.unanswered.push(seq);
        Numbering::Given(Outstanding {
            session: self.clone(),
            stamp: Stamp {
                session: numbers.id,
                seq,
                acked_below,
            },
        })
    }

    /// What a waiting call awaits: woken whenever a number may have come
    /// free. The call counts itself waiting first ([`Waiter`]), and enables
    /// the notification before each look at the numbers.
    pub(crate) fn room(&self) -> Arc<Notify> {
        self.inner.room.clone()
    }

    /// Counts a call waiting for a number until the returned guard drops.
    pub(crate) fn waiter(&self) -> Waiter {
        // SeqCst, paired with the load in `Outstanding::drop`: either that
        // load sees this call, or this call's next look at the numbers
        // (under their lock, taken after the drop's) sees the number freed.
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        Waiter(self.clone())
    }
}

/// What [`ClientSession::number`] gives.
#[derive(Debug)]
pub(crate) enum Numbering {
    /// A number.
    Given(Outstanding),
    /// The server has no sessions (window 0): send it unstamped.
    Plain,
    /// No number is free now: wait for one.
    Wait,
}

/// A deduplicated call found no free session number within
/// [`SessionLayer::max_wait`]: the window was full behind an older call
/// still unanswered, or the session's first number was. The request was not
/// sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom {
    pub(crate) waited: std::time::Duration,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no session number came free within {:?} (an older write is still unanswered); the request was not sent",
            self.waited
        )
    }
}

impl std::error::Error for NoRoom {}

impl crate::failure::Classify for NoRoom {
    fn failure(&self) -> Option<crate::failure::Failure> {
        Some(crate::failure::Failure::NotSent)
    }
}

impl ClientSession {
    /// `request`, stamped if it is deduplicated and a number is free.
    pub(crate) fn stamped<R: Deduplicated>(&self, request: R) -> (Stamped<R>, Option<Outstanding>) {
        let outstanding = if request.is_deduplicated() {
            self.stamp()
        } else {
            None
        };
        let stamped = Stamped {
            stamp: outstanding.as_ref().map(Outstanding::stamp),
            request,
        };
        (stamped, outstanding)
    }
}

/// The numbers given whose calls have not ended: a run of flags from the
/// lowest of them, so that giving a number, ending one and finding the
/// lowest are O(1) (amortized) and allocate nothing once the run has
/// grown to the window.
#[derive(Debug, Default)]
struct Unanswered {
    /// The number `ended[0]` stands for: the lowest unanswered one, while
    /// `ended` is not empty.
    base: u64,
    /// Whether each number from `base` on has ended; never starts with `true`.
    ended: VecDeque<bool>,
}

impl Unanswered {
    /// Counts `seq` unanswered: the next number, above every other.
    fn push(&mut self, seq: u64) {
        if self.ended.is_empty() {
            self.base = seq;
        }
        // Numbers between are ones given in an older session: ended.
        let at = seq.saturating_sub(self.base) as usize;
        if at < self.ended.len() {
            self.ended[at] = false;
        } else {
            self.ended.resize(at, true);
            self.ended.push_back(false);
        }
    }

    /// Counts `seq` answered.
    fn remove(&mut self, seq: u64) {
        let Some(at) = seq.checked_sub(self.base) else {
            return;
        };
        if let Some(ended) = self.ended.get_mut(at as usize) {
            *ended = true;
        }
        while self.ended.front() == Some(&true) {
            self.ended.pop_front();
            self.base += 1;
        }
    }

    /// The lowest unanswered number.
    fn first(&self) -> Option<u64> {
        (!self.ended.is_empty()).then_some(self.base)
    }

    fn contains(&self, seq: u64) -> bool {
        seq.checked_sub(self.base)
            .and_then(|at| self.ended.get(at as usize))
            .is_some_and(|ended| !ended)
    }
}

impl Numbers {
    fn acked_below(&self) -> u64 {
        self.unanswered.first().unwrap_or(self.next)
    }
}

/// A number given and not yet answered; dropping it counts it answered
/// (the call ended: answered, or given up on — never to be resent).
#[derive(Debug)]
pub struct Outstanding {
    pub(crate) session: ClientSession,
    stamp: Stamp,
}

impl Outstanding {
    /// The stamp to send.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        let mut numbers = self.session.lock();
        if numbers.id == self.stamp.session {
            let oldest = numbers.unanswered.first() == Some(self.stamp.seq);
            numbers.unanswered.remove(self.stamp.seq);
            drop(numbers);
            // Only the oldest number holds the window (and seq 1 is the
            // oldest while it is out).
            if oldest && self.session.inner.waiting.load(Ordering::SeqCst) > 0 {
                self.session.inner.room.notify_waiters();
            }
        }
    }
}

/// A call counted waiting for a number (see [`ClientSession::waiter`]).
#[derive(Debug)]
pub(crate) struct Waiter(ClientSession);

impl Waiter {
    /// The session waited on.
    pub(crate) fn session(&self) -> &ClientSession {
        &self.0
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.0.inner.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn random_id() -> SessionId {
    use std::hash::{BuildHasher, RandomState};
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = (nanos, std::process::id());
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&RandomState::new().hash_one(seed).to_le_bytes());
    id[8..].copy_from_slice(&RandomState::new().hash_one(seed).to_le_bytes());
    if id == [0; 16] {
        id[0] = 1;
    }
    id
}
