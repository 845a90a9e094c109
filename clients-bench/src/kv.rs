//! `MODE=kv`: wirestack's `KvClient` with its default stack against the
//! same client over the bare pipeline, on one `kv serve` of our own (the
//! `kv` binary next to this one, or `KV_BIN`; in memory, no data dir), the
//! same four loads as the Redis comparison (GETs of 64-byte values):
//!
//! * `kv`: `KvClient::connect` — deadline, retry, reconnect and the session
//!   layer over the tagged multiplexer (KV 2.0, with `HELLO`), keepalive on;
//! * `kv bare`: `KvClient::new(Pipeline::new(..))` — the in-order pipeline
//!   alone, KV 1.1, no layer over it.
//!
//! What the full stack costs over the bare pipeline, on the reference
//! protocol, beside what it costs on Redis in the default mode.

use super::{key, Gets, Load, Sample, KEYS};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use wirestack::kv::{ClientCodec, KvClient, Request, Response};
use wirestack::pipeline::Pipeline;

/// The two clients compared.
#[derive(Clone)]
enum Client {
    Full(KvClient),
    Bare(KvClient<Pipeline<Request, Response>>),
}

impl Gets for Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Full(_) => "kv",
            Client::Bare(_) => "kv bare",
        }
    }

    async fn get(&self, _task: usize, key: &str) {
        let key = Bytes::copy_from_slice(key.as_bytes());
        let value = match self {
            Client::Full(client) => client.get(key).await.expect("GET"),
            Client::Bare(client) => client.get(key).await.expect("GET"),
        };
        assert_eq!(value.map(|v| v.len()), Some(64));
    }

    async fn get_batch(&self, keys: &[String]) {
        let keys: Vec<Bytes> = keys
            .iter()
            .map(|key| Bytes::copy_from_slice(key.as_bytes()))
            .collect();
        let values = match self {
            Client::Full(client) => client.get_many(keys).await.expect("batch"),
            Client::Bare(client) => client.get_many(keys).await.expect("batch"),
        };
        assert_eq!(values.iter().flatten().count(), values.len());
    }
}

/// [`super::measure`], for [`super::run_flavours`].
async fn measured(client: Client, load: Load, time: Duration) -> Option<Sample> {
    Some(super::measure(&client, load, time).await)
}

/// The `kv` binary: `KV_BIN`, or the one built next to this program.
fn kv_binary() -> String {
    std::env::var("KV_BIN").unwrap_or_else(|_| {
        let exe = std::env::current_exe().expect("this program's path");
        exe.with_file_name("kv").to_string_lossy().into_owned()
    })
}

/// Runs the comparison and prints its table.
pub(crate) fn main(reps: usize, seconds: f64) {
    let time = Duration::from_secs_f64(seconds);
    let (addr, _server) = match std::env::var("KV") {
        Ok(addr) => (addr.parse().expect("KV=IP:PORT"), None),
        Err(_) => {
            let (addr, server) = super::start_server(&kv_binary(), |port| {
                ["serve", "--listen", &format!("127.0.0.1:{port}")]
                    .map(String::from)
                    .to_vec()
            });
            (addr, Some(server))
        }
    };
    let loads = super::picked_loads();
    let runs = super::run_flavours(&loads, reps, time, || clients(addr), measured);
    println!(
        "kv serve on {addr}; GETs of 64-byte values; median of {reps} interleaved repetitions of {seconds} s"
    );
    super::report(&loads, &runs);
}

/// The clients compared (`CLIENTS` picks some), connected to `addr` on the
/// current runtime; the keys preloaded.
async fn clients(addr: SocketAddr) -> Vec<Client> {
    let full = KvClient::connect(addr).await.expect("kv connects");
    full.put_many((0..KEYS).map(|i| (key(i), Bytes::from_static(&[b'x'; 64]))))
        .await
        .expect("preload");
    let transport = wirestack::transport::connect(addr, ClientCodec::new())
        .await
        .expect("kv bare connects");
    let bare = KvClient::new(Pipeline::new(transport));
    [Client::Full(full), Client::Bare(bare)]
        .into_iter()
        .filter(|client| super::picked("CLIENTS", client.name()))
        .collect()
}
