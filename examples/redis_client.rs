//! Talks to a real Redis server through wirestack's client stack (timeout,
//! retry, reconnect, pipeline) and the RESP2 codec.
//!
//! ```text
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo run --example redis_client -- --addr 127.0.0.1:6379
//! ```

use std::time::Duration;
use wirestack::builder::ClientBuilder;
use wirestack::resp::{RedisClient, RespCodec, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = parse_addr()?;

    let stack = ClientBuilder::new(RespCodec::new())
        .timeout(Duration::from_secs(2))
        .connect::<Value>(addr.clone())
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let redis = RedisClient::new(stack);

    redis.ping().await?;
    println!("PING → PONG");

    redis.set("wirestack:greeting", "hello from wirestack").await?;
    let value = redis.get("wirestack:greeting").await?;
    println!(
        "GET wirestack:greeting → {:?}",
        value.as_deref().map(String::from_utf8_lossy)
    );

    let expiring = redis
        .expire("wirestack:greeting", Duration::from_secs(30))
        .await?;
    println!("PEXPIRE wirestack:greeting 30000 → {expiring}");

    // Many commands from many tasks share one pipelined connection.
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let redis = redis.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    redis.set(format!("wirestack:{task}:{i}"), i.to_string()).await?;
                }
                Ok::<_, wirestack::resp::RedisError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let keys: Vec<String> = (0..8)
        .flat_map(|t| (0..100).map(move |i| format!("wirestack:{t}:{i}")))
        .collect();
    println!(
        "SET × {} from 8 tasks; DEL → {}",
        keys.len(),
        redis.del(&keys).await?
    );
    println!(
        "DEL wirestack:greeting → {}",
        redis.del(["wirestack:greeting"]).await?
    );

    let stats = redis.service().reconnect_stats();
    println!(
        "connections made: {}, retries: {}",
        stats.connects,
        redis.service().retry_stats().retries
    );
    Ok(())
}

/// `--addr HOST:PORT` (default 127.0.0.1:6379).
fn parse_addr() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:6379".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?,
            _ if arg.starts_with("--addr=") => addr = arg["--addr=".len()..].to_string(),
            "-h" | "--help" => {
                println!("usage: redis_client [--addr HOST:PORT]   (default 127.0.0.1:6379)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(addr)
}
