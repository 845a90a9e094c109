//! The concurrent in-memory map behind the KV server, with TTL.
//!
//! Keys are spread over shards, each behind its own `RwLock`, so readers of
//! different keys never queue behind one global lock and readers of the same
//! shard share it. Expiry times are absolute (milliseconds since the Unix
//! epoch) so that they mean the same thing after a restart. An expired key is
//! invisible at once (reads check the time) and its memory is reclaimed by
//! [`Store::purge_expired`], which the server calls periodically.
//!
//! # Layout
//!
//! A key, its value and its expiry are one *record*:
//!
//! ```text
//! [header: LEB128 of key_len << 1 | has_expiry] [expires_at: u64 LE, if any] [key] [value]
//! ```
//!
//! Small records (up to [`SMALL_RECORD`] bytes) are packed back to back into
//! 64 KiB chunks owned by their shard, so a small key costs its own bytes and
//! nothing else: no allocator header, no rounding to a size class. Larger
//! records get an allocation of their own. The hash table holds an 8-byte
//! `Slot` per key that says where the record is. Overwritten and deleted
//! records leave dead bytes in the chunks; once half of a shard's chunk
//! space is dead the shard is compacted (its live records copied into fresh
//! chunks), so dead space stays bounded. `examples/memory.rs` measures the
//! result in bytes per key.
//!
//! The store always copies what it is given: a value sliced from a
//! connection's read buffer would otherwise keep that whole buffer alive.

