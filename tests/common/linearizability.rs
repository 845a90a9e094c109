//! A linearizability checker for histories of KV operations.
//!
//! A history is every operation a test made: when it was sent, when (and
//! what) its answer came, and which *session* sent it. The checker decides
//! whether some order of the operations explains every answer, where
//!
//! * each operation takes effect at one instant between its send and its
//!   answer — an operation answered before another was sent precedes it;
//! * the operations of one session take effect in the order they were sent
//!   (a session is a connection whose requests the server promises to
//!   apply in order; leave it `None` when there is no such promise);
//! * an operation whose answer never came *may have happened*: it may take
//!   effect at any instant after it was sent, or never (it still comes
//!   after the answered operations sent before it in its session, but not
//!   necessarily after the unanswered ones).
//!
//! The model is one register per key (absent, or a value): PUT sets it,
//! DELETE clears it and answers whether it was set, GET answers it. A
//! register history is linearizable exactly when the history of each key
//! is (linearizability is local — Herlihy and Wing; the register model is
//! "P-compositional" in the sense of Horn and Kroening), so each key is
//! checked alone, which keeps the search small. What a per-key check
//! cannot see is an order that only fails across keys, such as two
//! sessions each missing the other's write to another key; that promise is
//! argued in `KvService`'s docs rather than checked here.
//!
//! Each key is searched depth first for an order (Wing and Gong), with
//! Lowe's memoization: a search state is the set of operations already
//! ordered plus the register's value, and a state seen once is never
//! explored again. Three reductions keep the search small, each argued
//! where it is made: a read that fits the register now is ordered now
//! without branching; values no GET returned are one value to the search;
//! an unanswered write is only ordered right before an operation that
//! observes it. The search is bounded ([`Limits`]): a history that needs
//! more states is reported as [`Violation::Exhausted`], never passed.
//!
//! PUT_TTL is recorded as a PUT: the tests give it a TTL far longer than
//! they run, so no key expires during a check.
//!
//! # Exactly once
//!
//! A history says what callers saw; [`audit_writes`] holds it against what
//! the server *did* — how often each write's value was applied (from the
//! server's log, say) — where every PUT writes a value of its own. Each
//! write has an outcome ([`WriteOutcome`]: acknowledged, failed as not
//! applied, or in doubt), and the audit counts the three ways to break
//! "exactly once": a value applied twice (a duplicate), an acknowledged
//! write never applied (a lost acknowledgement), and a write that failed
//! as not applied but was (a failed write that happened). [`never_read`]
//! checks the last one on the history alone: no read saw a failed write.

#![allow(dead_code, reason = "each test binary uses part of it")]

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// PUT or PUT_TTL of this value.
    Put(Bytes),
    /// GET.
    Get,
    /// DELETE.
    Delete,
}

/// What the answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A PUT was applied.
    Written,
    /// A GET found this value, or nothing.
    Value(Option<Bytes>),
    /// A DELETE found the key (`true`) or not.
    Deleted(bool),
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Op {
    /// Operations of one session take effect in the order of `sent`.
    pub session: Option<u64>,
    /// The key.
    pub key: Bytes,
    /// What was asked.
    pub action: Action,
    /// When it was sent (any monotonic unit; [`Recorder::now`] gives nanoseconds).
    pub sent: u64,
    /// When its answer came and what it said; `None` if it never came.
    pub answer: Option<(u64, Answer)>,
}

/// Bounds of the search.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most operations of one key.
    pub max_ops_per_key: usize,
    /// Most search states of one key.
    pub max_states_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops_per_key: 20_000,
            max_states_per_key: 2_000_000,
        }
    }
}

/// Why a history did not pass.
#[derive(Debug)]
pub enum Violation {
    /// An operation's answer does not fit its action (a GET answered
    /// `Written`, say): the test recorded it wrong.
    Malformed(String),
    /// No order explains the answers on `key`; `details` shows where the
    /// search got furthest.
    NotLinearizable { key: Bytes, details: String },
    /// The search of `key` hit a bound before it could decide.
    Exhausted { key: Bytes, what: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Malformed(what) => write!(f, "malformed history: {what}"),
            Violation::NotLinearizable { key, details } => {
                write!(f, "not linearizable on key {key:?}:\n{details}")
            }
            Violation::Exhausted { key, what } => {
                write!(
                    f,
                    "search bound hit on key {key:?} ({what}): undecided, not passed"
                )
            }
        }
    }
}

