//! What the connection task keeps for each tag in flight, and for each
//! batch until its last answer.

use super::client::CallId;
use super::protocol::Tag;
use super::Error;
use crate::pipeline::{BatchReply, Reply};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use tokio::time::Instant;

/// A map keyed by call id. Ids are numbered from 0 by each connection's
/// handles, so a multiply-shift is hash enough (and cheaper than SipHash).
pub(super) type IdMap<V> = HashMap<CallId, V, BuildHasherDefault<IdHasher>>;

/// A multiply-shift (Fibonacci) hash for the small numbers that key the
/// multiplexers' and the server's bookkeeping: call ids and tags. Where a
/// peer chooses the keys (a server's tags in flight), the table it hashes
/// is bounded by the connection's in-flight limit, so a peer that makes
/// keys collide gains at most that many probes.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(self.0 ^ u64::from(*byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a tag in flight is for.
pub(super) enum Slot<Resp> {
    /// A single request.
    One {
        call: CallId,
        /// `None` once the caller stopped waiting or was answered otherwise
        /// (its deadline passed): the answer is read and dropped.
        tx: Option<Reply<Resp>>,
        deadline: Option<Instant>,
        /// When it was written, if latency is measured.
        sent: Option<std::time::Instant>,
    },
    /// The request at `index` of a batch.
    Part {
        batch: CallId,
        index: usize,
        sent: Option<std::time::Instant>,
    },
    /// A keepalive ping: its answer is dropped.
    Ping,
}

/// A batch being written and answered: its requests each have a tag, and
/// their answers land at their place in the batch in whatever order they
/// come.
pub(super) struct WrittenBatch<Req, Resp> {
    /// `None` once its caller stopped waiting or its deadline passed.
    pub(super) tx: Option<BatchReply<Resp>>,
    pub(super) deadline: Option<Instant>,
    pub(super) permits: usize,
    pub(super) sent: Option<std::time::Instant>,
    /// The requests not written yet; written back to back.
    pub(super) unwritten: std::vec::IntoIter<Req>,
    /// The tag of each request written, by its place in the batch.
    pub(super) tags: Vec<Tag>,
    /// Requests written and not answered yet.
    pub(super) open: usize,
    answers: Vec<Option<Result<Resp, Error>>>,
}

impl<Req, Resp> WrittenBatch<Req, Resp> {
    pub(super) fn new(
        requests: Vec<Req>,
        tx: BatchReply<Resp>,
        deadline: Option<Instant>,
        permits: usize,
        sent: Option<std::time::Instant>,
    ) -> Self {
        let mut answers = Vec::with_capacity(requests.len());
        answers.resize_with(requests.len(), || None);
        WrittenBatch {
            tx: Some(tx),
            deadline,
            permits,
            sent,
            tags: Vec::with_capacity(requests.len()),
            unwritten: requests.into_iter(),
            open: 0,
            answers,
        }
    }

    /// The request at `index` was answered.
    pub(super) fn answered(&mut self, index: usize, response: Resp) {
        self.open = self.open.saturating_sub(1);
        if let Some(answer) = self.answers.get_mut(index) {
            *answer = Some(Ok(response));
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        self.unwritten.len() == 0 && self.open == 0
    }

    /// Nobody waits for it any more: writes no more of it, and queues a
    /// cancel for each request written and not answered.
    pub(super) fn cancel(&mut self, cancels: &mut Vec<Tag>) {
        self.unwritten = Vec::new().into_iter();
        for (tag, answer) in self.tags.iter().zip(&self.answers) {
            if answer.is_none() {
                cancels.push(*tag);
            }
        }
    }

    /// The requests not written get `not_sent` and are never written;
    /// returns how many of them a caller waits for.
    pub(super) fn refuse_rest(&mut self, not_sent: &Error) -> usize {
        let refused = self.unwritten.len();
        self.unwritten = Vec::new().into_iter();
        for answer in self.answers.iter_mut().skip(self.tags.len()) {
            *answer = Some(Err(not_sent.clone()));
        }
        if self.tx.is_some() {
            refused
        } else {
            0
        }
    }

    /// Sends the answers, in the batch's order, if anyone waits for them.
    pub(super) fn deliver(self) {
        if let Some(tx) = self.tx {
            // Every place is filled once complete; a hole would be a request
            // never written, which is what "not sent" says.
            let answers = self
                .answers
                .into_iter()
                .map(|answer| answer.unwrap_or_else(|| Err(Error::Closed.not_sent())))
                .collect();
            let _ = tx.send(Ok(answers));
        }
    }

    /// The connection failed with `error`: the written requests not yet
    /// answered get it, the unwritten ones its "not sent" form. Returns how
    /// many requests it failed, and how many of those were not sent.
    pub(super) fn fail(mut self, error: &Error) -> (usize, usize) {
        if self.tx.is_none() {
            return (0, 0);
        }
        let written = self.tags.len();
        let not_sent = error.not_sent();
        let (mut failed, mut unsent) = (0, 0);
        for (index, answer) in self.answers.iter_mut().enumerate() {
            if answer.is_none() {
                failed += 1;
                if index < written {
                    *answer = Some(Err(error.clone()));
                } else {
                    unsent += 1;
                    *answer = Some(Err(not_sent.clone()));
                }
            }
        }
        self.unwritten = Vec::new().into_iter();
        self.deliver();
        (failed, unsent)
    }
}