use bytes::Bytes;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SHARDS: usize = 64;
/// Bytes per chunk of packed small records.
const CHUNK: usize = 64 * 1024;
/// The largest record packed into chunks; larger ones are allocated alone.
pub(crate) const SMALL_RECORD: usize = 1024;
/// A shard is compacted once this much of its chunk space is dead and the
/// dead space is at least half of it.
const MIN_DEAD_TO_COMPACT: usize = 4 * CHUNK;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The absolute expiry time of a TTL that starts now.
pub(crate) fn expiry_after(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// Encodes a record: see the module docs for the layout.
fn encode_record(key: &[u8], value: &[u8], expires_at: Option<u64>, out: &mut Vec<u8>) {
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
fn decode_record(record: &[u8]) -> (Option<u64>, &[u8], &[u8]) {
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

fn is_live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// Where a record lives: `len` bytes at offset `at` of the shard's chunks,
/// or, when `len` has its top bit set, the large record number `at`.
#[derive(Debug, Clone, Copy)]
struct Slot {
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
struct Records {
    chunks: Vec<Box<[u8]>>,
    /// Bytes used in the last chunk.
    tail: usize,
    /// Bytes of chunk space no slot points to.
    dead: usize,
    large: Vec<Box<[u8]>>,
    /// Numbers of `large` entries free for reuse.
    free_large: Vec<u32>,
    /// Reused for encoding, so that a put does not allocate for small records.
    scratch: Vec<u8>,
}

impl Records {
    fn get(&self, slot: Slot) -> &[u8] {
        if slot.is_large() {
            return &self.large[slot.at as usize];
        }
        let (chunk, start) = (slot.at as usize / CHUNK, slot.at as usize % CHUNK);
        &self.chunks[chunk][start..start + slot.len as usize]
    }

    /// Stores `scratch`'s record and says where.
    fn push_scratch(&mut self) -> Slot {
        let len = self.scratch.len();
        let offset = self.chunks.len().saturating_sub(1) * CHUNK + self.tail;
        if len > SMALL_RECORD || offset + CHUNK > u32::MAX as usize {
            let record = std::mem::take(&mut self.scratch).into_boxed_slice();
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

    fn release(&mut self, slot: Slot) {
        if slot.is_large() {
            self.large[slot.at as usize] = Box::default();
            self.free_large.push(slot.at);
        } else {
            self.dead += slot.len as usize;
        }
    }

    fn needs_compaction(&self) -> bool {
        let used = self.chunks.len() * CHUNK;
        self.dead >= MIN_DEAD_TO_COMPACT && self.dead * 2 >= used
    }
}

#[derive(Debug, Default)]
struct Shard {
    table: HashTable<Slot>,
    records: Records,
    /// Keys with a TTL, ordered by expiry, for purging without a full scan.
    expirations: BTreeSet<(u64, Box<[u8]>)>,
}

impl Shard {
    fn find(&self, hash: u64, key: &[u8]) -> Option<&[u8]> {
        let records = &self.records;
        let slot = self
            .table
            .find(hash, |slot| decode_record(records.get(*slot)).1 == key)?;
        Some(records.get(*slot))
    }

    /// Removes `key`; returns whether it was there and live at `now`.
    fn remove(&mut self, hash: u64, key: &[u8], now: u64) -> Option<bool> {
        let records = &self.records;
        let (slot, _) = self
            .table
            .find_entry(hash, |slot| decode_record(records.get(*slot)).1 == key)
            .ok()?
            .remove();
        let expires_at = decode_record(self.records.get(slot)).0;
        if let Some(at) = expires_at {
            self.expirations.remove(&(at, Box::from(key)));
        }
        self.records.release(slot);
        Some(is_live(expires_at, now))
    }

    fn insert(&mut self, hash: u64, key: &[u8], value: &[u8], expires_at: Option<u64>, hasher: &RandomState) {
        self.remove(hash, key, 0);
        encode_record(key, value, expires_at, &mut self.records.scratch);
        let slot = self.records.push_scratch();
        let records = &self.records;
        self.table.insert_unique(hash, slot, |slot| {
            hasher.hash_one(decode_record(records.get(*slot)).1)
        });
        if let Some(at) = expires_at {
            self.expirations.insert((at, Box::from(key)));
        }
    }

    /// Copies every live small record into fresh chunks.
    fn compact_if_needed(&mut self) {
        if !self.records.needs_compaction() {
            return;
        }
        let mut fresh = Records {
            large: std::mem::take(&mut self.records.large),
            free_large: std::mem::take(&mut self.records.free_large),
            ..Records::default()
        };
        for slot in self.table.iter_mut() {
            if !slot.is_large() {
                fresh.scratch.extend_from_slice(self.records.get(*slot));
                *slot = fresh.push_scratch();
            }
        }
        self.records = fresh;
    }
}

/// A concurrent map from keys to values with optional expiry.
///
/// Cloning a `Store` is cheap and gives another handle to the same data.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// SipHash with a random key: peers choose the keys, so the table must
    /// not be open to collision flooding.
    hasher: RandomState,
    shards: Box<[RwLock<Shard>]>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect();
        Store {
            inner: Arc::new(Inner {
                hasher: RandomState::new(),
                shards,
            }),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// The shard of a hash. It uses bits the table does not: hashbrown takes
    /// the bucket from the low bits and a tag from the top seven.
    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.inner.shards[(hash >> 32) as usize % SHARDS]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard> {
        // A panic while holding a shard lock cannot leave a shard half-updated
        // (no update can panic between its steps), so poisoning is ignored.
        self.shard(hash)
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard> {
        self.shard(hash)
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        let hash = self.hash(key);
        let shard = self.read(hash);
        let (expires_at, _, value) = decode_record(shard.find(hash, key)?);
        // Only keys with a TTL need the clock.
        (expires_at.is_none() || is_live(expires_at, now_ms())).then(|| Bytes::copy_from_slice(value))
    }

    /// Sets `key` to `value`, clearing any TTL.
    pub fn put(&self, key: &[u8], value: &[u8]) {
        self.put_until(key, value, None);
    }

    /// Sets `key` to `value` until `ttl` from now.
    pub fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: Duration) {
        self.put_until(key, value, Some(expiry_after(ttl)));
    }

    /// Sets `key` to `value` until the absolute time `expires_at` (Unix
    /// milliseconds), or forever for `None`. A time in the past stores nothing
    /// visible, as if the key had already expired.
    pub fn put_until(&self, key: &[u8], value: &[u8], expires_at: Option<u64>) {
        let hash = self.hash(key);
        let mut shard = self.write(hash);
        shard.insert(hash, key, value, expires_at, &self.inner.hasher);
        shard.compact_if_needed();
    }

    /// Removes `key`; `true` if it existed and was live.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = now_ms();
        let hash = self.hash(key);
        let mut shard = self.write(hash);
        let removed = shard.remove(hash, key, now);
        shard.compact_if_needed();
        removed.unwrap_or(false)
    }

    /// Drops every key whose expiry is at or before now; returns how many.
    pub fn purge_expired(&self) -> usize {
        self.purge_expired_at(now_ms())
    }

    fn purge_expired_at(&self, now: u64) -> usize {
        let mut purged = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            while shard.expirations.first().is_some_and(|(at, _)| *at <= now) {
                let Some((_, key)) = shard.expirations.pop_first() else {
                    break;
                };
                if shard.remove(self.hash(&key), &key, now).is_some() {
                    purged += 1;
                }
            }
            shard.compact_if_needed();
        }
        purged
    }

    /// The number of keys held, counting expired keys not yet purged.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(|p| p.into_inner()).table.len())
            .sum()
    }

    /// `true` if the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every live key, its value and its expiry, one shard at
    /// a time (each shard is read-locked only while it is visited). Used to
    /// write snapshots.
    pub fn for_each_live(&self, mut f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        let now = now_ms();
        for shard in self.inner.shards.iter() {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            for slot in shard.table.iter() {
                let (expires_at, key, value) = decode_record(shard.records.get(*slot));
                if is_live(expires_at, now) {
                    f(key, value, expires_at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete() {
        let store = Store::new();
        assert_eq!(store.get(b"k"), None);
        store.put(b"k", b"v1");
        assert_eq!(store.get(b"k").as_deref(), Some(&b"v1"[..]));
        store.put(b"k", b"v2");
        assert_eq!(store.get(b"k").as_deref(), Some(&b"v2"[..]));
        assert!(store.delete(b"k"));
        assert!(!store.delete(b"k"));
        assert_eq!(store.get(b"k"), None);
    }

    #[test]
    fn empty_key_is_a_key() {
        let store = Store::new();
        store.put(b"", b"empty");
        assert_eq!(store.get(b"").as_deref(), Some(&b"empty"[..]));
    }

    #[test]
    fn expired_keys_are_invisible_and_purged() {
        let store = Store::new();
        store.put_until(b"gone", b"v", Some(now_ms() - 1));
        store.put_until(b"later", b"v", Some(now_ms() + 60_000));
        assert_eq!(store.get(b"gone"), None);
        assert!(!store.delete(b"gone") || store.get(b"gone").is_none());
        store.put_until(b"gone", b"v", Some(now_ms() - 1));
        assert_eq!(store.len(), 2);
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(store.len(), 1);
        assert!(store.get(b"later").is_some());
        // Everything expires eventually.
        assert_eq!(store.purge_expired_at(now_ms() + 120_000), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn put_without_ttl_clears_the_ttl() {
        let store = Store::new();
        store.put_until(b"k", b"v", Some(now_ms() + 10));
        store.put(b"k", b"forever");
        assert_eq!(store.purge_expired_at(now_ms() + 60_000), 0);
        assert_eq!(store.get(b"k").as_deref(), Some(&b"forever"[..]));
    }

    #[test]
    fn overwriting_a_ttl_keeps_only_the_new_one() {
        let store = Store::new();
        let now = now_ms();
        store.put_until(b"k", b"v", Some(now + 10));
        store.put_until(b"k", b"v", Some(now + 100_000));
        assert_eq!(store.purge_expired_at(now + 50), 0);
        assert!(store.get(b"k").is_some());
    }

    #[test]
    fn values_do_not_share_the_callers_buffer() {
        let store = Store::new();
        let big = vec![7u8; 8192];
        store.put(b"k", &big[..4]);
        let got = store.get(b"k").unwrap();
        assert_eq!(&got[..], &[7u8; 4]);
        assert_ne!(got.as_ptr(), big.as_ptr());
    }

    #[test]
    fn entries_keep_keys_values_and_expiry_of_any_length() {
        for key_len in [0usize, 1, 63, 64, 127, 128, 16_383, 16_384, 70_000] {
            for expires_at in [None, Some(0), Some(u64::MAX)] {
                let key = vec![b'k'; key_len];
                let mut record = Vec::new();
                encode_record(&key, b"value", expires_at, &mut record);
                assert_eq!(decode_record(&record), (expires_at, &key[..], &b"value"[..]));
            }
        }
    }

    #[test]
    fn large_records_live_alone_and_are_reused() {
        let store = Store::new();
        let big = vec![9u8; SMALL_RECORD * 4];
        store.put(b"big", &big);
        assert_eq!(store.get(b"big").as_deref(), Some(&big[..]));
        store.put(b"big", b"small now");
        assert_eq!(store.get(b"big").as_deref(), Some(&b"small now"[..]));
        store.put(b"big", &big);
        assert!(store.delete(b"big"));
        assert_eq!(store.get(b"big"), None);
    }

    #[test]
    fn overwrites_are_compacted_and_every_value_survives() {
        let store = Store::new();
        // Many rounds of overwrites: far more dead bytes than live ones.
        for round in 0..50u32 {
            for key in 0..2_000u32 {
                let value = format!("{round}-{key}-{}", "x".repeat(40));
                store.put(&key.to_le_bytes(), value.as_bytes());
            }
        }
        for key in 0..2_000u32 {
            let expected = format!("49-{key}-{}", "x".repeat(40));
            assert_eq!(
                store.get(&key.to_le_bytes()).as_deref(),
                Some(expected.as_bytes())
            );
        }
        for shard in store.inner.shards.iter() {
            let shard = shard.read().unwrap();
            let used = shard.records.chunks.len() * CHUNK;
            assert!(
                shard.records.dead < MIN_DEAD_TO_COMPACT || shard.records.dead * 2 < used,
                "dead space is bounded"
            );
        }
    }

    #[test]
    fn concurrent_readers_and_writers() {
        let store = Store::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let key = format!("{t}-{i}");
                        store.put(key.as_bytes(), key.as_bytes());
                        assert_eq!(store.get(key.as_bytes()).as_deref(), Some(key.as_bytes()));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.len(), 4000);
    }

    #[test]
    fn for_each_live_visits_live_entries_only() {
        let store = Store::new();
        store.put(b"a", b"1");
        store.put_until(b"b", b"2", Some(now_ms() - 1));
        store.put_until(b"c", b"3", Some(now_ms() + 60_000));
        let mut seen = Vec::new();
        store.for_each_live(|k, v, at| seen.push((k.to_vec(), v.to_vec(), at.is_some())));
        seen.sort();
        assert_eq!(seen.len(), 2);
        assert_eq!(&seen[0].0[..], b"a");
        assert!(!seen[0].2);
        assert_eq!(&seen[1].0[..], b"c");
        assert!(seen[1].2);
    }
}
