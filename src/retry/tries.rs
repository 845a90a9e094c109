//! [`Tries`]: one call's retries so far, the per-call state that this
//! crate's driver and tower's (through [`RetryPolicy`](super::RetryPolicy)'s
//! `Policy` impl) share, with the one decision they both make.

use super::error::MaybeApplied;
use super::policy::{Reason, Rules};
use crate::failure::Delivery;
use crate::BoxError;
use std::time::Duration;
use tokio::time::Instant;

/// Why a call is sent again, and whether what is sent again may have been
/// applied already.
#[derive(Debug, Clone, Copy)]
pub struct Resend {
    pub(super) reason: Reason,
    pub(super) applied: bool,
}

impl Resend {
    /// Sending again one request whose attempt ended for `reason`: that
    /// repeats it if it was lost after it may have been written.
    pub(super) fn after(reason: Reason) -> Self {
        let applied = matches!(reason, Reason::LostIdempotent);
        Resend { reason, applied }
    }
}

/// One call's retries so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tries {
    attempts: u32,
    /// Something sent again may have been applied by an earlier attempt.
    maybe_applied: bool,
}

impl Tries {
    /// Retries made so far.
    pub(super) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before sending again for `resend`, if the policy allows
    /// one more retry (before `deadline`): then it counts.
    pub(super) fn retry(
        &mut self,
        policy: &Rules,
        resend: Resend,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        let delay = policy.allow(self.attempts, resend.reason, deadline)?;
        self.attempts += 1;
        self.maybe_applied |= resend.applied;
        Some(delay)
    }

    /// The answer a call that is not sent again ends with: as it is,
    /// unless it is an error saying "not sent" while an earlier attempt may
    /// have been applied — then that is what the caller must learn.
    pub(super) fn give_up<Resp>(&self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        match result {
            Err(error) if self.maybe_applied && Delivery::of(&*error) == Some(Delivery::NotSent) => {
                Err(MaybeApplied::new(error).into())
            }
            result => result,
        }
    }
}
