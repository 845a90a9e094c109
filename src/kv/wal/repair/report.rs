//! What a repair finds and does, as values and as the text `kv repair`
//! prints.

use std::fmt;
use std::path::PathBuf;

/// Whether [`Wal::repair`](super::super::Wal::repair) changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Only report what a repair would do.
    Check,
    /// Copy the files it changes aside, then change them.
    Fix,
}

/// One change a repair makes (or, in [`RepairMode::Check`], would make).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// A log file is cut at its first bad record.
    CutLog {
        /// The log file.
        path: PathBuf,
        /// Where it is cut: the start of the bad record.
        offset: u64,
        /// Bytes after the cut.
        dropped_bytes: u64,
        /// Valid records found in those bytes (by looking for records after
        /// the damage): what the cut loses.
        dropped_records: u64,
        /// What is wrong at the cut.
        reason: String,
    },
    /// A log file after the cut is removed: replaying it without what was
    /// cut would not give any state the store ever had.
    RemoveLog {
        /// The log file.
        path: PathBuf,
        /// Its length.
        bytes: u64,
        /// The valid records in it.
        records: u64,
    },
    /// A damaged snapshot is rewritten with the records before its damage.
    RewriteSnapshot {
        /// The snapshot.
        path: PathBuf,
        /// Where its damage starts.
        offset: u64,
        /// Records kept.
        kept_records: u64,
        /// Bytes from the damage to the end.
        dropped_bytes: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A log file the newest snapshot needs is missing; an empty one is created.
    CreateLog {
        /// The log file.
        path: PathBuf,
    },
}

/// What [`Wal::repair`](super::super::Wal::repair) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The data directory.
    pub dir: PathBuf,
    /// The changes, in order; empty if the directory is sound.
    pub actions: Vec<RepairAction>,
    /// Where the files it changed were copied first ([`RepairMode::Fix`]
    /// with damage only).
    pub backup: Option<PathBuf>,
}

impl RepairReport {
    /// `true` if nothing needed repair.
    pub fn is_clean(&self) -> bool {
        self.actions.is_empty()
    }
}

impl fmt::Display for RepairAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepairAction::CutLog {
                path,
                offset,
                dropped_bytes,
                dropped_records,
                reason,
            } => write!(
                f,
                "{}: cut at offset {offset} ({reason}): {dropped_bytes} bytes dropped, \
                 holding {dropped_records} valid records",
                path.display()
            ),
            RepairAction::RemoveLog { path, bytes, records } => write!(
                f,
                "{}: removed, it comes after the damage or a missing log ({bytes} bytes, {records} records)",
                path.display()
            ),
            RepairAction::RewriteSnapshot {
                path,
                offset,
                kept_records,
                dropped_bytes,
                reason,
            } => write!(
                f,
                "{}: damaged at offset {offset} ({reason}): rewritten with the {kept_records} \
                 records before it, {dropped_bytes} bytes dropped",
                path.display()
            ),
            RepairAction::CreateLog { path } => write!(f, "{}: missing, created empty", path.display()),
        }
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return writeln!(f, "{}: no damage found", self.dir.display());
        }
        writeln!(f, "{}: damaged", self.dir.display())?;
        for action in &self.actions {
            writeln!(f, "  {action}")?;
        }
        match &self.backup {
            Some(backup) => writeln!(f, "the files as they were are in {}", backup.display()),
            None => writeln!(f, "nothing was changed"),
        }
    }
}
