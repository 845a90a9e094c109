//! Is damage at the end of the newest log a torn write, to be cut off, or
//! corruption, to be refused?
//!
//! A crash can only leave the end of the log damaged: the writer appends,
//! and a process killed mid-`write(2)` leaves a prefix of what it was
//! writing. A file system may also extend the file before the data lands,
//! leaving zeros or whatever the disk held there — random bytes, whose
//! "header" may claim any length at all. So a torn tail is recognised by
//! *what follows the damage*, not by how its header looks: damage is a torn
//! write if
//!
//! * everything from the damage to the end of the file is zero, or
//! * fewer bytes than a record header are left, or
//! * no valid record starts anywhere after it, *and* the bytes from it to
//!   the end of the file are not a whole record with a damaged length field
//!   (its checksum would match them: a record that was there).
//!
//! Anything else — a valid record after the damage, a record whose checksum
//! matches but whose payload makes no sense — is corruption: recovery
//! refuses to start and cuts nothing.
//!
//! One case is refused although nothing follows it: a *whole* last record
//! — its length field consistent with the file, ending exactly at its end,
//! or exactly where the zeros that end the file begin (a log preallocated
//! under `always` ends in zeros after a crash) — whose checksum fails, and
//! whose last byte was written. A crash can leave that (the length and the
//! first sectors landed, the rest did not), but so does a flipped bit in a
//! record that was acknowledged, and nothing in the file tells the two
//! apart; cutting it could lose an answered write, so recovery refuses and
//! `kv repair` decides. A record that ends the file but whose bytes are
//! zeros from a sector boundary inside it to its end is cut as torn: that
//! is what a crash leaves when the file system extended the file before
//! the data landed, since a disk writes whole sectors, so the part that did
//! not land starts at a multiple of 512 bytes in the file (or covers the
//! whole record, the first case above). A flipped bit in an answered write
//! is taken for that only if the record's own bytes happen to be zero from
//! such a boundary to its end. Random bytes appended after the last record
//! almost never make a whole record (their "length" would have to match
//! what follows exactly).
//!
//! The search for a valid record after the damage is what tells a length
//! field with a flipped bit (the records after it are still there) from a
//! record cut short (nothing after it). It may also find a valid record
//! *inside* the value of a record cut short, if a client stored the bytes
//! of a log record as a value; that is reported as corruption too, which
//! errs on the side of keeping data: `kv repair` then cuts it.

use super::record::{
    checksum_of_len, could_start_log_record, parse_header, Damage, HEADER_LEN, MAX_PAYLOAD, PLAUSIBLE_PREFIX,
};
use std::io::{self, Read, Seek, SeekFrom};

/// The smallest record: a header and a DELETE of the empty key.
const MIN_RECORD: u64 = HEADER_LEN + PLAUSIBLE_PREFIX as u64;
/// How much of the file the search for a valid record reads at once.
const WINDOW: usize = 1 << 20;
/// How many payload bytes the search may checksum before it gives up. Only
/// crafted data makes it check more than a few candidates.
const SCAN_BUDGET: u64 = 1 << 30;

/// What damage at the end of the newest log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A write cut short by a crash: cut it off.
    Torn(&'static str),
    /// Damage a crash cannot leave: refuse, naming this.
    Corrupt(String),
}

/// What a search for a valid record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A valid log record starts at this offset.
    At(u64),
    /// No valid log record starts in the range.
    Nothing,
    /// The search spent its budget before it could tell.
    GaveUp,
}

/// A sector: the unit a file system writes or leaves zeroed.
const SECTOR: u64 = 512;

/// Why zeros at the end of the newest log are cut: a crash of a server
/// that preallocated the log (`always`) leaves them, and so does a file
/// system that extended the file before the data landed.
pub(crate) const ZERO_TAIL: &str = "zeros at the end of the file (preallocated, or left by the file system)";

