//! The hedge's budget: its own share of the calls, and the retry budget it
//! shares with a [`Retry`](crate::retry::Retry) layer above it.

use crate::retry::RetryBudget;
use std::sync::Arc;
use tower::retry::budget::Budget;

/// A [`RetryBudget`] shared by a retry layer and a hedge: the retry layer's
/// [`RetryPolicy::with_budget`](crate::retry::RetryPolicy::with_budget)
/// takes one (it deposits for every call and withdraws for every retry),
/// and [`Hedge::sharing`](super::Hedge::sharing) another clone (it
/// withdraws for every hedge). Retries and hedges together then stay within
/// the retry budget, so a slow or failing cluster is not sent twice its
/// load.
#[derive(Debug, Clone)]
pub struct SharedBudget(Arc<RetryBudget>);

impl SharedBudget {
    /// Shares `budget`.
    pub fn new(budget: RetryBudget) -> Self {
        SharedBudget(Arc::new(budget))
    }
}

impl Budget for SharedBudget {
    fn deposit(&self) {
        self.0.deposit()
    }

    fn withdraw(&self) -> bool {
        self.0.withdraw()
    }
}
