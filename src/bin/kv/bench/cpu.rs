//! The client's own CPU time: `getrusage(RUSAGE_SELF)`, user and system,
//! every thread of this process, read before and after the measured phase.

use std::time::Duration;

/// CPU time this process has used so far: user and system.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// This process's CPU time so far (zero if the kernel refuses, which
    /// `getrusage(RUSAGE_SELF)` never does with a valid buffer).
    pub(crate) fn now() -> Self {
        // SAFETY: getrusage writes into the zeroed struct we own and reads
        // nothing else; RUSAGE_SELF is always a valid `who`.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return CpuTime::default();
            }
            usage
        };
        CpuTime {
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
        }
    }

    /// The CPU time used between `earlier` and `self`.
    pub(crate) fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// User and system together.
    pub(crate) fn total(self) -> Duration {
        self.user + self.system
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(secs, micros * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_counts_as_user_time() {
        let before = CpuTime::now();
        let started = std::time::Instant::now();
        let mut x = 1u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = CpuTime::now().since(before);
        // 50 ms of wall time spinning on this thread is CPU time of this
        // process (at least part of it: the thread may be descheduled).
        assert!(used.total() > Duration::from_millis(5), "{used:?}");
        assert!(used.total() < Duration::from_secs(60), "{used:?}");
    }
}