/// What a passed check looked at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checked {
    /// Operations checked (unanswered GETs, which change nothing, left out).
    pub ops: usize,
    /// Operations whose answer never came.
    pub unanswered: usize,
    /// Keys.
    pub keys: usize,
    /// Search states visited, all keys together.
    pub states: usize,
}

/// Collects a history from many tasks, with times from one clock.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    answered: AtomicUsize,
    /// Each PUT's value and how its call ended, for [`audit_writes`].
    outcomes: Mutex<Vec<(Bytes, WriteOutcome)>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            answered: AtomicUsize::new(0),
            outcomes: Mutex::new(Vec::new()),
        }
    }
}

impl Recorder {
    /// Nanoseconds since the recorder was made.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds operations to the history.
    pub fn record(&self, ops: impl IntoIterator<Item = Op>) {
        let mut all = self.ops.lock().unwrap();
        let before = all.len();
        all.extend(ops);
        let answered = all[before..].iter().filter(|op| op.answer.is_some()).count();
        self.answered.fetch_add(answered, Ordering::Relaxed);
    }

    /// Everything recorded so far.
    pub fn history(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// How many operations were answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Records how the call of the PUT of `value` ended.
    pub fn outcome(&self, value: Bytes, outcome: WriteOutcome) {
        self.outcomes.lock().unwrap().push((value, outcome));
    }

    /// Every PUT's value and outcome recorded so far.
    pub fn outcomes(&self) -> Vec<(Bytes, WriteOutcome)> {
        self.outcomes.lock().unwrap().clone()
    }
}

/// Checks `history` with the default [`Limits`].
pub fn check(history: &[Op]) -> Result<Checked, Violation> {
    check_with(history, Limits::default())
}

/// Checks `history`: `Ok` if some order of its operations explains every
/// answer (see the module docs).
pub fn check_with(history: &[Op], limits: Limits) -> Result<Checked, Violation> {
    let mut by_key: BTreeMap<&Bytes, Vec<&Op>> = BTreeMap::new();
    for op in history {
        let fits = matches!(
            (&op.action, &op.answer),
            (_, None)
                | (Action::Put(_), Some((_, Answer::Written)))
                | (Action::Get, Some((_, Answer::Value(_))))
                | (Action::Delete, Some((_, Answer::Deleted(_))))
        );
        if !fits {
            return Err(Violation::Malformed(format!("{op:?}")));
        }
        if let Some((answered, _)) = &op.answer {
            if *answered < op.sent {
                return Err(Violation::Malformed(format!("answered before sent: {op:?}")));
            }
        }
        // A GET that was never answered changed nothing and told nothing.
        if !(op.action == Action::Get && op.answer.is_none()) {
            by_key.entry(&op.key).or_default().push(op);
        }
    }
    let mut checked = Checked {
        keys: by_key.len(),
        ..Checked::default()
    };
    for (key, ops) in by_key {
        if ops.len() > limits.max_ops_per_key {
            return Err(Violation::Exhausted {
                key: key.clone(),
                what: format!(
                    "{} operations, over the limit of {}",
                    ops.len(),
                    limits.max_ops_per_key
                ),
            });
        }
        checked.ops += ops.len();
        checked.unanswered += ops.iter().filter(|op| op.answer.is_none()).count();
        let search = KeySearch::new(&ops);
        checked.states += search.run(key, limits.max_states_per_key)?;
    }
    Ok(checked)
}

/// The answer time of an operation that never answered: it may take effect any time.
const NEVER: u64 = u64::MAX;

/// The register: absent, or the id of a value.
type State = Option<u32>;

/// The id of every value that no GET returned.
const UNREAD: u32 = 0;

#[derive(Debug, Clone, Copy)]
enum Effect {
    Put(u32),
    /// The value the GET answered.
    Get(State),
    /// Whether the DELETE found the key, if known.
    Delete(Option<bool>),
}

impl Effect {
    fn apply(self, state: State) -> Option<State> {
        match self {
            Effect::Put(value) => Some(Some(value)),
            Effect::Get(seen) => (seen == state).then_some(state),
            Effect::Delete(Some(existed)) => (existed == state.is_some()).then_some(None),
            Effect::Delete(None) => Some(None),
        }
    }
}

/// One operation of a key, in the search's terms.
#[derive(Debug, Clone, Copy)]
struct KeyOp {
    sent: u64,
    /// [`NEVER`] if it was not answered.
    answered: u64,
    effect: Effect,
    /// An operation of its session on this key that must be ordered first:
    /// for an answered operation the one sent just before it, for an
    /// unanswered one the last *answered* one before it (an unanswered
    /// operation may never happen, so it holds up nothing unanswered).
    after: Option<usize>,
    /// Unanswered, and nothing must be ordered after it: see [`KeySearch::run`].
    droppable: bool,
    /// Random bits for hashing sets of operations (Zobrist hashing).
    bits: u128,
}

impl KeyOp {
    fn is_answered(&self) -> bool {
        self.answered != NEVER
    }

