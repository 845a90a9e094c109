//! The `kv` command line: every subcommand and flag, mapped onto the
//! library's configuration types.

use crate::bench::{Protocol, Workload};
use crate::metrics::MetricsAddr;
use crate::secure::{ClientSecurityArgs, ServeSecurityArgs};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use wirestack::kv::wal::{FsyncPolicy, WalConfig};
use wirestack::kv::{Limits, SessionConfig};
use wirestack::server::ServeConfig;

#[derive(Debug, Parser)]
#[command(name = "kv", version, about = "A key-value store on the wirestack framework")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the KV protocol until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Check that a server answers.
    Ping(ClientArgs),
    /// Print a key's value to stdout (exit 1 if it is not found).
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Expire the key after this many milliseconds.
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Drive a load and report throughput and latency percentiles.
    Bench(BenchArgs),
    /// Check a data directory and cut its log at the first bad record, after
    /// copying what it changes aside (exit 1 with --dry-run if damaged).
    Repair(RepairArgs),
    /// Make a CA, a server certificate and a client certificate as PEM files (mode 0600), for --tls-cert, --tls-ca and --tls-client-cert.
    Cert(crate::cert::CertArgs),
    /// Delete a key (exit 1 if it is not found).
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub(crate) listen: SocketAddr,
    /// Directory for the write-ahead log (without it, data lives in memory only).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// When the log is fsynced: always (before answering), everysec or never.
    #[arg(long, value_name = "POLICY", default_value_t = FsyncPolicy::default())]
    pub(crate) fsync: FsyncPolicy,
    /// Compact the log only once it is over this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = WalConfig::default().compact_min_bytes)]
    pub(crate) compact_min_bytes: u64,
    /// ... and over this many times the size of the last snapshot.
    #[arg(long, value_name = "RATIO", default_value_t = WalConfig::default().compact_ratio)]
    pub(crate) compact_ratio: f64,
    /// Largest key accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_key_bytes)]
    pub(crate) max_key_bytes: u32,
    /// Largest value accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_value_bytes)]
    pub(crate) max_value_bytes: u32,
    /// Serve Prometheus metrics on this address (IP:PORT, or a bare PORT on 127.0.0.1); off by default.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<MetricsAddr>,
    #[command(flatten)]
    pub(crate) serve_limits: ServeLimitArgs,
    #[command(flatten)]
    pub(crate) sessions: SessionArgs,
    #[command(flatten)]
    pub(crate) security: ServeSecurityArgs,
}

/// The session table of `kv serve`, mapped onto `SessionConfig`.
#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    /// How far past a session's acked_below a write's seq may run: the answers kept per session (0: no sessions).
    #[arg(long, value_name = "N", default_value_t = SessionConfig::default().window)]
    pub(crate) session_window: u32,
    /// Most sessions remembered; past it the least recently used is forgotten.
    #[arg(long, value_name = "N", default_value_t = SessionConfig::default().max_sessions)]
    pub(crate) max_sessions: usize,
    /// Forget a session with no write for this many seconds (default one hour).
    #[arg(long, value_name = "SECS", default_value_t = SessionConfig::default().lifetime.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) session_lifetime_secs: u64,
}

impl SessionArgs {
    pub(crate) fn config(&self) -> SessionConfig {
        SessionConfig {
            window: self.session_window,
            max_sessions: self.max_sessions,
            lifetime: Duration::from_secs(self.session_lifetime_secs),
        }
    }
}

/// The connection limits of `kv serve`, mapped onto `ServeConfig`.
#[derive(Debug, Args)]
pub(crate) struct ServeLimitArgs {
    /// Most connections served at once; past it a new connection is answered BUSY and closed.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_connections)]
    pub(crate) max_connections: usize,
    /// Most requests of one connection in flight; past it the connection stops reading.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_in_flight_per_connection)]
    pub(crate) max_in_flight: usize,
    /// Close a connection idle this long, in milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().idle_timeout))]
    pub(crate) idle_timeout_ms: u64,
    /// Close a connection whose started frame does not finish within this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().read_timeout))]
    pub(crate) read_timeout_ms: u64,
    /// Most connections served at once from one IP address (0: no limit but --max-connections).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_connections_per_address: usize,
    /// Close a connection whose TLS handshake does not finish within this many milliseconds (0: only --read-timeout-ms bounds it).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().handshake_timeout))]
    pub(crate) handshake_timeout_ms: u64,
    /// Close a connection whose peer reads none of its responses for this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().write_timeout))]
    pub(crate) write_timeout_ms: u64,
    /// Budget of request bytes held by all connections: each may hold budget/(2 x max connections), past it waits for a common pool.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().max_buffered_request_bytes)]
    pub(crate) max_buffered_bytes: usize,
    /// Most connections waiting at once for the common pool of the buffer budget; past it a request that would wait is answered BUSY at once (0: none waits).
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_pool_waiters)]
    pub(crate) max_pool_waiters: usize,
    /// Largest request a connection may send before it has authenticated (with a token); a larger one is answered UNAUTHENTICATED and closes the connection. Raised to fit the token's AUTH.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().max_unadmitted_frame_bytes)]
    pub(crate) max_unauthenticated_request_bytes: usize,
    /// On SIGINT/SIGTERM, close the connections still open after this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().shutdown_timeout))]
    pub(crate) shutdown_timeout_ms: u64,
}

