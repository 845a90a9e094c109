//! The log file as the writer uses it: append, fsync, truncate. A trait, so
//! that tests can give the writer a file that fails on demand.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};

/// The operations the writer performs on the log file it appends to.
///
/// [`File`] is the only implementation outside tests. The writer holds a
/// `Box<dyn LogFile>` and calls it once or twice per batch, never per record.
pub(crate) trait LogFile: Send + fmt::Debug {
    /// Appends all of `buf` (`write(2)`, repeated until done).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Makes what was written durable (`fdatasync(2)`).
    fn sync_data(&mut self) -> io::Result<()>;

    /// Cuts the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Appends to `next` from now on: the new log file after a rotation.
    fn switch_to(&mut self, next: File);
}

impl LogFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn switch_to(&mut self, next: File) {
        *self = next;
    }
}
