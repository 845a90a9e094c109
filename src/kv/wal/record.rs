//! The bytes of one record, and reading a file of them back.
//!
//! ```text
//! file   := magic (8 bytes) record*
//! record := len: u32 LE | crc: u32 LE | payload (len bytes)
//!           crc = CRC-32 (IEEE) of the 4 length bytes, then the payload
//! payload:= 0x01 key_len: u32 LE | key | value                       PUT
//!         | 0x02 key_len: u32 LE | key | expires_at: u64 LE | value  PUT until (Unix ms)
//!         | 0x03 key_len: u32 LE | key                               DELETE
//!         | 0x04 session: 16 bytes | seq: u64 LE | acked_below: u64 LE | write
//!                 a SEQUENCED write: `write` is one of the three above, and
//!                 the record is both the write and its session-table entry
//!         | 0x05 session: 16 bytes | floor: u64 LE | n: u32 LE | n × (seq: u64 LE | status: u8)
//!                 a session and its answers (snapshots only)
//!         | 0xFF count: u64 LE                 end of a snapshot, with its number of records
//! ```
//!
//! A write and the session entry that dedups it are one record (`0x04`),
//! so they are durable together: recovery never finds one without the
//! other. Logs written before sessions existed hold only `0x01`..`0x03`
//! and load unchanged.
//!
//! The checksum covers the length too, so a flipped length bit is caught
//! whenever the record it points to is still inside the file.

use super::Mutation;
use crate::kv::session::{Sequenced, SessionId};
use crate::kv::Status;
use std::io::{self, Read};

/// The first bytes of every log file.
pub(crate) const WAL_MAGIC: &[u8; 8] = b"wskvWAL1";
/// The first bytes of every snapshot file.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"wskvSNP1";
/// Length and checksum.
pub(crate) const HEADER_LEN: u64 = 8;
/// No payload is longer; a length above it is damage, never an allocation.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 30;
/// The payload bytes of a PUT record besides its key and value: the
/// sequencing prefix, kind, key length and expiry.
pub(crate) const PUT_OVERHEAD: u32 = SEQUENCED_PREFIX as u32 + 1 + 4 + 8;
/// What a `0x04` record puts before its write: kind, session, seq, acked_below.
const SEQUENCED_PREFIX: usize = 1 + 16 + 8 + 8;
/// A `0x05` record before its answers: kind, session, floor, count.
const SESSION_PREFIX: usize = 1 + 16 + 8 + 4;
/// One answer of a `0x05` record: seq, status.
const SESSION_ANSWER: usize = 8 + 1;

const PUT: u8 = 0x01;
const PUT_UNTIL: u8 = 0x02;
const DELETE: u8 = 0x03;
const SEQUENCED: u8 = 0x04;
const SESSION: u8 = 0x05;
const END: u8 = 0xFF;

/// The session entry a sequenced write's record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) session: SessionId,
    pub(crate) sequenced: Sequenced,
}

/// One decoded record, borrowing the reader's buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        expires_at: Option<u64>,
        /// A sequenced write's session entry.
        tag: Option<Tag>,
    },
    Delete {
        key: &'a [u8],
        tag: Option<Tag>,
    },
    /// A session of the table and its answers (snapshots only).
    Session {
        session: SessionId,
        floor: u64,
        answers: SessionAnswers<'a>,
    },
    /// The footer of a snapshot.
    End {
        count: u64,
    },
}

/// The answers of a [`Record::Session`], checked when it was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionAnswers<'a>(&'a [u8]);

impl<'a> SessionAnswers<'a> {
    /// Each answer's `seq` and status.
    pub(crate) fn iter(self) -> impl Iterator<Item = (u64, Status)> + 'a {
        self.0.chunks_exact(SESSION_ANSWER).filter_map(|answer| {
            let (seq, rest) = split_array::<8>(answer)?;
            Some((u64::from_le_bytes(seq), Status::from_byte(*rest.first()?)?))
        })
    }
}

