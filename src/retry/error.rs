//! The retry layer's own error: the last attempt's error, when an earlier
//! attempt may already have been applied.

use crate::failure::{Classify, Failure};
use crate::BoxError;
use std::error::Error;
use std::fmt;

/// A request gave up after retries, and an **earlier** attempt may have
/// reached the peer and been applied (its connection was lost after it was
/// written), although the last attempt failed without being sent.
///
/// Without it the caller would see only the last attempt's "not sent" and
/// could conclude that nothing happened. The [failure rule](crate::failure)
/// sorts it as a lost connection (may have been sent), whatever its source
/// says. The source is the last attempt's error.
#[derive(Debug)]
pub struct MaybeApplied {
    last: BoxError,
}

impl MaybeApplied {
    pub(crate) fn new(last: BoxError) -> Self {
        MaybeApplied { last }
    }
}

impl fmt::Display for MaybeApplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an earlier attempt may have been applied; the last one failed: {}",
            self.last
        )
    }
}

/// A lost connection (may have been sent), whatever its source says.
impl Classify for MaybeApplied {
    fn failure(&self) -> Option<Failure> {
        Some(Failure::Connection)
    }
}

impl Error for MaybeApplied {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.last)
    }
}
