//! A toy tagged protocol for the server's tests: a line `<tag> <text>` is
//! tagged, a line `cancel <text>` has no answer, any other line is answered
//! in order; and [`Gated`], a service whose answers the test releases.

use super::Order;
use crate::multiplex::Tag;
use crate::BoxError;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch};

/// The toy protocol's [`Order`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaggedLines;

impl Order<String, String> for TaggedLines {
    fn tag(&self, line: &String) -> Option<Tag> {
        line.split_once(' ')?.0.parse().ok()
    }

    fn answered(&self, line: &String) -> bool {
        !line.starts_with("cancel ")
    }

    fn tag_in_use(&self, tag: Tag) -> Option<String> {
        Some(format!("{tag} in use"))
    }

    fn goaway(&self, reason: &str) -> Option<String> {
        Some(format!("goaway: {reason}"))
    }
}

/// A service that answers each line with itself: a line with a word
/// `hold:<gate>` once the test opens that gate, at once otherwise; a line
/// with the word `fail` with an error (after its gate, if it has one).
#[derive(Debug, Clone)]
pub(crate) struct Gated {
    open: watch::Receiver<BTreeSet<String>>,
    calls: mpsc::UnboundedSender<String>,
}

/// The test's side of [`Gated`]: it opens gates and sees every call.
#[derive(Debug)]
pub(crate) struct Gates {
    open: watch::Sender<BTreeSet<String>>,
    calls: mpsc::UnboundedReceiver<String>,
}

impl Gates {
    pub(crate) fn new() -> (Gates, Gated) {
        let (open_tx, open_rx) = watch::channel(BTreeSet::new());
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        (
            Gates {
                open: open_tx,
                calls: calls_rx,
            },
            Gated {
                open: open_rx,
                calls: calls_tx,
            },
        )
    }

    /// Lets the lines held at `gate` be answered.
    pub(crate) fn open(&self, gate: &str) {
        self.open.send_modify(|open| {
            open.insert(gate.to_owned());
        });
    }

    /// The next line the service was called with.
    pub(crate) async fn called(&mut self) -> String {
        self.calls.recv().await.unwrap_or_default()
    }

    /// The lines the service was called with and not yet seen by `called`.
    pub(crate) fn more_calls(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.calls.try_recv().ok()).collect()
    }
}

impl tower::Service<String> for Gated {
    type Response = String;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, line: String) -> Self::Future {
        let _ = self.calls.send(line.clone());
        let mut open = self.open.clone();
        Box::pin(async move {
            let gate = line
                .split(' ')
                .find_map(|word| word.strip_prefix("hold:"))
                .map(str::to_owned);
            if let Some(gate) = gate {
                open.wait_for(|open| open.contains(&gate)).await?;
            }
            if line.split(' ').any(|word| word == "fail") {
                return Err(format!("failed {line}").into());
            }
            Ok(line)
        })
    }
}
