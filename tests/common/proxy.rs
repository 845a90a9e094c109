//! A delaying TCP proxy on 127.0.0.1, for the balancer's experiment: it
//! forwards bytes both ways, holds the server's answers for a set delay
//! (a delay line: each chunk leaves `delay` after it arrived, so the delay
//! adds latency without limiting throughput), and can stall — stop
//! forwarding, the connection kept open, as a SIGSTOPped server does.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What every connection of a proxy reads: the delay and the stall.
#[derive(Debug, Default)]
struct Knobs {
    /// Added to each answer, in microseconds.
    delay_us: AtomicU64,
    stalled: AtomicBool,
}

/// A proxy in front of one server; stopped (with its connections) when
/// dropped.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    knobs: Arc<Knobs>,
    accept: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// A proxy on 127.0.0.1 in front of `target`, forwarding at once.
    pub async fn start(target: SocketAddr) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let knobs = Arc::new(Knobs::default());
        let accept = tokio::spawn({
            let knobs = knobs.clone();
            async move {
                let mut connections = JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    connections.spawn(forward(client, server, knobs.clone()));
                }
            }
        });
        DelayProxy { addr, knobs, accept }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds every answer for `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.knobs
            .delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Stops (or resumes) forwarding, both ways; connections stay open.
    pub fn stall(&self, stalled: bool) {
        self.knobs.stalled.store(stalled, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Waits while the proxy is stalled.
async fn while_stalled(knobs: &Knobs) {
    while knobs.stalled.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Forwards both ways until either side closes.
async fn forward(client: TcpStream, server: TcpStream, knobs: Arc<Knobs>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = {
        let knobs = knobs.clone();
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                while_stalled(&knobs).await;
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    // The delay line: the reader stamps each chunk, the writer sends it
    // when its time comes.
    let (line, mut chunks) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let answers_in = {
        let knobs = knobs.clone();
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let due = Instant::now() + Duration::from_micros(knobs.delay_us.load(Ordering::Relaxed));
                if line.send((due, buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    };
    let answers_out = async move {
        while let Some((due, chunk)) = chunks.recv().await {
            tokio::time::sleep_until(due).await;
            while_stalled(&knobs).await;
            if client_write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = async { tokio::join!(answers_in, answers_out); } => {}
    }
}
