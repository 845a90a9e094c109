//! `kv serve --metrics-listen ADDR`: the Prometheus text endpoint.
//!
//! The recorder is `metrics-exporter-prometheus`'s, installed before the
//! server is built so that every layer registers with it. The endpoint is
//! a minimal HTTP/1.1 responder: one `GET` per connection, answered with
//! the text exposition format and closed.
//!
//! Every connection is accepted at once, so that idle sockets cannot keep
//! a scraper in the listen queue: a request head must arrive within
//! [`READ_WINDOW`] and fit in [`MAX_HEAD`] (a connection that sends none is
//! shed then, having held no scrape slot), and the answer be read within
//! [`WRITE_TIMEOUT`]. A request takes one of [`MAX_SCRAPES`] slots only once
//! its head is in; over that it is answered `503` at once. At most
//! [`MAX_OPEN`] connections are open at a time; one over that is closed as
//! soon as it is accepted. Histograms are exported with [`BUCKETS`]
//! (seconds).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How long a scraper may take to send its request; a connection that has
/// sent none by then is shed.
const READ_WINDOW: Duration = Duration::from_secs(5);
/// How long a scraper may take to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Scrapes rendered and written at once.
const MAX_SCRAPES: usize = 16;
/// Connections open at once, idle ones waiting for their request included.
const MAX_OPEN: usize = 1024;
/// How often histograms are compacted between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);
/// Histogram bucket bounds, in seconds: 50 us to 10 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// `--metrics-listen`'s value: `IP:PORT`, or a bare port on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetricsAddr(pub(crate) SocketAddr);

impl std::str::FromStr for MetricsAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(port) = text.parse::<u16>() {
            return Ok(MetricsAddr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        text.parse()
            .map(MetricsAddr)
            .map_err(|_| format!("{text:?} is neither IP:PORT nor a port"))
    }
}

/// Binds the endpoint and installs the recorder; [`serve`] then answers
/// scrapes. Call before the server is built.
pub(crate) async fn start(addr: MetricsAddr) -> Result<(TcpListener, PrometheusHandle), String> {
    let listener = TcpListener::bind(addr.0)
        .await
        .map_err(|e| format!("cannot serve metrics on {}: {e}", addr.0))?;
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    // Describing also enables: the server built after this measures what
    // costs a clock read or a store and log read (latencies, the KV figures).
    wirestack::metrics::describe();
    wirestack::kv::metrics::describe_metrics();
    Ok((listener, handle))
}

/// Answers scrapes on `listener` for as long as the process runs.
pub(crate) async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    let scrapes = Arc::new(Semaphore::new(MAX_SCRAPES));
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    loop {
        // Accept first: a slot is taken only once a request is in.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(connection) = open.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: too many connections; closing one");
            continue;
        };
        let (handle, scrapes) = (handle.clone(), scrapes.clone());
        tokio::spawn(async move {
            let _connection = connection;
            if let Err(error) = answer(stream, &handle, &scrapes).await {
                tracing::debug!(%error, "metrics endpoint: a scrape failed");
            }
        });
    }
}

/// Reads one request head and answers it, then closes.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    scrapes: &Semaphore,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(READ_WINDOW, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(true)
    })
    .await;
    let complete = match read {
        Ok(complete) => complete?,
        // Idle past the window: shed without an answer.
        Err(_) => return Ok(()),
    };
    let slot = scrapes.try_acquire();
    let (status, content_type, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_string())
    } else if slot.is_err() {
        (
            "503 Service Unavailable",
            "text/plain",
            "too many scrapes at once\n".to_string(),
        )
    } else if head.starts_with(b"GET ") {
        ("200 OK", "text/plain; version=0.0.4", handle.render())
    } else {
        ("405 Method Not Allowed", "text/plain", "only GET\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A scraper that does not read holds its slot for a bounded time only.
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    });
    written.await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the scraper did not read the answer",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_is_loopback() {
        let addr: MetricsAddr = "9100".parse().unwrap();
        assert_eq!(addr.0, "127.0.0.1:9100".parse().unwrap());
        let addr: MetricsAddr = "0.0.0.0:9100".parse().unwrap();
        assert_eq!(addr.0, "0.0.0.0:9100".parse().unwrap());
        assert!("localhost:x".parse::<MetricsAddr>().is_err());
    }
}
