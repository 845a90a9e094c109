//! What travels from the callers to the connection task, and what the task
//! keeps for each request it wrote until the answer comes.

use super::error::Error;
use crate::batch::BatchResponse;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Where one request's answer goes.
pub(crate) type Reply<Resp> = oneshot::Sender<Result<Resp, Error>>;
/// Where a batch's answers go, all at once.
pub(crate) type BatchReply<Resp> = oneshot::Sender<Result<BatchResponse<Resp, Error>, Error>>;

/// A call on its way to the connection task. It holds its share of the
/// in-flight limit (`permits`) until the task releases it.
pub(crate) enum Message<Req, Resp> {
    One {
        request: Req,
        tx: Reply<Resp>,
        deadline: Option<Instant>,
    },
    Many {
        requests: Vec<Req>,
        tx: BatchReply<Resp>,
        deadline: Option<Instant>,
        permits: usize,
    },
}

impl<Req, Resp> Message<Req, Resp> {
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            Message::One { deadline, .. } | Message::Many { deadline, .. } => *deadline,
        }
    }

    pub(crate) fn permits(&self) -> usize {
        match self {
            Message::One { .. } => 1,
            Message::Many { permits, .. } => *permits,
        }
    }

    /// The caller stopped waiting: nothing of it need be written.
    pub(crate) fn is_abandoned(&self) -> bool {
        match self {
            Message::One { tx, .. } => tx.is_closed(),
            Message::Many { tx, .. } => tx.is_closed(),
        }
    }

    /// Answers the whole call with `error`; nothing of it was written.
    pub(crate) fn fail(self, error: Error) {
        match self {
            Message::One { tx, .. } => drop(tx.send(Err(error))),
            Message::Many { tx, .. } => drop(tx.send(Err(error))),
        }
    }
}

/// A call written (or, for a batch, being written), waiting for answers.
pub(crate) enum Pending<Req, Resp> {
    One {
        /// `None` once the caller was answered otherwise (its deadline
        /// passed): the answer is read in its place and dropped.
        tx: Option<Reply<Resp>>,
        deadline: Option<Instant>,
        /// The connection task's pass that wrote it (for its latency).
        sent: super::metrics::Pass,
    },
    Many(Box<ManyPending<Req, Resp>>),
    /// A keepalive ping: its answer is read and dropped; it holds no permit.
    Ping,
}

/// A batch being written and answered.
pub(crate) struct ManyPending<Req, Resp> {
    pub(crate) tx: Option<BatchReply<Resp>>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) permits: usize,
    /// The connection task's pass that started writing it.
    pub(crate) sent: super::metrics::Pass,
    /// The requests not written yet; written back to back.
    pub(crate) unwritten: std::vec::IntoIter<Req>,
    pub(crate) written: usize,
    pub(crate) answers: BatchResponse<Resp, Error>,
}

impl<Req, Resp> ManyPending<Req, Resp> {
    pub(crate) fn new(
        requests: Vec<Req>,
        tx: BatchReply<Resp>,
        deadline: Option<Instant>,
        permits: usize,
        sent: super::metrics::Pass,
    ) -> Self {
        let answers = Vec::with_capacity(requests.len());
        ManyPending {
            tx: Some(tx),
            deadline,
            permits,
            sent,
            unwritten: requests.into_iter(),
            written: 0,
            answers,
        }
    }

    /// Nobody waits for the rest: write no more of it.
    pub(crate) fn stop_writing(&mut self) {
        self.unwritten = Vec::new().into_iter();
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.unwritten.len() == 0 && self.answers.len() == self.written
    }

    /// Sends the answers if anyone waits for them.
    pub(crate) fn deliver(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(std::mem::take(&mut self.answers)));
        }
    }

    /// The connection failed with `error`: the written requests not yet
    /// answered get it, the unwritten ones its "not sent" form.
    pub(crate) fn fail(mut self, error: &Error) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let lost = self.written - self.answers.len();
        self.answers.extend((0..lost).map(|_| Err(error.clone())));
        let not_sent = error.not_sent();
        self.answers
            .extend((0..self.unwritten.len()).map(|_| Err(not_sent.clone())));
        let _ = tx.send(Ok(self.answers));
    }
}

impl<Req, Resp> Pending<Req, Resp> {
    /// The deadline of a caller still waiting, if it has one.
    pub(crate) fn live_deadline(&self) -> Option<Instant> {
        match self {
            Pending::One {
                tx: Some(_),
                deadline,
                ..
            } => *deadline,
            Pending::Many(many) if many.tx.is_some() => many.deadline,
            _ => None,
        }
    }

    /// Answers the caller with a timeout; its answers are read and dropped,
    /// and no more of a batch is written. Returns the requests it failed.
    pub(crate) fn expire(&mut self) -> usize {
        match self {
            Pending::One { tx, .. } => match tx.take() {
                Some(tx) => {
                    let _ = tx.send(Err(Error::TimedOut));
                    1
                }
                None => 0,
            },
            Pending::Ping => 0,
            Pending::Many(many) => {
                let expired = match many.tx.take() {
                    Some(tx) => {
                        let _ = tx.send(Err(Error::TimedOut));
                        many.permits
                    }
                    None => 0,
                };
                many.stop_writing();
                expired
            }
        }
    }

    /// Answers the caller with `error` (for a batch: its "not sent" form
    /// for what was not written); returns how many requests it failed,
    /// and how many of those were not sent.
    pub(crate) fn fail(self, error: &Error) -> (usize, usize) {
        let failed = match &self {
            Pending::One { tx, .. } => (usize::from(tx.is_some()), 0),
            Pending::Many(many) if many.tx.is_some() => {
                let unwritten = many.unwritten.len();
                (many.written - many.answers.len() + unwritten, unwritten)
            }
            Pending::Many(_) | Pending::Ping => (0, 0),
        };
        match self {
            Pending::One { tx, .. } => {
                if let Some(tx) = tx {
                    let _ = tx.send(Err(error.clone()));
                }
            }
            Pending::Many(many) => many.fail(error),
            Pending::Ping => {}
        }
        failed
    }
}