impl ServeLimitArgs {
    pub(crate) fn config(&self) -> ServeConfig {
        let timeout = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        ServeConfig {
            max_connections: self.max_connections,
            max_in_flight_per_connection: self.max_in_flight,
            idle_timeout: timeout(self.idle_timeout_ms),
            read_timeout: timeout(self.read_timeout_ms),
            handshake_timeout: timeout(self.handshake_timeout_ms),
            max_connections_per_address: (self.max_connections_per_address > 0)
                .then_some(self.max_connections_per_address),
            write_timeout: timeout(self.write_timeout_ms),
            max_buffered_request_bytes: self.max_buffered_bytes,
            max_pool_waiters: self.max_pool_waiters,
            max_unadmitted_frame_bytes: self.max_unauthenticated_request_bytes,
            shutdown_timeout: timeout(self.shutdown_timeout_ms),
        }
    }
}

/// A timeout as a flag value: milliseconds, 0 for none.
fn millis(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Address of the server, or of several separated by commas (A,B,C): keys are spread over them by each server's name — its address as written, or NAME in NAME=HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub(crate) addr: String,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) ops: u64,
    /// Stop after this many seconds, whatever the count.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub(crate) duration: f64,
    /// Requests in flight per connection (1 = sequential).
    #[arg(long, value_name = "D", default_value_t = 1)]
    pub(crate) pipeline: usize,
    /// Independent calls in flight per connection, each timed alone (instead of --pipeline's batches, timed by their last answer): shows head-of-line blocking.
    #[arg(long, value_name = "N")]
    pub(crate) depth: Option<usize>,
    /// Connections, each driven by its own task.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub(crate) connections: usize,
    /// Run the load on T threads, each a runtime of one worker that opens and drives its share of the connections (thread per core: a connection's calls and its connections' tasks stay on one thread); 0: on one multi-threaded runtime, a worker per core.
    #[arg(long, value_name = "T", default_value_t = 0)]
    pub(crate) threads: usize,
    /// Bytes per value written.
    #[arg(long, value_name = "B", default_value_t = 64)]
    pub(crate) value_size: usize,
    /// Bytes per value of the PUTs of a mixed load, written to keys of their own (put:N), so that GETs keep reading --value-size values.
    #[arg(long, value_name = "B")]
    pub(crate) put_value_size: Option<usize>,
    /// Number of distinct keys.
    #[arg(long, value_name = "K", default_value_t = 100_000)]
    pub(crate) key_space: u64,
    /// put, get, fill (every key once) or mixed:R (R = share of GETs).
    #[arg(long, default_value = "put")]
    pub(crate) workload: Workload,
    /// kv (the KV protocol: 2.0 with answers in any order where the server speaks it, else 1.1), kv1 (KV 1.1, answers in order), resp (SET/GET in RESP2, to redis-server) or memcache (ms/mg in memcached's meta protocol, to memcached).
    #[arg(long, default_value = "kv")]
    pub(crate) protocol: Protocol,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the latency histogram to FILE as HdrHistogram's percentile distribution (milliseconds).
    #[arg(long, value_name = "FILE")]
    pub(crate) hdr_out: Option<PathBuf>,
    /// Also draw latency by percentile and throughput and latency over time into FILE (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) security: ClientSecurityArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// The data directory of a server that is not running.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// Only report what a repair would do; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Address of the server, or of several separated by commas (A,B,C): each key lives on one of them, chosen by the server's name — its address as written (localhost:P and 127.0.0.1:P place keys differently), or NAME in NAME=HOST:PORT, which survives an address change. Every client of a cluster must spell the list alike.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub(crate) addr: String,
    #[command(flatten)]
    pub(crate) security: ClientSecurityArgs,
}
