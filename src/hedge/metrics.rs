//! What a hedge records: second copies sent, won, and refused by the
//! budget.

use crate::metrics::{counter, names, Counter};

/// A hedge's handles, registered when it is built.
#[derive(Debug)]
pub(crate) struct HedgeMetrics {
    hedges: Counter,
    wins: Counter,
    exhausted: Counter,
}

impl HedgeMetrics {
    pub(crate) fn new() -> Self {
        HedgeMetrics {
            hedges: counter(names::CLIENT_HEDGES, &[]),
            wins: counter(names::CLIENT_HEDGE_WINS, &[]),
            exhausted: counter(names::CLIENT_HEDGE_BUDGET_EXHAUSTED, &[]),
        }
    }

    pub(crate) fn hedged(&self) {
        self.hedges.increment(1);
    }

    pub(crate) fn won(&self) {
        self.wins.increment(1);
    }

    pub(crate) fn exhausted(&self) {
        self.exhausted.increment(1);
    }
}
