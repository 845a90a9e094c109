//! The store's tests: reads, writes, TTLs and purging, the record format,
//! large records, compaction, and concurrent use.

use super::arena::{decode_record, encode_record, CHUNK, MIN_DEAD_TO_COMPACT, SMALL_RECORD};
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
