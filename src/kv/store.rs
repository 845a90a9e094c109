//! The concurrent in-memory map behind the KV server, with TTL.
//!
//! Keys are spread over shards, each behind its own `RwLock`, so readers of
//! different keys never queue behind one global lock and readers of the same
//! shard share it. Expiry times are absolute (milliseconds since the Unix
//! epoch) so that they mean the same thing after a restart. An expired key is
//! invisible at once (reads check the time) and its memory is reclaimed by
//! [`Store::purge_expired`], which the server calls periodically.
//!
//! The store copies keys and values into allocations of their own: a value
//! sliced from a connection's read buffer would otherwise keep that whole
//! buffer alive for as long as the key lives.

use bytes::Bytes;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SHARDS: usize = 64;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The absolute expiry time of a TTL that starts now.
pub fn expiry_after(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct Entry {
    value: Bytes,
    /// Absolute expiry in Unix milliseconds; `None` lives forever.
    expires_at: Option<u64>,
}

impl Entry {
    fn is_live(&self, now: u64) -> bool {
        self.expires_at.map_or(true, |at| at > now)
    }
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Bytes, Entry>,
    /// Keys with a TTL, ordered by expiry, for purging without a full scan.
    expirations: BTreeSet<(u64, Bytes)>,
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

    fn shard_index(&self, key: &[u8]) -> usize {
        (self.inner.hasher.hash_one(key) as usize) % SHARDS
    }

    fn read(&self, key: &[u8]) -> RwLockReadGuard<'_, Shard> {
        let shard = &self.inner.shards[self.shard_index(key)];
        // A panic while holding a shard lock cannot leave a shard half-updated
        // (every update is a single map operation), so poisoning is ignored.
        shard.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, key: &[u8]) -> RwLockWriteGuard<'_, Shard> {
        let shard = &self.inner.shards[self.shard_index(key)];
        shard.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        let now = now_ms();
        let shard = self.read(key);
        shard
            .entries
            .get(key)
            .filter(|entry| entry.is_live(now))
            .map(|entry| entry.value.clone())
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
        let key = Bytes::copy_from_slice(key);
        let entry = Entry {
            value: Bytes::copy_from_slice(value),
            expires_at,
        };
        let mut shard = self.write(&key);
        if let Some(at) = expires_at {
            shard.expirations.insert((at, key.clone()));
        }
        if let Some(old) = shard.entries.insert(key.clone(), entry) {
            if let Some(old_at) = old.expires_at {
                if Some(old_at) != expires_at {
                    shard.expirations.remove(&(old_at, key));
                }
            }
        }
    }

    /// Removes `key`; `true` if it existed and was live.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = now_ms();
        let mut shard = self.write(key);
        match shard.entries.remove(key) {
            Some(old) => {
                if let Some(at) = old.expires_at {
                    shard.expirations.remove(&(at, Bytes::copy_from_slice(key)));
                }
                old.is_live(now)
            }
            None => false,
        }
    }

    /// Drops every key whose expiry is at or before now; returns how many.
    pub fn purge_expired(&self) -> usize {
        self.purge_expired_at(now_ms())
    }

    fn purge_expired_at(&self, now: u64) -> usize {
        let mut purged = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            while let Some((at, key)) = shard.expirations.first().cloned() {
                if at > now {
                    break;
                }
                shard.expirations.pop_first();
                if shard.entries.get(&key).is_some_and(|e| e.expires_at == Some(at)) {
                    shard.entries.remove(&key);
                    purged += 1;
                }
            }
        }
        purged
    }

    /// The number of keys held, counting expired keys not yet purged.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(|p| p.into_inner()).entries.len())
            .sum()
    }

    /// `true` if the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every live key, its value and its expiry, one shard at
    /// a time (each shard is read-locked only while it is visited). Used to
    /// write snapshots.
    pub fn for_each_live(&self, mut f: impl FnMut(&Bytes, &Bytes, Option<u64>)) {
        let now = now_ms();
        for shard in self.inner.shards.iter() {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            for (key, entry) in shard.entries.iter().filter(|(_, e)| e.is_live(now)) {
                f(key, &entry.value, entry.expires_at);
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
        let big = Bytes::from(vec![7u8; 8192]);
        store.put(b"k", &big[..4]);
        let got = store.get(b"k").unwrap();
        assert_eq!(&got[..], &[7u8; 4]);
        assert_ne!(got.as_ptr(), big.as_ptr());
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
        store.for_each_live(|k, v, at| seen.push((k.clone(), v.clone(), at.is_some())));
        seen.sort();
        assert_eq!(seen.len(), 2);
        assert_eq!(&seen[0].0[..], b"a");
        assert!(!seen[0].2);
        assert_eq!(&seen[1].0[..], b"c");
        assert!(seen[1].2);
    }
}
