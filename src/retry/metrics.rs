//! What a retry policy records: its retries by reason, the retries its
//! budget refused, and the failures not retried as unsafe.

use crate::metrics::{counter, label_sets, names, Counter, Label};

/// Why a retry was made, as the `reason` label says it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RetryReason {
    Refused,
    NotSent,
    LostIdempotent,
}

static RETRY_REASONS: [[Label; 1]; 3] = label_sets!("reason": "refused", "not_sent", "lost_idempotent");

/// A retry policy's handles.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    retries: [Counter; 3],
    budget_exhausted: Counter,
    unsafe_to_retry: Counter,
}

impl RetryMetrics {
    pub(crate) fn new() -> Self {
        RetryMetrics {
            retries: [0, 1, 2].map(|i| counter(names::CLIENT_RETRIES, &RETRY_REASONS[i])),
            budget_exhausted: counter(names::CLIENT_RETRY_BUDGET_EXHAUSTED, &[]),
            unsafe_to_retry: counter(names::CLIENT_RETRIES_UNSAFE, &[]),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn retried(&self, reason: RetryReason) {
        self.retries[reason as usize].increment(1);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.increment(1);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn unsafe_to_retry(&self) {
        self.unsafe_to_retry.increment(1);
    }
}
