//! The bytes of one record, and reading a file of them back.
//!
//! ```text
//! file   := magic (8 bytes) record*
//! record := len: u32 LE | crc: u32 LE | payload (len bytes)
//!           crc = CRC-32 (IEEE) of the 4 length bytes, then the payload
//! payload:= 0x01 key_len: u32 LE | key | value                       PUT
//!         | 0x02 key_len: u32 LE | key | expires_at: u64 LE | value  PUT until (Unix ms)
//!         | 0x03 key_len: u32 LE | key                               DELETE
//!         | 0xFF count: u64 LE                 end of a snapshot, with its number of records
//! ```
//!
//! The checksum covers the length too, so a flipped length bit is caught
//! whenever the record it points to is still inside the file.

use super::Mutation;
use std::io::{self, Read};

/// The first bytes of every log file.
pub(crate) const WAL_MAGIC: &[u8; 8] = b"wskvWAL1";
/// The first bytes of every snapshot file.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"wskvSNP1";
/// Length and checksum.
pub(crate) const HEADER_LEN: u64 = 8;
/// No payload is longer; a length above it is damage, never an allocation.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 30;
/// The payload bytes of a PUT record besides its key and value: kind, key
/// length and expiry.
pub(crate) const PUT_OVERHEAD: u32 = 1 + 4 + 8;

const PUT: u8 = 0x01;
const PUT_UNTIL: u8 = 0x02;
const DELETE: u8 = 0x03;
const END: u8 = 0xFF;

/// One decoded record, borrowing the reader's buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        expires_at: Option<u64>,
    },
    Delete {
        key: &'a [u8],
    },
    /// The footer of a snapshot.
    End {
        count: u64,
    },
}

/// The payload length of `mutation`'s record.
pub(crate) fn payload_len(mutation: &Mutation) -> u64 {
    match mutation {
        Mutation::Put {
            key,
            value,
            expires_at,
        } => {
            let expiry = if expires_at.is_some() { 8 } else { 0 };
            5 + expiry + key.len() as u64 + value.len() as u64
        }
        Mutation::Delete { key } => 5 + key.len() as u64,
    }
}

/// Appends one mutation, framed, to `buf`.
pub(crate) fn encode(mutation: &Mutation, buf: &mut Vec<u8>) {
    match mutation {
        Mutation::Put {
            key,
            value,
            expires_at,
        } => encode_put(key, value, *expires_at, buf),
        Mutation::Delete { key } => frame(buf, |buf| {
            buf.push(DELETE);
            push_key(buf, key);
        }),
    }
}

/// Appends a PUT record, framed, to `buf`.
pub(crate) fn encode_put(key: &[u8], value: &[u8], expires_at: Option<u64>, buf: &mut Vec<u8>) {
    frame(buf, |buf| {
        match expires_at {
            None => {
                buf.push(PUT);
                push_key(buf, key);
            }
            Some(at) => {
                buf.push(PUT_UNTIL);
                push_key(buf, key);
                buf.extend_from_slice(&at.to_le_bytes());
            }
        }
        buf.extend_from_slice(value);
    });
}

/// Appends a snapshot footer, framed, to `buf`.
pub(crate) fn encode_end(count: u64, buf: &mut Vec<u8>) {
    frame(buf, |buf| {
        buf.push(END);
        buf.extend_from_slice(&count.to_le_bytes());
    });
}

fn push_key(buf: &mut Vec<u8>, key: &[u8]) {
    // Keys are bounded by the server's limits, far below 4 GiB.
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(key);
}

/// Writes a header placeholder, the payload, then fills the header in.
fn frame(buf: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN as usize]);
    payload(buf);
    let len = u32::try_from(buf.len() - start - HEADER_LEN as usize).unwrap_or(u32::MAX);
    let len = len.to_le_bytes();
    let crc = checksum(len, &buf[start + HEADER_LEN as usize..]);
    buf[start..start + 4].copy_from_slice(&len);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = checksum_of_len(len);
    hasher.update(payload);
    hasher.finalize()
}

/// A checksum that has seen a record's length field: feed it the payload.
pub(crate) fn checksum_of_len(len: [u8; 4]) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher
}

/// The length and checksum fields of a record header.
pub(crate) fn parse_header(header: [u8; HEADER_LEN as usize]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = header;
    (u32::from_le_bytes([a, b, c, d]), u32::from_le_bytes([e, f, g, h]))
}

/// How many payload bytes [`could_start_log_record`] looks at.
pub(crate) const PLAUSIBLE_PREFIX: usize = 5;

