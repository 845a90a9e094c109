//! The session table's memory, counted by the allocator: 100,000 sessions
//! with a full window each stay inside the bound `kv::session` documents
//! (`max_sessions × (600 + 96 × window)` bytes), and forgetting them gives
//! the memory back. (The bytes asked of the allocator: its own bookkeeping,
//! some 16 bytes per node of 450 or more, is not counted.)
//!
//! A binary of its own: its global allocator counts every live byte of the
//! process, so nothing else may run beside the test.
#![cfg(feature = "kv")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;
use wirestack::kv::session::Begin;
use wirestack::kv::{Sequenced, SessionConfig, Sessions, Status};

/// The system allocator, counting the bytes it has handed out and not got back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Fills `count` sessions of a table with window `window`, each with
/// `window` answers (a full window: the next seq is refused); returns the
/// bytes the table holds then, and after it is dropped.
fn fill(count: usize, window: u32) -> (isize, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    let sessions = Sessions::new(SessionConfig {
        window,
        max_sessions: count,
        lifetime: Duration::from_secs(3600),
    });
    for n in 0..count as u64 {
        let mut id = [0xA5; 16];
        id[..8].copy_from_slice(&n.to_le_bytes());
        for seq in 1..=u64::from(window) {
            match sessions.begin(id, Sequenced { seq, acked_below: 1 }) {
                Begin::Apply(ticket) => ticket.finish(Status::Ok),
                other => panic!("seq {seq} of session {n}: {other:?}"),
            }
        }
        let full = Sequenced {
            seq: u64::from(window) + 1,
            acked_below: 1,
        };
        assert!(
            matches!(sessions.begin(id, full), Begin::Refused(_)),
            "a seq past the window was taken"
        );
        assert_eq!(sessions.answers_of(&id), window as usize);
    }
    assert_eq!(sessions.len(), count);
    let held = LIVE.load(Ordering::Relaxed) - before;
    drop(sessions);
    (held, LIVE.load(Ordering::Relaxed) - before)
}

#[test]
fn a_hundred_thousand_full_sessions_stay_inside_the_documented_bound() {
    // The smallest window (a node for one answer) and a small one at
    // 100,000 sessions; the default window, 512, at fewer sessions.
    for (count, window) in [(100_000usize, 1u32), (100_000, 16), (2_000, 512)] {
        let bound = count as isize * (600 + 96 * window as isize);
        let (held, after) = fill(count, window);
        eprintln!(
            "{count} sessions, window {window}: {held} bytes ({:.0} per session, {:.1} per answer \
             past the first 600), bound {bound}; {after} left after the table is dropped",
            held as f64 / count as f64,
            (held as f64 / count as f64 - 600.0) / f64::from(window),
        );
        assert!(
            held <= bound,
            "window {window}: {held} bytes, over the bound of {bound}"
        );
        assert!(after < 64 * 1024, "window {window}: {after} bytes not given back");
    }
}
