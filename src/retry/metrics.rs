//! What a retry policy records: its retries by reason, the retries its
//! budget refused, and the failures not retried as unsafe.

use super::policy::Reason;
use crate::metrics::{counter, label, names, Counter, Label};

/// The `reason` label of each [`Reason`], at its place in `Reason::ALL`.
static RETRY_REASONS: [[Label; 1]; Reason::ALL.len()] = {
    const fn of(index: usize) -> [Label; 1] {
        [label("reason", Reason::ALL[index].as_str())]
    }
    [of(0), of(1), of(2)]
};

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
            retries: std::array::from_fn(|i| counter(names::CLIENT_RETRIES, &RETRY_REASONS[i])),
            budget_exhausted: counter(names::CLIENT_RETRY_BUDGET_EXHAUSTED, &[]),
            unsafe_to_retry: counter(names::CLIENT_RETRIES_UNSAFE, &[]),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn retried(&self, reason: Reason) {
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

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_is_at_its_place_in_all() {
        for (index, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, index, "{}", reason.as_str());
        }
    }
}
