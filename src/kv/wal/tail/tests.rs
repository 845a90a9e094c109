//! Torn writes against corruption, byte by byte.

use super::super::record::{encode, Next, RecordReader};
use super::super::Mutation;
use super::*;
use bytes::Bytes;
use std::io::Cursor;

/// Twelve records of assorted sizes, and where each starts.
fn log() -> (Vec<u8>, Vec<u64>) {
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for i in 0..12u8 {
        starts.push(buf.len() as u64);
        let mutation = if i % 5 == 4 {
            Mutation::Delete {
                key: Bytes::from(vec![b'k', i]),
            }
        } else {
            Mutation::Put {
                key: Bytes::from(vec![b'k', i]),
                value: Bytes::from(vec![i.wrapping_mul(37) | 1; 3 + 11 * i as usize]),
                expires_at: (i % 3 == 0).then_some(1_000 + u64::from(i)),
            }
        };
        encode(&mutation, &mut buf);
    }
    (buf, starts)
}

/// Reads to the first damage and judges it: `None` for a clean file.
fn verdict(bytes: &[u8]) -> Option<(u64, Verdict)> {
    let len = bytes.len() as u64;
    let mut reader = RecordReader::new(Cursor::new(bytes), 0, len);
    let (offset, damage) = loop {
        match reader.next().unwrap() {
            Next::Record(_) => continue,
            Next::Eof => return None,
            Next::Damaged { offset, damage } => break (offset, damage),
        }
    };
    let verdict = judge(&mut Cursor::new(bytes), len, offset, damage).unwrap();
    Some((offset, verdict))
}

#[test]
fn every_cut_inside_the_last_record_is_a_torn_write() {
    let (buf, starts) = log();
    let last = *starts.last().unwrap();
    for cut in last + 1..buf.len() as u64 {
        let (offset, verdict) = verdict(&buf[..cut as usize]).expect("damage");
        assert_eq!(offset, last, "cut at {cut}");
        assert!(matches!(verdict, Verdict::Torn(_)), "cut at {cut}: {verdict:?}");
    }
}

#[test]
fn a_record_cut_short_then_zero_filled_is_a_torn_write() {
    let (buf, starts) = log();
    let last = *starts.last().unwrap() as usize;
    for keep in [last, last + 3, last + 8, last + 20] {
        let mut bytes = buf[..keep].to_vec();
        bytes.extend_from_slice(&[0; 700]);
        let (offset, verdict) = verdict(&bytes).expect("damage");
        assert_eq!(offset, last as u64);
        assert!(matches!(verdict, Verdict::Torn(_)), "kept {keep}: {verdict:?}");
    }
}

#[test]
fn any_damaged_byte_with_a_valid_record_after_it_is_corruption() {
    let (buf, starts) = log();
    let last = *starts.last().unwrap() as usize;
    for byte in 0..buf.len() {
        for flip in [0x01u8, 0x10, 0x80, 0xFF] {
            let mut bad = buf.clone();
            bad[byte] ^= flip;
            let (offset, verdict) = verdict(&bad).expect("damage is noticed");
            let record = *starts.iter().rfind(|&&s| s <= byte as u64).unwrap();
            assert_eq!(offset, record, "byte {byte} ^ {flip:#x}");
            // In the last record nothing valid follows, but it is whole: a
            // flipped bit in an answered write cannot be told from a torn
            // one, so it is refused too (`kv repair` decides).
            assert!(
                matches!(verdict, Verdict::Corrupt(_)),
                "byte {byte} ^ {flip:#x} (last record at {last}): {verdict:?}"
            );
        }
    }
}

#[test]
fn a_damaged_record_whose_value_ends_in_zeros_is_torn_only_with_nothing_after_it() {
    let mut buf = Vec::new();
    encode(
        &Mutation::Put {
            key: Bytes::from_static(b"zeros"),
            value: Bytes::from(vec![0; 5000]),
            expires_at: None,
        },
        &mut buf,
    );
    buf[10] ^= 0x20; // in the key
    assert!(matches!(verdict(&buf), Some((0, Verdict::Torn(_)))));
    let (more, _) = log();
    buf.extend_from_slice(&more);
    assert!(matches!(verdict(&buf), Some((0, Verdict::Corrupt(_)))));
}

