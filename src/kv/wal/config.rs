//! How the log is written and compacted: [`FsyncPolicy`] and [`WalConfig`].

use std::fmt;
use std::str::FromStr;

/// When the log is fsynced; the meaning of Redis' `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FsyncPolicy {
    /// Answer a write only after it is on disk. Concurrent writes share
    /// fsyncs (group commit).
    Always,
    /// Answer once the write is in the OS, fsync once a second: a power
    /// loss may lose up to about a second of writes.
    #[default]
    EverySec,
    /// Never fsync while running (only on shutdown and compaction); the OS
    /// writes back when it likes.
    Never,
}

impl FsyncPolicy {
    /// The policy's name: `always`, `everysec` or `never`.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::Never => "never",
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not `always`, `everysec` or `never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fsync policy {0:?} (expected always, everysec or never)")]
pub struct UnknownFsyncPolicy(pub String);

impl FromStr for FsyncPolicy {
    type Err = UnknownFsyncPolicy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(UnknownFsyncPolicy(other.to_owned())),
        }
    }
}

/// How the log is written and when it is compacted.
#[derive(Debug, Clone, PartialEq)]
pub struct WalConfig {
    /// When to fsync (default [`FsyncPolicy::EverySec`]).
    pub fsync: FsyncPolicy,
    /// Never compact logs smaller than this many bytes in all (default 64 MiB).
    pub compact_min_bytes: u64,
    /// Compact when the logs are over this many times the size of the last
    /// snapshot (default 2.0): the cost of compaction stays proportional to
    /// the writes, as with Redis' `auto-aof-rewrite-percentage`.
    pub compact_ratio: f64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncPolicy::default(),
            compact_min_bytes: 64 << 20,
            compact_ratio: 2.0,
        }
    }
}
