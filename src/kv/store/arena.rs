//! The shard's memory: records packed back to back in 64 KiB chunks (large
//! ones alone), the `Slot` that says where each is, and the record format.

/// Bytes per chunk of packed small records.
pub(super) const CHUNK: usize = 64 * 1024;
/// The largest record packed into chunks; larger ones are allocated alone.
pub(super) const SMALL_RECORD: usize = 1024;
/// A shard is compacted once this much of its chunk space is dead and the
/// dead space is at least half of it.
pub(super) const MIN_DEAD_TO_COMPACT: usize = 4 * CHUNK;

/// Encodes a record: see the [store's docs](super) for the layout.
pub(super) fn encode_record(key: &[u8], value: &[u8], expires_at: Option<u64>, out: &mut Vec<u8>) {
    let mut header = ((key.len() as u64) << 1) | u64::from(expires_at.is_some());
    loop {
        let byte = (header & 0x7f) as u8;
        header >>= 7;
        if header == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    if let Some(at) = expires_at {
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// A decoded record: `(expires_at, key, value)`. Records are written only by
/// [`encode_record`], so the slicing follows from its layout.
pub(super) fn decode_record(record: &[u8]) -> (Option<u64>, &[u8], &[u8]) {
    let mut header = 0u64;
    let mut at = 0;
    for (i, byte) in record.iter().enumerate() {
        header |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            at = i + 1;
            break;
        }
    }
    let expires_at = if header & 1 == 1 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&record[at..at + 8]);
        at += 8;
        Some(u64::from_le_bytes(raw))
    } else {
        None
    };
    let (key, value) = record[at..].split_at((header >> 1) as usize);
    (expires_at, key, value)
}

/// Where a record lives: `len` bytes at offset `at` of the shard's chunks,
/// or, when `len` has its top bit set, the large record number `at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    at: u32,
    len: u32,
}

const LARGE: u32 = 1 << 31;

impl Slot {
    fn is_large(self) -> bool {
        self.len & LARGE != 0
    }
}

/// Packed small records in fixed-size chunks, plus large records alone.
#[derive(Debug, Default)]
pub(super) struct Records {
    pub(super) chunks: Vec<Box<[u8]>>,
    /// Bytes used in the last chunk.
    tail: usize,
    /// Bytes of chunk space no slot points to.
    pub(super) dead: usize,
    large: Vec<Box<[u8]>>,
    /// Bytes of the records in `large`.
    large_bytes: usize,
    /// Numbers of `large` entries free for reuse.
    free_large: Vec<u32>,
    /// Reused for encoding, so that a put does not allocate for small records.
    scratch: Vec<u8>,
}

impl Records {
    pub(super) fn get(&self, slot: Slot) -> &[u8] {
        if slot.is_large() {
            return &self.large[slot.at as usize];
        }
        let (chunk, start) = (slot.at as usize / CHUNK, slot.at as usize % CHUNK);
        &self.chunks[chunk][start..start + slot.len as usize]
    }

    /// Stores the record of `key`, `value` and `expires_at` and says where.
    pub(super) fn push(&mut self, key: &[u8], value: &[u8], expires_at: Option<u64>) -> Slot {
        encode_record(key, value, expires_at, &mut self.scratch);
        self.push_scratch()
    }

    /// Stores `scratch`'s record and says where.
    fn push_scratch(&mut self) -> Slot {
        let len = self.scratch.len();
        let offset = self.chunks.len().saturating_sub(1) * CHUNK + self.tail;
        if len > SMALL_RECORD || offset + CHUNK > u32::MAX as usize {
            let record = std::mem::take(&mut self.scratch).into_boxed_slice();
            self.large_bytes += record.len();
            let at = match self.free_large.pop() {
                Some(at) => {
                    self.large[at as usize] = record;
                    at
                }
                None => {
                    self.large.push(record);
                    (self.large.len() - 1) as u32
                }
            };
            return Slot { at, len: LARGE };
        }
        if self.chunks.is_empty() || self.tail + len > CHUNK {
            if !self.chunks.is_empty() {
                self.dead += CHUNK - self.tail;
            }
            // Zeroed memory comes from fresh pages: nothing is resident
            // until a record is written there.
            self.chunks.push(vec![0u8; CHUNK].into_boxed_slice());
            self.tail = 0;
        }
        let chunk = self.chunks.len() - 1;
        let start = self.tail;
        self.chunks[chunk][start..start + len].copy_from_slice(&self.scratch);
        self.tail += len;
        self.scratch.clear();
        Slot {
            at: (chunk * CHUNK + start) as u32,
            len: len as u32,
        }
    }

    pub(super) fn release(&mut self, slot: Slot) {
        if slot.is_large() {
            self.large_bytes -= self.large[slot.at as usize].len();
            self.large[slot.at as usize] = Box::default();
            self.free_large.push(slot.at);
        } else {
            self.dead += slot.len as usize;
        }
    }

    /// Bytes held for records: every chunk (live and dead space) and every
    /// large record.
    pub(super) fn bytes(&self) -> usize {
        self.chunks.len() * CHUNK + self.large_bytes
    }

    pub(super) fn needs_compaction(&self) -> bool {
        let used = self.chunks.len() * CHUNK;
        self.dead >= MIN_DEAD_TO_COMPACT && self.dead * 2 >= used
    }

    /// Copies every small record one of `slots` points to into fresh
    /// chunks, and points the slots there. Large records stay where they are.
    pub(super) fn compact<'a>(&mut self, slots: impl Iterator<Item = &'a mut Slot>) {
        let mut fresh = Records {
            large: std::mem::take(&mut self.large),
            large_bytes: self.large_bytes,
            free_large: std::mem::take(&mut self.free_large),
            ..Records::default()
        };
        for slot in slots {
            if !slot.is_large() {
                fresh.scratch.extend_from_slice(self.get(*slot));
                *slot = fresh.push_scratch();
            }
        }
        *self = fresh;
    }
}