/// Whether the record starting at `start` is zeros from the last sector
/// boundary inside it to the end of the file: the part of a write that had
/// not landed when the file system, which had already extended the file,
/// crashed.
fn zeros_from_a_sector_boundary<F: Read + Seek>(file: &mut F, start: u64, file_len: u64) -> io::Result<bool> {
    let boundary = (file_len - 1) / SECTOR * SECTOR;
    if boundary <= start {
        return Ok(false);
    }
    let mut rest = [0u8; SECTOR as usize];
    let rest = &mut rest[..(file_len - boundary) as usize];
    read_at(file, boundary, rest)?;
    Ok(rest.iter().all(|&byte| byte == 0))
}

/// Judges `damage` found at `offset` of a log file of `file_len` bytes.
pub(crate) fn judge<F: Read + Seek>(
    file: &mut F,
    file_len: u64,
    offset: u64,
    damage: Damage,
) -> io::Result<Verdict> {
    // Where the zeros that end the file begin: past the last byte written.
    let zeros = trailing_zeros(file, offset, file_len)?;
    if zeros == offset {
        return Ok(Verdict::Torn(ZERO_TAIL));
    }
    // The bug the simulator must catch: a torn write judged by its look.
    #[cfg(feature = "sim-mutations")]
    if crate::mutations::on(crate::mutations::Mutation::TornTailIsCorrupt) {
        return Ok(Verdict::Corrupt(format!("{}, taken for damage", damage.reason())));
    }
    let what = match damage {
        Damage::PartialHeader => return Ok(Verdict::Torn("a partial record header")),
        // The checksum matched: a crash does not write that.
        Damage::Malformed(_) => return Ok(Verdict::Corrupt(damage.reason())),
        Damage::PastEnd => "a record cut short",
        Damage::Checksum => "a record not all written",
    };
    let mut header = [0; HEADER_LEN as usize];
    read_at(file, offset, &mut header)?;
    let (len, crc) = parse_header(header);
    let rest = file_len - offset - HEADER_LEN;
    let whole = rest == u64::from(len) && rest >= PLAUSIBLE_PREFIX as u64;
    if damage == Damage::Checksum && whole && !zeros_from_a_sector_boundary(file, offset, file_len)? {
        return Ok(Verdict::Corrupt(format!(
            "the last record ({len} bytes, ending exactly at the end of the file) fails its \
             checksum: a flipped bit in an answered write or a torn one cannot be told apart"
        )));
    }
    // The same record in a preallocated log, followed by nothing but zeros:
    // its last byte is written (not zero), so it is not a write cut short.
    let written = (zeros - offset).checked_sub(HEADER_LEN);
    let whole_then_zeros =
        zeros < file_len && written == Some(u64::from(len)) && u64::from(len) >= PLAUSIBLE_PREFIX as u64;
    if damage == Damage::Checksum && whole_then_zeros {
        return Ok(Verdict::Corrupt(format!(
            "the last record ({len} bytes, followed only by zeros) fails its checksum: a \
             flipped bit in an answered write or a torn one cannot be told apart"
        )));
    }
    // A damaged length field: the checksum matches the bytes to the end of
    // the file, or (preallocated) to where its zeros begin.
    for candidate in [Some(rest), written.filter(|_| zeros < file_len)]
        .into_iter()
        .flatten()
    {
        if candidate != u64::from(len)
            && (PLAUSIBLE_PREFIX as u64..=u64::from(MAX_PAYLOAD)).contains(&candidate)
            && checksum_at(file, offset + HEADER_LEN, candidate, &mut Vec::new())? == Some(crc)
        {
            return Ok(Verdict::Corrupt(format!(
                "the length field is damaged: it claims {len} bytes, and the record's checksum \
                 matches the {candidate} bytes after its header"
            )));
        }
    }
    let reason = || {
        if len > MAX_PAYLOAD {
            format!("the length field claims {len} bytes, more than any record has")
        } else {
            damage.reason()
        }
    };
    // No record starts in the zeros: a header of zeros is not valid.
    Ok(match find_record_before(file, offset + 1, file_len, zeros)? {
        Found::Nothing => Verdict::Torn(what),
        Found::At(next) => Verdict::Corrupt(format!(
            "{}, but a valid record follows at offset {next}",
            reason()
        )),
        Found::GaveUp => Verdict::Corrupt(format!(
            "{}, and the search for valid records after it gave up",
            reason()
        )),
    })
}

