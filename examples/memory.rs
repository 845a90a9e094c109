//! Bytes per key of the in-memory store: fills a `Store` with N keys of
//! `key:NNNNNNNNNNNN` (16 bytes) and 64-byte values, then reports the growth
//! of this process's resident memory (VmRSS, Linux) per key.
//!
//! ```text
//! cargo run --release --example memory -- [KEYS]      # default 1000000
//! ```
//!
//! `scripts/compare-redis.sh` measures the same load through the network,
//! against `kv serve` and `redis-server` side by side.

use wirestack::kv::Store;

fn rss_kib() -> Result<u64, String> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS line in /proc/self/status".to_owned())
}

fn main() -> Result<(), String> {
    let keys: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("KEYS must be a number, got {arg:?}"))?,
        None => 1_000_000,
    };
    let value = [b'x'; 64];
    let before = rss_kib()?;
    let store = Store::new();
    for n in 0..keys {
        store.put(format!("key:{n:012}").as_bytes(), &value);
    }
    let after = rss_kib()?;
    let per_key = (after.saturating_sub(before) * 1024) as f64 / keys as f64;
    println!("keys: {keys}");
    println!("rss before: {before} KiB, after: {after} KiB");
    println!("bytes per key: {per_key:.1}");
    assert_eq!(store.len() as u64, keys);
    Ok(())
}