    /// Answered, with an answer that depends on the register.
    fn observes(&self) -> bool {
        self.is_answered() && matches!(self.effect, Effect::Get(_) | Effect::Delete(Some(_)))
    }
}

/// The search over one key's operations, sorted by send time.
struct KeySearch<'a> {
    ops: Vec<KeyOp>,
    /// The recorded operations, in the same order, for reports.
    source: Vec<&'a Op>,
    /// The unanswered operations, in order.
    unanswered: Vec<usize>,
    values: Vec<Bytes>,
    required: usize,
}

/// One level of the depth-first search.
struct Frame {
    /// The operation ordered to reach this level, and the state before it.
    taken: Option<(usize, State)>,
    /// The lowest answered operation not ordered yet.
    first: usize,
    candidates: Vec<usize>,
    next: usize,
    /// The operation taken was a droppable write: the next one must observe it.
    observe: bool,
}

impl<'a> KeySearch<'a> {
    fn new(history: &[&'a Op]) -> Self {
        let mut source = history.to_vec();
        source.sort_by_key(|op| op.sent);
        // Values no GET returned are all alike to the search (present, and
        // nobody can tell which): they share id 0, so that states that
        // differ only in which unread value the register holds are one.
        let read: HashSet<&Bytes> = source
            .iter()
            .filter_map(|op| match &op.answer {
                Some((_, Answer::Value(Some(value)))) => Some(value),
                _ => None,
            })
            .collect();
        let mut ids: HashMap<Bytes, u32> = HashMap::new();
        let mut values = vec![Bytes::from_static(b"<a value no GET returned>")];
        let mut id_of = |value: &Bytes| {
            if !read.contains(value) {
                return UNREAD;
            }
            *ids.entry(value.clone()).or_insert_with(|| {
                values.push(value.clone());
                (values.len() - 1) as u32
            })
        };
        // Per session: the last operation, and the last answered one.
        let mut last: HashMap<u64, (usize, Option<usize>)> = HashMap::new();
        let mut ops = Vec::with_capacity(source.len());
        for (index, op) in source.iter().enumerate() {
            let effect = match (&op.action, &op.answer) {
                (Action::Put(value), _) => Effect::Put(id_of(value)),
                (Action::Get, Some((_, Answer::Value(seen)))) => Effect::Get(seen.as_ref().map(&mut id_of)),
                (Action::Delete, Some((_, Answer::Deleted(existed)))) => Effect::Delete(Some(*existed)),
                (Action::Delete, _) => Effect::Delete(None),
                (Action::Get, _) => unreachable!("unanswered GETs are left out, answers were checked"),
            };
            let answered = op.answer.as_ref().map_or(NEVER, |(at, _)| *at);
            let after = op.session.and_then(|session| {
                let previous = last.get(&session).copied();
                let entry = last.entry(session).or_insert((index, None));
                entry.0 = index;
                if answered != NEVER {
                    entry.1 = Some(index);
                }
                match previous {
                    Some((any, _)) if answered != NEVER => Some(any),
                    Some((_, last_answered)) => last_answered,
                    None => None,
                }
            });
            ops.push(KeyOp {
                sent: op.sent,
                answered,
                effect,
                after,
                droppable: false,
                bits: zobrist(index),
            });
        }
        let mut held_up = vec![false; ops.len()];
        for op in &ops {
            if let Some(before) = op.after {
                held_up[before] = true;
            }
        }
        for (op, held_up) in ops.iter_mut().zip(held_up) {
            op.droppable = !op.is_answered() && !held_up;
        }
        let unanswered = (0..ops.len()).filter(|&i| !ops[i].is_answered()).collect();
        let required = ops.iter().filter(|op| op.is_answered()).count();
        KeySearch {
            ops,
            source,
            unanswered,
            values,
            required,
        }
    }

    /// The lowest answered operation from `from` on that is not ordered.
    fn first_open(&self, ordered: &[bool], mut from: usize) -> usize {
        while from < self.ops.len() && (ordered[from] || !self.ops[from].is_answered()) {
            from += 1;
        }
        from
    }

    /// The operations that may be ordered next, earliest answer first: not
    /// ordered yet, sent no later than every unordered operation was
    /// answered, and after their session's previous one.
    ///
    /// If one of them is an answered read that fits `state` (a GET of it,
    /// or a DELETE that found nothing when there is nothing), it is the
    /// only candidate: ordering it now cannot be wrong. In any order that
    /// works and puts it later, it can be moved here — it changes nothing,
    /// everything that must precede it is ordered already, and coming
    /// earlier breaks no "must precede" of its own.
    fn candidates(&self, ordered: &[bool], first: usize, state: State) -> Vec<usize> {
        let mut window: Vec<usize> = self
            .unanswered
            .iter()
            .copied()
            .take_while(|&i| i < first)
            .filter(|&i| !ordered[i])
            .collect();
        let mut earliest_answer = NEVER;
        for (index, op) in self.ops.iter().enumerate().skip(first) {
            if op.sent > earliest_answer {
                break;
            }
            if !ordered[index] {
                earliest_answer = earliest_answer.min(op.answered);
                window.push(index);
            }
        }
        window.retain(|&index| {
            let op = &self.ops[index];
            op.sent <= earliest_answer && op.after.is_none_or(|before| ordered[before])
        });
        let fitting_read = window.iter().copied().find(|&index| {
            let op = &self.ops[index];
            op.is_answered()
                && match op.effect {
                    Effect::Get(seen) => seen == state,
                    Effect::Delete(Some(false)) => state.is_none(),
                    _ => false,
                }
        });
        if let Some(read) = fitting_read {
            return vec![read];
        }
        window.sort_by_key(|&index| self.ops[index].answered);
        // Droppable unanswered writes with the same effect (DELETE, or PUT
        // of an unread value) are interchangeable here: each stays a
        // candidate for the rest of the search whether or not another is
        // ordered now, so trying one of them covers them all.
        let (mut delete, mut unread_put) = (false, false);
        window.retain(|&index| {
            let op = &self.ops[index];
            let seen = match op.effect {
                _ if !op.droppable => return true,
                Effect::Delete(_) => &mut delete,
                Effect::Put(UNREAD) => &mut unread_put,
                _ => return true,
            };
            !std::mem::replace(seen, true)
        });
        window
    }

    /// Searches depth first for an order of every answered operation (and
    /// any unanswered ones that help); returns the number of states visited.
    ///
    /// One pruning beyond memoization: a droppable unanswered write (one
    /// no other operation must follow) is only ever ordered right before an
    /// answered operation that observes it. That loses nothing: in any
    /// order where such a write is followed by another write, or by
    /// nothing, leaving it out (it may never have happened) leaves every
    /// answer as it was.
    fn run(&self, key: &Bytes, max_states: usize) -> Result<usize, Violation> {
        let n = self.ops.len();
        let mut ordered = vec![false; n];
        let mut state: State = None;
        let mut hash: u128 = 0;
        let mut done_required = 0;
        let mut seen: HashSet<(u128, State, bool)> = HashSet::new();
        let first = self.first_open(&ordered, 0);
        let mut frames = vec![Frame {
            taken: None,
            first,
            candidates: self.candidates(&ordered, first, state),
            next: 0,
            observe: false,
        }];
        let mut deepest = (0, state, frames[0].candidates.clone(), 0);
        loop {
            if done_required == self.required {
                return Ok(seen.len());
            }
            let Some(frame) = frames.last_mut() else {
                return Err(Violation::NotLinearizable {
                    key: key.clone(),
                    details: self.report(deepest.0, deepest.1, &deepest.2, deepest.3),
                });
            };
            let Some(&index) = frame.candidates.get(frame.next) else {
                let frame = frames.pop().expect("a frame was there");
                if let Some((index, before)) = frame.taken {
                    ordered[index] = false;
                    hash ^= self.ops[index].bits;
                    state = before;
                    if self.ops[index].is_answered() {
                        done_required -= 1;
                    }
                }
                continue;
            };
            frame.next += 1;
            let op = self.ops[index];
            if frame.observe && !op.observes() {
                continue;
            }
            let Some(after) = op.effect.apply(state) else {
                continue;
            };
            let observe = op.droppable;
            if !seen.insert((hash ^ op.bits, after, observe)) {
                continue;
            }
            if seen.len() > max_states {
                return Err(Violation::Exhausted {
                    key: key.clone(),
                    what: format!("over {max_states} search states"),
                });
            }
            let first = self.first_open(&ordered, frame.first);
            ordered[index] = true;
            let first = self.first_open(&ordered, first);
            hash ^= op.bits;
            let before = std::mem::replace(&mut state, after);
            if op.is_answered() {
                done_required += 1;
            }
            let candidates = self.candidates(&ordered, first, state);
            let depth = frames.len();
            if done_required > deepest.3 || (done_required == deepest.3 && depth > deepest.0) {
                deepest = (depth, state, candidates.clone(), done_required);
            }
            frames.push(Frame {
                taken: Some((index, before)),
                first,
                candidates,
                next: 0,
                observe,
            });
        }
    }

    fn value(&self, state: State) -> String {
        match state {
            None => "absent".to_owned(),
            Some(id) => format!("{:?}", self.values[id as usize]),
        }
    }

    fn describe(&self, index: usize) -> String {
        let op = self.source[index];
        let action = match &op.action {
            Action::Put(value) => format!("PUT {value:?}"),
            Action::Get => "GET".to_owned(),
            Action::Delete => "DELETE".to_owned(),
        };
        let answer = match &op.answer {
            None => "never answered".to_owned(),
            Some((at, Answer::Written)) => format!("answered OK at {at}"),
            Some((at, Answer::Value(value))) => format!("answered {value:?} at {at}"),
            Some((at, Answer::Deleted(existed))) => format!("answered existed={existed} at {at}"),
        };
        format!(
            "{action} by session {:?}, sent at {}, {answer}",
            op.session, op.sent
        )
    }

    /// Where the search got furthest: how much it ordered, the register's
    /// value there, and the operations it could not go on with.
    fn report(&self, depth: usize, state: State, stuck: &[usize], done_required: usize) -> String {
        let mut out = format!(
            "ordered {done_required} of {} answered operations ({depth} steps); the register held {} \
             and none of these fits next:\n",
            self.required,
            self.value(state),
        );
        for &index in stuck.iter().take(12) {
            out += &format!("  {}\n", self.describe(index));
        }
        if stuck.is_empty() {
            out += "  (none may go next: an answered operation is blocked)\n";
        }
        out
    }
}

/// 128 random-looking bits for operation `index` (splitmix64): a set of
/// operations is hashed as the XOR of its members' bits. Two different
/// sets of one key colliding is as likely as guessing a 128-bit key, and
/// would only make the search skip a state — a history could then fail,
/// never pass, wrongly.
fn zobrist(index: usize) -> u128 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let i = index as u64;
    (u128::from(mix(2 * i)) << 64) | u128::from(mix(2 * i + 1))
}

