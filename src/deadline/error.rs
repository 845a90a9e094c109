//! The error of the deadline middleware.

use crate::failure::{Classify, Failure};
use std::fmt;

/// The request's deadline passed before it was answered. It may or may not
/// have been applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    /// The error.
    pub fn new() -> Self {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request deadline passed")
    }
}

impl std::error::Error for Elapsed {}

impl Classify for Elapsed {
    fn failure(&self) -> Option<Failure> {
        Some(Failure::TimedOut)
    }
}

/// tower's `Timeout` is this crate's deadline, as far as the failure rule
/// is concerned.
impl Classify for tower::timeout::error::Elapsed {
    fn failure(&self) -> Option<Failure> {
        Some(Failure::TimedOut)
    }
}
