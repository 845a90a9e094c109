//! The [`ResponseFuture`] of a [`Hedge`](super::Hedge) call: the first
//! copy, the timer, the second copy, and whichever answers first.

use super::elsewhere::{Elsewhere, Tried};
use super::service::Rules;
use crate::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The response of a [`Hedge`](super::Hedge) call: the first answer of its
/// copies. A copy that fails while the other is still on its way is
/// forgotten, and the other's answer awaited; the loser of a race is
/// dropped, which cancels it (a multiplexer that has a cancel frame sends
/// it).
#[pin_project]
pub struct ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    first: Option<S::Future>,
    #[pin]
    second: Option<S::Future>,
    /// Until the second copy is due.
    #[pin]
    timer: Option<Sleep>,
    /// What the second copy is sent with, until it is sent or given up.
    spare: Option<(S, Req, Tried)>,
    started: Instant,
    hedged_at: Option<Instant>,
    /// The wait before the next try for a second copy: the hedge's delay,
    /// doubled at each try the budget refused.
    wait: Duration,
    /// Tries the budget refused.
    refused: u32,
    rules: Arc<Rules>,
}

/// Tries for a second copy before a call gives up on one.
const TRIES: u32 = 6;

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    /// A call that is not hedged.
    pub(super) fn single(first: S::Future, rules: Arc<Rules>) -> Self {
        ResponseFuture {
            first: Some(first),
            second: None,
            timer: None,
            spare: None,
            started: Instant::now(),
            hedged_at: None,
            wait: Duration::ZERO,
            refused: 0,
            rules,
        }
    }

    /// A call whose second copy goes out after `delay` if it is unanswered.
    pub(super) fn hedged(
        first: S::Future,
        spare: (S, Req, Tried),
        delay: Duration,
        rules: Arc<Rules>,
    ) -> Self {
        ResponseFuture {
            first: Some(first),
            second: None,
            timer: Some(tokio::time::sleep(delay)),
            spare: Some(spare),
            started: Instant::now(),
            hedged_at: None,
            wait: delay,
            refused: 0,
            rules,
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hedged", &self.second.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Elsewhere<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(first) = this.first.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = first.poll(cx) {
                    this.first.set(None);
                    match result {
                        Ok(answer) => {
                            this.rules.latency.record(this.started.elapsed());
                            if let Some(loser) = this.second.as_mut().as_pin_mut() {
                                S::lost(loser);
                            }
                            return Poll::Ready(Ok(answer));
                        }
                        Err(error) if this.second.is_none() => return Poll::Ready(Err(error.into())),
                        // The second copy may still answer.
                        Err(_) => {}
                    }
                }
            }
            if let Some(second) = this.second.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = second.poll(cx) {
                    this.second.set(None);
                    match result {
                        Ok(answer) => {
                            let rules = &this.rules;
                            rules.counters.wins.fetch_add(1, Ordering::Relaxed);
                            rules.metrics.won();
                            let sent = this.hedged_at.unwrap_or(*this.started);
                            rules.latency.record(sent.elapsed());
                            if let Some(loser) = this.first.as_mut().as_pin_mut() {
                                S::lost(loser);
                            }
                            return Poll::Ready(Ok(answer));
                        }
                        Err(error) if this.first.is_none() => return Poll::Ready(Err(error.into())),
                        Err(_) => {}
                    }
                }
            }
            if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer.set(None);
                if this.first.is_none() {
                    *this.spare = None;
                } else if !this.rules.withdraw() {
                    // Refused: try again later (the budget refills as
                    // calls are made), a few times, each wait twice the last.
                    *this.refused += 1;
                    if *this.refused >= TRIES {
                        *this.spare = None;
                    } else {
                        *this.wait = this.wait.saturating_mul(2);
                        this.timer.set(Some(tokio::time::sleep(*this.wait)));
                        continue;
                    }
                }
            }
            let Some((service, _, _)) = this.spare.as_mut() else {
                return Poll::Pending;
            };
            match service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    *this.spare = None;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            let Some((mut service, request, mut tried)) = this.spare.take() else {
                return Poll::Pending;
            };
            match service.call_elsewhere(request, &mut tried) {
                Ok(second) => {
                    this.second.set(Some(second));
                    *this.hedged_at = Some(Instant::now());
                    this.rules.counters.hedges.fetch_add(1, Ordering::Relaxed);
                    this.rules.metrics.hedged();
                    // Poll it once, so that its answer wakes this task.
                }
                Err(_) => return Poll::Pending,
            }
        }
    }
}