/// Looks for the first offset in `from..to` where a whole, valid log record
/// starts (its checksum matches and its payload is a PUT or a DELETE).
pub(crate) fn find_record<F: Read + Seek>(file: &mut F, from: u64, to: u64) -> io::Result<Found> {
    find_record_before(file, from, to, to)
}

/// [`find_record`], for records that start before `starts_before`.
fn find_record_before<F: Read + Seek>(
    file: &mut F,
    from: u64,
    to: u64,
    starts_before: u64,
) -> io::Result<Found> {
    let mut window = Vec::new();
    let mut window_start = from;
    let mut chunk = Vec::new();
    let mut budget = SCAN_BUDGET;
    let mut at = from;
    while at + MIN_RECORD <= to && at < starts_before {
        if at + MIN_RECORD > window_start + window.len() as u64 {
            window_start = at;
            let len = (to - at).min(WINDOW as u64) as usize;
            window.resize(len, 0);
            read_at(file, at, &mut window)?;
        }
        let i = (at - window_start) as usize;
        let mut header = [0; HEADER_LEN as usize];
        header.copy_from_slice(&window[i..i + HEADER_LEN as usize]);
        let (len, crc) = parse_header(header);
        let payload = i + HEADER_LEN as usize;
        let fits = at + HEADER_LEN + u64::from(len) <= to;
        if fits && could_start_log_record(len, &window[payload..payload + PLAUSIBLE_PREFIX]) {
            let Some(left) = budget.checked_sub(u64::from(len)) else {
                return Ok(Found::GaveUp);
            };
            budget = left;
            let end = payload + len as usize;
            let sum = match window.get(payload..end) {
                Some(bytes) => {
                    let mut hasher = checksum_of_len(len.to_le_bytes());
                    hasher.update(bytes);
                    Some(hasher.finalize())
                }
                None => checksum_at(file, at + HEADER_LEN, u64::from(len), &mut chunk)?,
            };
            if sum == Some(crc) {
                return Ok(Found::At(at));
            }
        }
        at += 1;
    }
    Ok(Found::Nothing)
}

/// The checksum of a record whose length field says `len` and whose payload
/// is the `len` bytes at `start`; `None` if `len` is too big for a record.
fn checksum_at<F: Read + Seek>(
    file: &mut F,
    start: u64,
    len: u64,
    chunk: &mut Vec<u8>,
) -> io::Result<Option<u32>> {
    let Ok(field) = u32::try_from(len) else {
        return Ok(None);
    };
    let mut hasher = checksum_of_len(field.to_le_bytes());
    file.seek(SeekFrom::Start(start))?;
    chunk.resize(64 * 1024, 0);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.read_exact(&mut chunk[..n])?;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    Ok(Some(hasher.finalize()))
}

/// Where the zeros at the end of the file start: the offset just after the
/// last non-zero byte at or after `offset` (`offset` if there is none).
fn trailing_zeros<F: Read + Seek>(file: &mut F, offset: u64, file_len: u64) -> io::Result<u64> {
    let mut chunk = [0u8; 8192];
    let mut end = file_len;
    while end > offset {
        let start = end.saturating_sub(chunk.len() as u64).max(offset);
        let bytes = &mut chunk[..(end - start) as usize];
        read_at(file, start, bytes)?;
        if let Some(last) = bytes.iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(offset)
}

fn read_at<F: Read + Seek>(file: &mut F, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests;