/// What a crash leaves of a log preallocated under `always`: its records,
/// then zeros to the end of the file.
fn preallocated(records: &[u8]) -> Vec<u8> {
    [records, &[0; 4096]].concat()
}

#[test]
fn zeros_after_the_last_record_are_cut_as_a_zero_tail() {
    let (buf, _) = log();
    let (offset, verdict) = verdict(&preallocated(&buf)).expect("the zeros are damage");
    assert_eq!(offset, buf.len() as u64);
    assert_eq!(verdict, Verdict::Torn(ZERO_TAIL));
}

#[test]
fn a_write_cut_short_in_a_preallocated_log_is_torn_wherever_it_stops() {
    // A process killed mid-write leaves a prefix of the batch, and the
    // preallocated zeros after it.
    let (buf, starts) = log();
    let last = *starts.last().unwrap();
    for cut in last..buf.len() as u64 {
        let (offset, verdict) = verdict(&preallocated(&buf[..cut as usize])).expect("damage");
        assert_eq!(offset, last, "cut at {cut}");
        assert!(matches!(verdict, Verdict::Torn(_)), "cut at {cut}: {verdict:?}");
    }
}

#[test]
fn a_damaged_last_record_followed_only_by_zeros_is_refused() {
    // Preallocated, the last answered record is followed by zeros after a
    // crash: a flipped bit in it is refused as in a log that ends with it.
    let (buf, starts) = log();
    let last = *starts.last().unwrap() as usize;
    for byte in last..buf.len() {
        for flip in [0x01u8, 0x10, 0x80, 0xFF] {
            let mut bad = buf.clone();
            bad[byte] ^= flip;
            if bad[buf.len() - 1] == 0 {
                continue; // the record would end in a zero: see the next test
            }
            let (offset, verdict) = verdict(&preallocated(&bad)).expect("damage is noticed");
            assert_eq!(offset, last as u64, "byte {byte} ^ {flip:#x}");
            assert!(
                matches!(verdict, Verdict::Corrupt(_)),
                "byte {byte} ^ {flip:#x}: {verdict:?}"
            );
        }
    }
}

#[test]
fn a_preallocated_last_record_whose_value_ends_in_zeros_is_torn_when_damaged() {
    // Its zeros cannot be told from a write cut short: the one ambiguity
    // that, as without preallocation, errs on the side of starting.
    let mut buf = Vec::new();
    encode(
        &Mutation::Put {
            key: Bytes::from_static(b"zeros"),
            value: Bytes::from([&[9; 40][..], &[0; 30]].concat()),
            expires_at: None,
        },
        &mut buf,
    );
    buf[10] ^= 0x20; // in the key
    assert!(matches!(
        verdict(&preallocated(&buf)),
        Some((0, Verdict::Torn(_)))
    ));
}

#[test]
fn a_damaged_length_before_preallocated_zeros_is_recognised_by_its_checksum() {
    let (mut buf, starts) = log();
    buf[*starts.last().unwrap() as usize + 1] ^= 0x04;
    let (_, verdict) = verdict(&preallocated(&buf)).unwrap();
    let Verdict::Corrupt(reason) = verdict else {
        panic!("{verdict:?}")
    };
    assert!(reason.contains("length field is damaged"), "{reason}");
}

#[test]
fn damage_with_a_valid_record_after_it_is_corruption_in_a_preallocated_log_too() {
    let (buf, starts) = log();
    for byte in [starts[3] as usize + 9, starts[10] as usize + 2] {
        let mut bad = buf.clone();
        bad[byte] ^= 0x10;
        let (_, verdict) = verdict(&preallocated(&bad)).unwrap();
        assert!(matches!(verdict, Verdict::Corrupt(_)), "byte {byte}: {verdict:?}");
    }
}