// ---------------------------------------------------------------------------
// Exactly once: writes' outcomes against what the server applied.

/// How a write's call ended, as its caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Answered `OK` (or `NOT_FOUND` to a DELETE): applied, once.
    Acknowledged,
    /// Failed with an error that says it was not applied (not sent, refused).
    Failed,
    /// Failed with an error that says it may have been applied (the
    /// deadline, a connection lost after it was sent, an expired session).
    InDoubt,
}

/// What [`audit_writes`] found; each list holds the values concerned.
#[derive(Debug, Clone, Default)]
pub struct WriteAudit {
    /// Writes audited, by outcome.
    pub acknowledged: usize,
    pub failed: usize,
    pub in_doubt: usize,
    /// Writes in doubt that were applied (the rest never were).
    pub in_doubt_applied: usize,
    /// Values applied more than once.
    pub duplicates: Vec<Bytes>,
    /// Acknowledged writes never applied.
    pub lost_acknowledgements: Vec<Bytes>,
    /// Writes reported failed (not applied) that were applied.
    pub failed_but_applied: Vec<Bytes>,
    /// Values applied that no write of the history had, or that two writes had.
    pub strangers: Vec<Bytes>,
}

impl WriteAudit {
    /// `true` if every write was applied exactly as its outcome says.
    pub fn is_exactly_once(&self) -> bool {
        self.duplicates.is_empty()
            && self.lost_acknowledgements.is_empty()
            && self.failed_but_applied.is_empty()
            && self.strangers.is_empty()
    }
}

