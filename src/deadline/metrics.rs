//! What the deadline layer records: the requests its deadline ended.

use crate::metrics::{counter, names};

/// A request's deadline passed.
#[cold]
#[inline(never)]
pub(crate) fn deadline_expired() {
    counter(names::CLIENT_DEADLINE_EXPIRED, &[]).increment(1);
}
