//! A tour of `KvClient`: ping, put, get, delete, a TTL expiring, and a
//! pipelined batch of 1,000 puts timed against 1,000 sequential ones.
//!
//! ```text
//! cargo run --release --example simple_client                       # embedded server
//! cargo run --release --example simple_client -- --addr 127.0.0.1:7878
//! ```

use std::time::{Duration, Instant};
use wirestack::kv::{KvClient, KvServer, KvServerConfig};

const BATCH: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, addr] if flag == "--addr" => Some(addr.clone()),
        _ => return Err("usage: simple_client [--addr HOST:PORT]".into()),
    };

    // With no address, run a server inside this process on a free port.
    let embedded = match addr {
        Some(_) => None,
        None => Some(KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?),
    };
    let addr = match (&addr, &embedded) {
        (Some(addr), _) => addr.clone(),
        (None, Some(server)) => server.local_addr().to_string(),
        (None, None) => unreachable!("an address or an embedded server"),
    };
    let origin = if embedded.is_some() {
        "embedded server"
    } else {
        "server"
    };
    println!("connecting to {origin} at {addr}");
    let client = KvClient::connect(&addr).await?;

    client.ping().await?;
    println!("ping            -> ok");

    client.put("language", "rust").await?;
    println!("put language    -> ok");

    let value = client.get("language").await?;
    println!("get language    -> {}", show(value.as_deref()));

    println!("delete language -> {}", client.delete("language").await?);
    println!(
        "get language    -> {}",
        show(client.get("language").await?.as_deref())
    );

    client
        .put_with_ttl("session", "token-123", Duration::from_millis(200))
        .await?;
    println!("put session (ttl 200 ms)");
    println!(
        "get session     -> {}",
        show(client.get("session").await?.as_deref())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "after 300 ms    -> {}",
        show(client.get("session").await?.as_deref())
    );

    let pairs =
        |prefix: &'static str| (0..BATCH).map(move |i| (format!("{prefix}:{i}"), format!("value {i}")));

    let started = Instant::now();
    for (key, value) in pairs("seq") {
        client.put(key, value).await?;
    }
    let sequential = started.elapsed();

    let started = Instant::now();
    client.put_many(pairs("batch")).await?;
    let pipelined = started.elapsed();

    let check = client.get_many(["batch:0", "batch:999"]).await?;
    assert!(check.iter().all(Option::is_some), "the batch was written");

    println!(
        "{BATCH} sequential puts -> {:>9.2?} ({:>9.0} ops/s)",
        sequential,
        rate(sequential)
    );
    println!(
        "{BATCH} pipelined puts  -> {:>9.2?} ({:>9.0} ops/s)",
        pipelined,
        rate(pipelined)
    );
    println!(
        "pipelined batch is {:.1}x faster than sequential",
        sequential.as_secs_f64() / pipelined.as_secs_f64()
    );

    if let Some(server) = embedded {
        server.shutdown().await.unwrap();
        println!("embedded server shut down");
    }
    Ok(())
}

fn show(value: Option<&[u8]>) -> String {
    match value {
        Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        None => "(not found)".to_owned(),
    }
}

fn rate(elapsed: Duration) -> f64 {
    BATCH as f64 / elapsed.as_secs_f64()
}
