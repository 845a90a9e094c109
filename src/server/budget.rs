//! The global budget of buffered request bytes, and each connection's share.
//!
//! Every connection keeps a [`Charge`]: the bytes it has read from its peer
//! and not yet finished with — its read buffer plus the requests it is
//! working on or waiting to write the answers of. The [`Budget`] is the sum
//! over all connections. While it is over its limit, requests are shed
//! (answered through the [`Overload`](super::Overload) hook) instead of
//! queued, which releases their bytes at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes buffered by all connections, against a limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// `true` while the bytes charged are over the limit.
    pub(crate) fn exhausted(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit
    }
}

/// One connection's share of a [`Budget`], given back when dropped (also
/// when the connection's task panics).
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Charge { budget, bytes: 0 }
    }

    /// Sets this connection's share to `bytes`.
    pub(crate) fn set(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget.used.fetch_add(bytes - self.bytes, Ordering::Relaxed);
        } else if bytes < self.bytes {
            self.budget.used.fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_are_given_back_on_drop() {
        let budget = Budget::new(100);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        a.set(60);
        b.set(40);
        assert!(!budget.exhausted());
        b.set(41);
        assert!(budget.exhausted());
        a.set(10);
        assert!(!budget.exhausted());
        drop(a);
        drop(b);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }
}
