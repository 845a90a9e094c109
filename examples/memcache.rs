//! Talks to a real memcached through wirestack's client stack (timeout,
//! retry, reconnect, pipeline) and the meta-protocol codec.
//!
//! ```text
//! memcached -l 127.0.0.1 -p 11211 -U 0 &      # as root, add -u nobody
//! cargo run --example memcache -- --addr 127.0.0.1:11211
//! ```

use std::time::Duration;
use wirestack::builder::ClientBuilder;
use wirestack::memcache::{CasOutcome, MemcacheClient, MemcacheCodec, Request};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = parse_addr()?;

    let stack = ClientBuilder::new(MemcacheCodec::new())
        .timeout(Duration::from_secs(2))
        .connect::<Request>(addr.clone())
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let cache = MemcacheClient::new(stack);

    cache.noop().await?;
    println!("mn → MN");

    // A value with a TTL and client flags; any bytes as key and value.
    cache
        .set_with(
            "wirestack:greeting",
            "hello from wirestack",
            Some(Duration::from_secs(30)),
            42,
        )
        .await?;
    let item = cache.get_item("wirestack:greeting").await?.ok_or("just set")?;
    println!(
        "mg wirestack:greeting → {:?} (flags {}, cas {})",
        String::from_utf8_lossy(&item.value),
        item.flags,
        item.cas
    );
    cache.set("a key with spaces", &b"\x00binary\r\n"[..]).await?;
    println!(
        "mg 'a key with spaces' (sent base64) → {:?}",
        cache.get("a key with spaces").await?
    );

    // Compare-and-swap: only over the version read.
    let outcome = cache
        .cas("wirestack:greeting", "updated", item.cas, None, 42)
        .await?;
    println!("ms C{} → {outcome:?}", item.cas);
    let again = cache
        .cas("wirestack:greeting", "stale", item.cas, None, 42)
        .await?;
    assert_eq!(again, CasOutcome::Conflict);
    println!("ms C{} again → {again:?}", item.cas);

    // Counters through ma.
    cache.set("wirestack:counter", "0").await?;
    let n = cache.incr("wirestack:counter", 5).await?;
    println!("ma wirestack:counter D5 → {n:?}");

    // Many commands from many tasks share one pipelined connection.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.set(format!("wirestack:task:{i}"), i.to_string()).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let keys: Vec<String> = (0..8).map(|i| format!("wirestack:task:{i}")).collect();
    let values = cache.get_many(&keys).await?;
    println!(
        "8 sets from 8 tasks, one get_many → {} values",
        values.iter().flatten().count()
    );

    cache
        .touch("wirestack:counter", Some(Duration::from_secs(60)))
        .await?;
    for key in keys.iter().map(String::as_str).chain([
        "wirestack:greeting",
        "wirestack:counter",
        "a key with spaces",
    ]) {
        cache.delete(key).await?;
    }
    println!("cleaned up");
    Ok(())
}

fn parse_addr() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok("127.0.0.1:11211".into()),
        (Some("--addr"), Some(addr)) => Ok(addr),
        _ => Err("usage: memcache [--addr HOST:PORT]".into()),
    }
}