impl fmt::Display for WriteAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} writes: {} acknowledged, {} failed as not applied, {} in doubt ({} of them applied); \
             {} duplicates, {} lost acknowledgements, {} failed writes that happened, {} strangers",
            self.acknowledged + self.failed + self.in_doubt,
            self.acknowledged,
            self.failed,
            self.in_doubt,
            self.in_doubt_applied,
            self.duplicates.len(),
            self.lost_acknowledgements.len(),
            self.failed_but_applied.len(),
            self.strangers.len(),
        )?;
        let examples = [
            ("duplicates", &self.duplicates),
            ("lost acknowledgements", &self.lost_acknowledgements),
            ("failed but applied", &self.failed_but_applied),
            ("strangers", &self.strangers),
        ];
        for (what, values) in examples {
            if !values.is_empty() {
                write!(f, "\n  {what}: {:?}", &values[..values.len().min(8)])?;
            }
        }
        Ok(())
    }
}

/// Holds `writes` — each write's unique value and how its call ended —
/// against `applied`, how many times the server applied each value:
/// an acknowledged write must have been applied exactly once, a failed one
/// never, one in doubt at most once; and nothing else may have been applied.
pub fn audit_writes(writes: &[(Bytes, WriteOutcome)], applied: &HashMap<Bytes, u32>) -> WriteAudit {
    let mut audit = WriteAudit::default();
    let mut outcomes: HashMap<&Bytes, WriteOutcome> = HashMap::with_capacity(writes.len());
    for (value, outcome) in writes {
        if outcomes.insert(value, *outcome).is_some() {
            audit.strangers.push(value.clone());
        }
    }
    for (value, &times) in applied {
        if times > 1 {
            audit.duplicates.push(value.clone());
        }
        if times > 0 && !outcomes.contains_key(value) {
            audit.strangers.push(value.clone());
        }
    }
    for (value, outcome) in outcomes {
        let times = applied.get(value).copied().unwrap_or(0);
        match outcome {
            WriteOutcome::Acknowledged => {
                audit.acknowledged += 1;
                if times == 0 {
                    audit.lost_acknowledgements.push(value.clone());
                }
            }
            WriteOutcome::Failed => {
                audit.failed += 1;
                if times > 0 {
                    audit.failed_but_applied.push(value.clone());
                }
            }
            WriteOutcome::InDoubt => {
                audit.in_doubt += 1;
                if times > 0 {
                    audit.in_doubt_applied += 1;
                }
            }
        }
    }
    audit
}

/// The reads of `history` that saw the value of a write in `failed` (one
/// reported not applied): each is a failed write that happened.
pub fn never_read<'a>(history: &'a [Op], failed: &[Bytes]) -> Vec<&'a Op> {
    let failed: HashSet<&Bytes> = failed.iter().collect();
    history
        .iter()
        .filter(|op| matches!(&op.answer, Some((_, Answer::Value(Some(value)))) if failed.contains(value)))
        .collect()
}