/// The payload length of `mutation`'s record, with the sequencing prefix
/// if it is `sequenced`.
pub(crate) fn payload_len(mutation: &Mutation, sequenced: bool) -> u64 {
    let prefix = if sequenced { SEQUENCED_PREFIX as u64 } else { 0 };
    prefix
        + match mutation {
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

/// Appends one mutation, framed, to `buf` (tests: the writer tags).
#[cfg(test)]
pub(crate) fn encode(mutation: &Mutation, buf: &mut Vec<u8>) {
    encode_tagged(mutation, None, buf);
}

/// Appends one mutation, framed, to `buf`; with `tag`, as a sequenced
/// write (`0x04`) carrying its session entry.
pub(crate) fn encode_tagged(mutation: &Mutation, tag: Option<&Tag>, buf: &mut Vec<u8>) {
    frame(buf, |buf| {
        if let Some(tag) = tag {
            buf.push(SEQUENCED);
            buf.extend_from_slice(&tag.session);
            buf.extend_from_slice(&tag.sequenced.seq.to_le_bytes());
            buf.extend_from_slice(&tag.sequenced.acked_below.to_le_bytes());
        }
        match mutation {
            Mutation::Put {
                key,
                value,
                expires_at,
            } => put_payload(key, value, *expires_at, buf),
            Mutation::Delete { key } => {
                buf.push(DELETE);
                push_key(buf, key);
            }
        }
    });
}

/// Appends a PUT record, framed, to `buf`.
pub(crate) fn encode_put(key: &[u8], value: &[u8], expires_at: Option<u64>, buf: &mut Vec<u8>) {
    frame(buf, |buf| put_payload(key, value, expires_at, buf));
}

/// Appends a session record (snapshots), framed, to `buf`.
pub(crate) fn encode_session(
    session: &SessionId,
    floor: u64,
    answers: &mut dyn Iterator<Item = (u64, Status)>,
    buf: &mut Vec<u8>,
) {
    frame(buf, |buf| {
        buf.push(SESSION);
        buf.extend_from_slice(session);
        buf.extend_from_slice(&floor.to_le_bytes());
        let count_at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        let mut count = 0u32;
        for (seq, status) in answers {
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.push(status as u8);
            count += 1;
        }
        buf[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    });
}

fn put_payload(key: &[u8], value: &[u8], expires_at: Option<u64>, buf: &mut Vec<u8>) {
    {
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
    }
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
        // The prefix holds the start of the session id, nothing to check.
        SEQUENCED => len >= SEQUENCED_PREFIX as u64 + 5,
        SESSION => {
            len >= SESSION_PREFIX as u64
                && (len - SESSION_PREFIX as u64).is_multiple_of(SESSION_ANSWER as u64)
        }
        _ => false,
    }
}

fn decode(payload: &[u8]) -> Result<Record<'_>, &'static str> {
    let (&kind, rest) = payload.split_first().ok_or("empty record")?;
    match kind {
        END => {
            let count = rest.try_into().map_err(|_| "malformed end record")?;
            return Ok(Record::End {
                count: u64::from_le_bytes(count),
            });
        }
        SEQUENCED => {
            let (session, rest) = split_array::<16>(rest).ok_or("sequenced record too short")?;
            let (seq, rest) = split_array::<8>(rest).ok_or("sequenced record too short")?;
            let (acked_below, write) = split_array::<8>(rest).ok_or("sequenced record too short")?;
            let tag = Tag {
                session,
                sequenced: Sequenced {
                    seq: u64::from_le_bytes(seq),
                    acked_below: u64::from_le_bytes(acked_below),
                },
            };
            return match decode_write(write)? {
                Record::Put {
                    key,
                    value,
                    expires_at,
                    ..
                } => Ok(Record::Put {
                    key,
                    value,
                    expires_at,
                    tag: Some(tag),
                }),
                Record::Delete { key, .. } => Ok(Record::Delete { key, tag: Some(tag) }),
                _ => Err("a sequenced record that holds no write"),
            };
        }
        SESSION => {
            let (session, rest) = split_array::<16>(rest).ok_or("session record too short")?;
            let (floor, rest) = split_array::<8>(rest).ok_or("session record too short")?;
            let (count, answers) = split_array::<4>(rest).ok_or("session record too short")?;
            let count = u64::from(u32::from_le_bytes(count));
            if answers.len() as u64 != count * SESSION_ANSWER as u64 {
                return Err("session record whose answers do not fill it");
            }
            if answers
                .chunks_exact(SESSION_ANSWER)
                .any(|answer| Status::from_byte(answer[SESSION_ANSWER - 1]).is_none())
            {
                return Err("session record with an unknown status");
            }
            return Ok(Record::Session {
                session,
                floor: u64::from_le_bytes(floor),
                answers: SessionAnswers(answers),
            });
        }
        _ => {}
    }
    decode_write(payload)
}

/// A PUT, PUT-until or DELETE payload.
fn decode_write(payload: &[u8]) -> Result<Record<'_>, &'static str> {
    let (&kind, rest) = payload.split_first().ok_or("empty record")?;
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
            tag: None,
        }),
        PUT_UNTIL => {
            let (at, value) = split_array::<8>(rest).ok_or("record too short for its expiry")?;
            Ok(Record::Put {
                key,
                value,
                expires_at: Some(u64::from_le_bytes(at)),
                tag: None,
            })
        }
        DELETE if rest.is_empty() => Ok(Record::Delete { key, tag: None }),
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