#[test]
fn a_whole_last_record_zero_from_a_sector_boundary_is_a_torn_write() {
    // What a crash leaves when the file system extended the file before
    // the data landed: the last record is whole by its length, but from a
    // sector boundary inside it to its end the disk holds zeros.
    let (mut buf, _) = log();
    let last = buf.len() as u64;
    encode(
        &Mutation::Put {
            key: Bytes::from_static(b"spans sectors"),
            value: Bytes::from(vec![0x6B; 1900]),
            expires_at: None,
        },
        &mut buf,
    );
    let end = buf.len() as u64;
    let boundaries: Vec<u64> = (1..)
        .map(|n| n * SECTOR)
        .skip_while(|&b| b <= last)
        .take_while(|&b| b < end)
        .collect();
    assert!(boundaries.len() >= 3, "{boundaries:?}");
    for &boundary in &boundaries {
        let mut torn = buf.clone();
        torn[boundary as usize..].fill(0);
        let (offset, verdict) = verdict(&torn).expect("damage");
        assert_eq!(offset, last);
        assert!(
            matches!(verdict, Verdict::Torn(_)),
            "zeros from {boundary}: {verdict:?}"
        );
    }
    // Zeros that start past the last boundary are not what a disk
    // leaves: refused, as a flipped bit would be.
    let past = boundaries[boundaries.len() - 1] + 1;
    assert!(past < end);
    let mut odd = buf.clone();
    odd[past as usize..].fill(0);
    let (_, verdict) = verdict(&odd).expect("damage");
    assert!(
        matches!(verdict, Verdict::Corrupt(_)),
        "zeros from {past}: {verdict:?}"
    );
}

/// Pseudo-random numbers from a counter (a multiplicative hash of it).
fn noise(counter: &mut u64) -> u64 {
    *counter += 1;
    counter.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ *counter
}

/// `n` pseudo-random bytes, none zero (zeros are a case of their own).
fn noise_bytes(counter: &mut u64, n: usize) -> Vec<u8> {
    (0..n).map(|_| (noise(counter) >> 40) as u8 | 1).collect()
}

/// Tails a crash can leave where the file system extended the file before
/// its data landed: random bytes, whose first eight may claim any length.
fn random_tails() -> Vec<Vec<u8>> {
    let mut counter = 0x7041_1ED5_u64;
    let mut tails = Vec::new();
    for len in 1..64usize {
        for claim in 0..6 {
            let mut tail = noise_bytes(&mut counter, len);
            if len >= HEADER_LEN as usize {
                let rest = (len - HEADER_LEN as usize) as u32;
                let claimed = match claim {
                    0 => None, // whatever the random bytes say
                    1 => Some(u32::MAX - (noise(&mut counter) % 1000) as u32),
                    2 => Some(MAX_PAYLOAD + 1 + (noise(&mut counter) % 1_000_000) as u32),
                    3 => Some(0),
                    // Exactly what is left (a whole record whose checksum
                    // fails): judged apart, below.
                    4 => Some(rest.wrapping_add(1)),
                    // In range: shorter than what is left, or past the end.
                    _ => Some((noise(&mut counter) % u64::from(rest + 1_000)) as u32),
                };
                if let Some(claimed) = claimed {
                    tail[..4].copy_from_slice(&claimed.to_le_bytes());
                }
            }
            tails.push(tail);
        }
    }
    tails
}

#[test]
fn random_bytes_after_the_last_record_are_a_torn_tail_whatever_their_header_claims() {
    let (buf, _) = log();
    for tail in random_tails() {
        let bytes = [buf.as_slice(), &tail].concat();
        let (offset, verdict) = verdict(&bytes).expect("damage");
        assert_eq!(offset, buf.len() as u64, "tail {tail:02x?}");
        // A length field that matches exactly what follows makes a whole
        // record: refused (see `a_random_tail_that_makes_a_whole_record_is_refused`).
        let whole = tail.len() >= HEADER_LEN as usize + PLAUSIBLE_PREFIX
            && u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize
                == tail.len() - HEADER_LEN as usize;
        assert_eq!(
            matches!(verdict, Verdict::Torn(_)),
            !whole,
            "tail of {} bytes {tail:02x?}: {verdict:?}",
            tail.len()
        );
    }
}

