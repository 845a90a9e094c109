//! Bugs put back on purpose (feature `sim-mutations`, hidden from the
//! docs): each switch brings back one defect that was found and fixed, so
//! that `tests/sim.rs` can show it still catches it. Off unless switched
//! on, per thread (the simulator runs on one thread, its log writer
//! inline): other tests in the same process are not affected.
//!
//! Never enable this feature outside that test.

use std::cell::Cell;

/// One defect, brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// A read queued behind a pending write is answered after the whole
    /// batch is applied, not at its place: it sees later writes of its
    /// own connection (fixed in 0e8b4ed).
    ReadAfterBatch,
    /// The retry layer's batch driver forgets that a batch it sends again
    /// may have been applied already, so a batch that then fails unsent
    /// reports "not sent" (fixed in d199f21 / f5e1677).
    BatchDropsMaybeApplied,
    /// Recovery takes a torn write at the end of the log (a record cut
    /// short or not all written at a crash point, whatever follows it) for
    /// corruption and refuses to start (fixed in 5e77594).
    TornTailIsCorrupt,
}

thread_local! {
    static ON: Cell<Option<Mutation>> = const { Cell::new(None) };
}

/// Switches `mutation` on for this thread (`None`: all off).
pub fn set(mutation: Option<Mutation>) {
    ON.with(|on| on.set(mutation));
}

/// Whether `mutation` is on for this thread.
pub(crate) fn on(mutation: Mutation) -> bool {
    ON.with(|on| on.get() == Some(mutation))
}
