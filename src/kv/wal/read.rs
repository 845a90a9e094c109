//! Reads in log order: a read that must see exactly the appends called
//! before it, evaluated by the writer thread at its place among them.
//!
//! [`Wal::read`](super::Wal::read) sends the read down the same channel as
//! the appends, so the writer meets it after every append called before it
//! and before every append called after it. The writer keeps the reads of a
//! batch in [`QueuedReads`], each marked with its position among the
//! batch's mutations, and answers each one from the store just before it
//! applies the mutation that followed the read — that is, once everything
//! before it is applied, and nothing after it.

use crate::kv::store::Store;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Where the writer sends a read's answer: the key's live value, if any.
pub(crate) type ReadReply = oneshot::Sender<Option<Bytes>>;

/// The reads that arrived with the batch being committed, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct QueuedReads {
    /// `(mutations before it in the batch, key, reply)`, oldest first.
    reads: VecDeque<(usize, Bytes, ReadReply)>,
}

impl QueuedReads {
    /// Queues a read that arrived after `mutations_before` mutations of the
    /// batch.
    pub(crate) fn push(&mut self, mutations_before: usize, key: Bytes, reply: ReadReply) {
        self.reads.push_back((mutations_before, key, reply));
    }

    /// Answers, from `store`, every read that arrived before mutation
    /// number `mutation` (counting from 0) of the batch. Call it just
    /// before applying that mutation.
    pub(crate) fn answer_before(&mut self, mutation: usize, store: &Store) {
        #[cfg(feature = "sim-mutations")]
        if crate::mutations::on(crate::mutations::Mutation::ReadAfterBatch) {
            return;
        }
        while self
            .reads
            .front()
            .is_some_and(|(before, _, _)| *before <= mutation)
        {
            if let Some((_, key, reply)) = self.reads.pop_front() {
                // A caller that stopped waiting just doesn't get it.
                let _ = reply.send(store.get(&key));
            }
        }
    }

    /// Answers every read still queued from `store` as it is now: after the
    /// batch's last mutation, or when none of the batch was applied.
    pub(crate) fn answer_rest(&mut self, store: &Store) {
        for (_, key, reply) in self.reads.drain(..) {
            let _ = reply.send(store.get(&key));
        }
    }
}

/// The future of one [`Wal::read`](super::Wal::read): the key's value at
/// the read's place in the order of appends.
#[must_use = "a read does nothing for its caller unless awaited"]
pub struct ReadInOrder {
    reply: oneshot::Receiver<Option<Bytes>>,
    /// For the answer when the writer has stopped (see `poll`).
    key: Bytes,
    store: Store,
}

impl ReadInOrder {
    pub(crate) fn new(reply: oneshot::Receiver<Option<Bytes>>, key: Bytes, store: Store) -> Self {
        ReadInOrder { reply, key, store }
    }
}

impl fmt::Debug for ReadInOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadInOrder")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Future for ReadInOrder {
    type Output = Option<Bytes>;

    /// The writer's answer. If the writer stopped before answering (the log
    /// was shut down), no append can change the store any more — every
    /// append before this read was applied or failed, every one after it
    /// fails — so the store as it is now is the answer at the read's place.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        match futures::ready!(Pin::new(&mut this.reply).poll(cx)) {
            Ok(value) => Poll::Ready(value),
            Err(_) => Poll::Ready(this.store.get(&this.key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_is_answered_at_its_place_among_the_mutations() {
        let store = Store::new();
        let mut reads = QueuedReads::default();
        let mut answers = Vec::new();
        // A batch: read, put 1, read, read, put 2, put 3, read.
        for before in [0, 1, 1, 3] {
            let (reply, answer) = oneshot::channel();
            reads.push(before, Bytes::from_static(b"k"), reply);
            answers.push(answer);
        }
        for (position, value) in [b"1", b"2", b"3"].into_iter().enumerate() {
            reads.answer_before(position, &store);
            store.put(b"k", value);
        }
        reads.answer_rest(&store);
        let answers: Vec<_> = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect();
        let expected = [None, Some("1"), Some("1"), Some("3")]
            .map(|v: Option<&'static str>| v.map(|v| Bytes::from_static(v.as_bytes())));
        assert_eq!(answers, expected);
    }
}
