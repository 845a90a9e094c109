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
//! Small records (up to 1 KiB) are packed back to back into
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

mod arena;
#[cfg(test)]
mod tests;

use super::session::{SessionConfig, Sessions};
use arena::{decode_record, Records, Slot};
use bytes::Bytes;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SHARDS: usize = 64;

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

fn is_live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|at| at > now)
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
        let slot = self.records.push(key, value, expires_at);
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
        if self.records.needs_compaction() {
            self.records.compact(self.table.iter_mut());
        }
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
    /// The session table: which sequenced writes were applied, and their
    /// answers. Here so that the log's writer, recovery and snapshots,
    /// which all work on the store, keep it with the data.
    sessions: Sessions,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store, with an empty session table of the default
    /// [`SessionConfig`].
    pub fn new() -> Self {
        Self::with_sessions(SessionConfig::default())
    }

    /// An empty store whose session table is configured by `sessions`.
    pub fn with_sessions(sessions: SessionConfig) -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect();
        Store {
            inner: Arc::new(Inner {
                hasher: RandomState::new(),
                shards,
                sessions: Sessions::new(sessions),
            }),
        }
    }

    /// The session table kept with this store's data.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
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

    /// Bytes of memory the store holds for its data: the records (packed
    /// chunks, dead space included, and large records alone) and the hash
    /// tables' slots. Allocator overhead and the process's other memory are
    /// not counted.
    pub fn bytes(&self) -> usize {
        let slot = std::mem::size_of::<Slot>() + 1;
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.read().unwrap_or_else(|p| p.into_inner());
                shard.records.bytes() + shard.table.capacity() * slot
            })
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
