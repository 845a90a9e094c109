//! Errors of the write-ahead log.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything opening, recovering or writing the log can fail with.
///
/// It is `Clone` (I/O errors are shared behind an `Arc`) because one failure
/// answers every write that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A file operation failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done: "write", "fsync", "open"...
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file of the data directory is damaged somewhere other than where a
    /// crash could have cut a write short. The server refuses to start
    /// rather than drop acknowledged data silently.
    #[error("{} is damaged at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where the damage starts, in bytes from the start of the file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A log file that the newest snapshot or an earlier log file needs is
    /// not there.
    #[error("{} is missing: the data directory is incomplete", path.display())]
    Missing {
        /// The file that should be there.
        path: PathBuf,
    },
    /// An earlier write or fsync failed, and the log refuses writes until a
    /// retry in the background succeeds (see [`Wal::failure`](super::Wal::failure)).
    #[error("the log refuses writes until it recovers from a failure: {0}")]
    Failed(Box<WalError>),
    /// Another process (or another open log in this process) holds the data
    /// directory: one directory belongs to one server at a time.
    #[error("the data directory is in use: {} is locked by {}", path.display(), holder_text(*holder))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The process id the holder wrote into it, if it could be read.
        holder: Option<u32>,
    },
    /// A mutation too large for one log record: it was not logged, and the
    /// store is unchanged. A server whose limits let a key and value
    /// through that the log cannot hold refuses to start instead (see
    /// [`Wal::MAX_ENTRY_BYTES`](super::Wal::MAX_ENTRY_BYTES)).
    #[error("a record of {bytes} bytes is over the log's limit of {limit} bytes")]
    TooLarge {
        /// The size of the record's payload.
        bytes: u64,
        /// The largest payload a record can have.
        limit: u64,
    },
    /// The log was shut down, or its writer is gone.
    #[error("the log is closed")]
    Closed,
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        WalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) => format!("process {pid}"),
        None => "another process".into(),
    }
}

impl From<WalError> for io::Error {
    /// For callers that speak `io::Error` (such as the server's `run`): the
    /// `WalError` stays reachable through `get_ref` and `downcast`.
    fn from(error: WalError) -> Self {
        let kind = match &error {
            WalError::Io { source, .. } => source.kind(),
            WalError::Corrupt { .. } | WalError::Missing { .. } => io::ErrorKind::InvalidData,
            WalError::Locked { .. } => io::ErrorKind::ResourceBusy,
            WalError::TooLarge { .. } => io::ErrorKind::InvalidInput,
            WalError::Failed(_) | WalError::Closed => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}
