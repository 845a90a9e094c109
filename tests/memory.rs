//! What a peer can make an in-process server hold, read from the process's
//! resident memory (`VmRSS` in `/proc/self/status`).
//!
//! The tests of this file take turns (one lock) so that one's traffic does
//! not show in the other's memory.

mod common;

use bytes::Bytes;
use common::read_response;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig, Limits, Status};
use wirestack::pipeline::Pipeline;
use wirestack::server::ServeConfig;

const SOON: Duration = Duration::from_secs(20);
const MIB: u64 = 1024 * 1024;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Samples resident memory until dropped; `peak()` is the highest seen.
struct PeakMemory {
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<u64>,
}

impl PeakMemory {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = tokio::spawn(async move {
            let mut peak = resident_bytes();
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(resident_bytes());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak.max(resident_bytes())
        });
        PeakMemory { stop, sampler }
    }

    async fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.await.expect("the sampler")
    }
}

fn header(command: u8, key_len: u32, value_len: u32) -> Vec<u8> {
    let mut header = vec![command];
    header.extend_from_slice(&key_len.to_le_bytes());
    header.extend_from_slice(&value_len.to_le_bytes());
    header
}

/// Sends a 4 GiB PUT header, expects `TOO_LARGE`, then the close.
async fn four_gib_put(addr: SocketAddr) {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket.write_all(&header(0x03, 1, u32::MAX)).await.unwrap();
    assert_eq!(read_response(&mut socket).await.0, Status::TooLarge as u8);
    let mut byte = [0u8; 1];
    let read = timeout(SOON, socket.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_headers_are_too_large_and_cost_no_memory() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    // Warm up the runtime, the allocator and the listener.
    for _ in 0..10 {
        four_gib_put(addr).await;
    }

    let before = resident_bytes();
    let peak = PeakMemory::start();
    for _round in 0..10 {
        let mut peers = JoinSet::new();
        for _ in 0..10 {
            peers.spawn(four_gib_put(addr));
        }
        while let Some(peer) = peers.join_next().await {
            peer.expect("a 4 GiB peer");
        }
    }
    let growth = peak.peak().await.saturating_sub(before);
    println!("100 connections claiming 4 GiB: resident memory grew by {growth} bytes");
    assert!(
        growth < 16 * MIB,
        "100 connections claiming 4 GiB grew resident memory by {growth} bytes"
    );
    KvClient::connect(addr).await.unwrap().ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_buffer_budget_requests_are_shed_busy_and_memory_stays_bounded() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let budget = MIB as usize;
    let server = KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            limits: Limits {
                max_key_bytes: 64,
                max_value_bytes: 256 * 1024,
            },
            serve: ServeConfig {
                max_buffered_request_bytes: budget,
                max_connections: 64,
                ..ServeConfig::default()
            },
            ..KvServerConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    // A bare pipelined connection (no retry), to see each BUSY as it comes.
    let transport = wirestack::transport::connect(addr, ClientCodec::new())
        .await
        .unwrap();
    let probe = KvClient::new(Pipeline::new(transport));
    probe.ping().await.unwrap();

    let before = resident_bytes();
    let peak = PeakMemory::start();

    // Eight peers hold 200 KiB of a 256 KiB PUT each: 1.6 MiB buffered.
    let mut holders = Vec::new();
    for _ in 0..8 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(&header(0x03, 1, 256 * 1024)).await.unwrap();
        socket.write_all(b"h").await.unwrap();
        socket.write_all(&vec![7u8; 200 * 1024]).await.unwrap();
        holders.push(socket);
    }
    let deadline = Instant::now() + SOON;
    loop {
        match probe.ping().await {
            Err(error) if error.is_busy() => break,
            Ok(()) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("the server never shed load: {other:?}"),
        }
    }

    // 32 peers pipeline 32 PUTs of 64 KiB each (64 MiB in all, distinct
    // keys): every one is answered BUSY and none is stored.
    let value = Bytes::from(vec![9u8; 64 * 1024]);
    let mut flood = JoinSet::new();
    for peer in 0..32u32 {
        let value = value.clone();
        flood.spawn(async move {
            let socket = TcpStream::connect(addr).await.unwrap();
            let (mut reader, mut writer) = socket.into_split();
            let writing = tokio::spawn(async move {
                for i in 0..32u32 {
                    let key = format!("flood-{peer}-{i}");
                    let mut head = header(0x03, key.len() as u32, value.len() as u32);
                    head.extend_from_slice(key.as_bytes());
                    writer.write_all(&head).await.unwrap();
                    writer.write_all(&value).await.unwrap();
                }
                writer
            });
            for _ in 0..32 {
                assert_eq!(read_response(&mut reader).await.0, Status::Busy as u8);
            }
            drop(writing.await.unwrap());
        });
    }
    timeout(SOON, async {
        while let Some(peer) = flood.join_next().await {
            peer.expect("a flooding peer");
        }
    })
    .await
    .expect("the flood is answered in time");
    let growth = peak.peak().await.saturating_sub(before);
    println!("64 MiB of shed requests: resident memory grew by {growth} bytes");
    assert!(
        server.store().get(b"flood-0-0").is_none(),
        "a shed PUT was applied"
    );
    assert!(
        growth < 16 * MIB,
        "64 MiB of shed requests grew resident memory by {growth} bytes"
    );

    // Once the holders leave, the budget frees and work is served again.
    drop(holders);
    let deadline = Instant::now() + SOON;
    loop {
        match probe.put("after", "flood").await {
            Ok(()) => break,
            Err(error) if error.is_busy() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(error) => panic!("the budget never freed: {error}"),
        }
    }
    server.shutdown().await.unwrap();
}
