//! The deadline of the request being called or polled on this thread, and
//! who has promised to wake it by then.
//!
//! A [`Deadline`](super::Deadline) layer sets its request's deadline here
//! around its inner service's `call` and its inner future's `poll`. A layer
//! below that can enforce the deadline more cheaply than a timer per request
//! — the [pipeline](crate::pipeline) keeps one timer per connection for all
//! its queued and unanswered requests — reads it with [`current`] when it is
//! called, and when its future is pending says with [`promise_wake_by`] that
//! its task will be woken by then. The `Deadline` future then needs no timer
//! of its own: it arms one only when nothing below made that promise (a
//! request waiting for a connection, a layer that hands the request to
//! another task).
//!
//! Both cells are plain thread-locals, saved and restored around each call
//! and poll (also when one panics), so nested deadline layers compose: the
//! innermost deadline is the current one, and each layer sees only the
//! promises made below it.

use std::cell::Cell;
use tokio::time::Instant;

/// The deadline in force, and the earliest wake-up promised under it.
#[derive(Clone, Copy)]
struct Frame {
    deadline: Option<Instant>,
    wake_by: Option<Instant>,
}

thread_local! {
    static FRAME: Cell<Frame> = const {
        Cell::new(Frame {
            deadline: None,
            wake_by: None,
        })
    };
}

/// The deadline of the request being called or polled on this thread, if a
/// deadline layer is above it.
pub(crate) fn current() -> Option<Instant> {
    FRAME.with(|frame| frame.get().deadline)
}

/// Called by a pending future: its task will be woken by `at` at the latest,
/// whatever happens below.
pub(crate) fn promise_wake_by(at: Instant) {
    FRAME.with(|cell| {
        let mut frame = cell.get();
        if frame.wake_by.is_none_or(|before| at < before) {
            frame.wake_by = Some(at);
            cell.set(frame);
        }
    });
}

/// The deadline of one call or poll, set until [`Scope::end`] or drop.
pub(crate) struct Scope {
    outer: Option<Frame>,
}

impl Scope {
    /// Makes `deadline` the current one, with no promise made yet.
    pub(crate) fn enter(deadline: Instant) -> Scope {
        let outer = FRAME.with(|cell| {
            cell.replace(Frame {
                deadline: Some(deadline),
                wake_by: None,
            })
        });
        Scope { outer: Some(outer) }
    }

    /// Restores the outer scope and returns the earliest wake-up promised
    /// within this one.
    pub(crate) fn end(mut self) -> Option<Instant> {
        let outer = self.outer.take();
        FRAME
            .with(|cell| outer.map(|outer| cell.replace(outer).wake_by))
            .flatten()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            FRAME.with(|cell| cell.set(outer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scopes_nest_and_promises_stay_inside_them() {
        let now = Instant::now();
        let (outer, inner) = (now + Duration::from_secs(5), now + Duration::from_secs(1));
        assert_eq!(current(), None);
        let outer_scope = Scope::enter(outer);
        promise_wake_by(outer);
        let inner_scope = Scope::enter(inner);
        assert_eq!(current(), Some(inner));
        promise_wake_by(inner + Duration::from_millis(5));
        promise_wake_by(inner);
        assert_eq!(inner_scope.end(), Some(inner));
        assert_eq!(current(), Some(outer));
        assert_eq!(
            outer_scope.end(),
            Some(outer),
            "the inner promise is not the outer's"
        );
        assert_eq!(current(), None);
    }

    #[test]
    fn a_scope_dropped_by_a_panic_restores_the_outer_one() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = std::panic::catch_unwind(|| {
            let _scope = Scope::enter(deadline);
            panic!("a service panicked");
        });
        assert!(result.is_err());
        assert_eq!(current(), None);
    }
}