/// Random bytes that happen to make a whole record — their length field
/// matches exactly what follows — are refused: a flipped bit in an answered
/// last record looks the same.
#[test]
fn a_random_tail_that_makes_a_whole_record_is_refused() {
    let (buf, _) = log();
    let mut counter = 0x5EED_u64;
    for len in HEADER_LEN as usize + PLAUSIBLE_PREFIX..64 {
        let mut tail = noise_bytes(&mut counter, len);
        let rest = (len - HEADER_LEN as usize) as u32;
        tail[..4].copy_from_slice(&rest.to_le_bytes());
        let bytes = [buf.as_slice(), &tail].concat();
        let (_, verdict) = verdict(&bytes).expect("damage");
        assert!(matches!(verdict, Verdict::Corrupt(_)), "{tail:02x?}: {verdict:?}");
    }
}

#[test]
fn random_bytes_with_a_valid_record_after_them_are_corruption() {
    let (buf, starts) = log();
    let next = &buf[starts[2] as usize..starts[3] as usize];
    for tail in random_tails() {
        let bytes = [buf.as_slice(), &tail, next].concat();
        let (offset, verdict) = verdict(&bytes).expect("damage");
        assert_eq!(offset, buf.len() as u64, "tail {tail:02x?}");
        let Verdict::Corrupt(reason) = verdict else {
            panic!("tail of {} bytes {tail:02x?}: {verdict:?}", tail.len())
        };
        let at = buf.len() + tail.len();
        assert!(reason.contains(&format!("offset {at}")), "{reason}");
    }
}

#[test]
fn a_length_flipped_past_the_end_names_the_next_valid_record() {
    let (mut buf, starts) = log();
    // Record 3's length gets bit 27: it now runs far past the end.
    buf[starts[3] as usize + 3] ^= 0x08;
    let (offset, verdict) = verdict(&buf).unwrap();
    assert_eq!(offset, starts[3]);
    let Verdict::Corrupt(reason) = verdict else {
        panic!("{verdict:?}")
    };
    assert!(reason.contains(&format!("offset {}", starts[4])), "{reason}");
}

#[test]
fn the_last_records_damaged_length_is_recognised_by_its_checksum() {
    let (mut buf, starts) = log();
    buf[*starts.last().unwrap() as usize + 1] ^= 0x04;
    let (_, verdict) = verdict(&buf).unwrap();
    let Verdict::Corrupt(reason) = verdict else {
        panic!("{verdict:?}")
    };
    assert!(reason.contains("length field is damaged"), "{reason}");
}

#[test]
fn a_value_holding_a_log_record_makes_its_torn_write_look_corrupt() {
    // A client stored the bytes of a record as a value; the write of that
    // value was cut short after the embedded record. Refusing is the safe
    // mistake: nothing is cut, and `kv repair` can cut it.
    let (record, _) = log();
    let mut buf = Vec::new();
    encode(
        &Mutation::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from([record.as_slice(), &[7; 100]].concat()),
            expires_at: None,
        },
        &mut buf,
    );
    let cut = &buf[..buf.len() - 50];
    assert!(matches!(verdict(cut), Some((0, Verdict::Corrupt(_)))));
}

#[test]
fn the_search_finds_nothing_in_zeros_or_noise_and_a_record_where_there_is_one() {
    let (buf, starts) = log();
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for junk in [vec![0u8; 5000], noise] {
        let mut bytes = junk.clone();
        let len = bytes.len() as u64;
        assert_eq!(
            find_record(&mut Cursor::new(&bytes), 0, len).unwrap(),
            Found::Nothing
        );
        bytes.extend_from_slice(&buf[starts[2] as usize..starts[3] as usize]);
        let len = bytes.len() as u64;
        assert_eq!(
            find_record(&mut Cursor::new(&bytes), 0, len).unwrap(),
            Found::At(junk.len() as u64)
        );
    }
}