/// Could a log record of `len` payload bytes start with `prefix` (its first
/// [`PLAUSIBLE_PREFIX`] bytes, or all of it if shorter)? A cheap test of the
/// kind and key length, before paying for a checksum.
pub(crate) fn could_start_log_record(len: u32, prefix: &[u8]) -> bool {
    let Some((&kind, rest)) = prefix.split_first() else {
        return false;
    };
    let Some((key_len, _)) = split_array::<4>(rest) else {
        return false;
    };
    let (key_len, len) = (u64::from(u32::from_le_bytes(key_len)), u64::from(len));
    if len > u64::from(MAX_PAYLOAD) {
        return false;
    }
    match kind {
        PUT => key_len + 5 <= len,
        PUT_UNTIL => key_len + 13 <= len,
        DELETE => key_len + 5 == len,
        _ => false,
    }
}

fn decode(payload: &[u8]) -> Result<Record<'_>, &'static str> {
    let (&kind, rest) = payload.split_first().ok_or("empty record")?;
    if kind == END {
        let count = rest.try_into().map_err(|_| "malformed end record")?;
        return Ok(Record::End {
            count: u64::from_le_bytes(count),
        });
    }
    let (len, rest) = split_array::<4>(rest).ok_or("record too short for its key length")?;
    let key_len = usize::try_from(u32::from_le_bytes(len)).map_err(|_| "key too long")?;
    if rest.len() < key_len {
        return Err("key runs past the end of its record");
    }
    let (key, rest) = rest.split_at(key_len);
    match kind {
        PUT => Ok(Record::Put {
            key,
            value: rest,
            expires_at: None,
        }),
        PUT_UNTIL => {
            let (at, value) = split_array::<8>(rest).ok_or("record too short for its expiry")?;
            Ok(Record::Put {
                key,
                value,
                expires_at: Some(u64::from_le_bytes(at)),
            })
        }
        DELETE if rest.is_empty() => Ok(Record::Delete { key }),
        DELETE => Err("delete record with trailing bytes"),
        _ => Err("unknown record kind"),
    }
}

fn split_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    if bytes.len() < N {
        return None;
    }
    let (head, rest) = bytes.split_at(N);
    Some((head.try_into().ok()?, rest))
}

/// What is wrong at the place a reader stopped. Whether it is a torn
/// write or corruption is for the `tail` module to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Fewer bytes than a header are left.
    PartialHeader,
    /// The header claims more bytes than the file has.
    PastEnd,
    /// The checksum does not match.
    Checksum,
    /// The checksum matches but the payload makes no sense: a bug or a
    /// foreign file, never a torn write.
    Malformed(&'static str),
}

impl Damage {
    pub(crate) fn reason(self) -> String {
        match self {
            Damage::PartialHeader => "partial record header".into(),
            Damage::PastEnd => "record runs past the end of the file".into(),
            Damage::Checksum => "checksum mismatch".into(),
            Damage::Malformed(what) => what.into(),
        }
    }
}

/// What [`RecordReader::next`] found.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    Record(Record<'a>),
    /// The clean end of the file.
    Eof,
    /// Damage starting at `offset`.
    Damaged {
        offset: u64,
        damage: Damage,
    },
}

/// Reads records one at a time from a file of known length, reusing one buffer.
#[derive(Debug)]
pub(crate) struct RecordReader<R> {
    inner: R,
    /// Where the next record starts.
    offset: u64,
    file_len: u64,
    buf: Vec<u8>,
}

impl<R: Read> RecordReader<R> {
    /// A reader positioned at `offset` of a file `file_len` bytes long.
    pub(crate) fn new(inner: R, offset: u64, file_len: u64) -> Self {
        RecordReader {
            inner,
            offset,
            file_len,
            buf: Vec::new(),
        }
    }

    /// Where the next record starts: after [`Next::Damaged`], where the damage starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn next(&mut self) -> io::Result<Next<'_>> {
        let offset = self.offset;
        let left = self.file_len - offset;
        if left == 0 {
            return Ok(Next::Eof);
        }
        let damaged = |damage| Ok(Next::Damaged { offset, damage });
        if left < HEADER_LEN {
            return damaged(Damage::PartialHeader);
        }
        let mut header = [0; HEADER_LEN as usize];
        self.inner.read_exact(&mut header)?;
        let len = [header[0], header[1], header[2], header[3]];
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let payload_len = u32::from_le_bytes(len);
        let end = offset + HEADER_LEN + u64::from(payload_len);
        if payload_len > MAX_PAYLOAD || end > self.file_len {
            return damaged(Damage::PastEnd);
        }
        self.buf.clear();
        self.buf.resize(payload_len as usize, 0);
        self.inner.read_exact(&mut self.buf)?;
        if checksum(len, &self.buf) != crc {
            return damaged(Damage::Checksum);
        }
        match decode(&self.buf) {
            Ok(record) => {
                self.offset = end;
                Ok(Next::Record(record))
            }
            Err(what) => damaged(Damage::Malformed(what)),
        }
    }
}

#[cfg(test)]
mod tests;
