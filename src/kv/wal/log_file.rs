//! The log file as the writer uses it: write at an offset, fsync, truncate.
//! A trait, so that tests can give the writer a file that fails on demand.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The operations the writer performs on the log file it appends to.
///
/// [`File`] is the only implementation outside tests. The writer holds a
/// `Box<dyn LogFile>` and calls it once or twice per batch, never per record.
pub(crate) trait LogFile: Send + fmt::Debug {
    /// Writes all of `buf` at `offset` (`pwrite(2)`, repeated until done).
    /// The writer appends: `offset` is the end of its last record, which
    /// may be short of the end of the file (see `writer::preallocate`).
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes what was written durable (`fdatasync(2)`).
    fn sync_data(&mut self) -> io::Result<()>;

    /// Makes what was written and the file's length durable (`fsync(2)`):
    /// after the file was cut.
    fn sync_all(&mut self) -> io::Result<()>;

    /// Cuts the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Appends to `next` from now on: the new log file after a rotation.
    fn switch_to(&mut self, next: File);
}

impl LogFile for File {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn switch_to(&mut self, next: File) {
        *self = next;
    }
}
