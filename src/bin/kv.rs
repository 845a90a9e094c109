//! `kv`: serve the KV protocol, or speak it from the command line.
//!
//! ```text
//! kv serve --listen 127.0.0.1:7878 --data-dir ./data
//! kv put KEY VALUE [--ttl MS]     kv get KEY     kv del KEY     kv ping
//! ```
//!
//! Client commands exit 0 on success, 1 when the key was not found and 2 on
//! any error, with a one-line message on stderr. The binary is thin: every
//! behaviour lives in the library.

use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use wirestack::builder::ClientBuilder;
use wirestack::kv::bench::{self, BenchConfig, Workload};
use wirestack::kv::wal::{FsyncPolicy, WalConfig};
use wirestack::kv::{self, ClientCodec, KvClient, Limits, ServerConfig, Store};
use wirestack::retry::RetryConfig;
use wirestack::server::ServeConfig;

#[derive(Debug, Parser)]
#[command(name = "kv", version, about = "A key-value store on the wirestack framework")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Delete a key (exit 1 if it is not found).
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Directory for the write-ahead log (without it, data lives in memory only).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When the log is fsynced: always (before answering), everysec or never.
    #[arg(long, value_name = "POLICY", default_value_t = FsyncPolicy::default())]
    fsync: FsyncPolicy,
    /// Compact the log only once it is over this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = WalConfig::default().compact_min_bytes)]
    compact_min_bytes: u64,
    /// ... and over this many times the size of the last snapshot.
    #[arg(long, value_name = "RATIO", default_value_t = WalConfig::default().compact_ratio)]
    compact_ratio: f64,
    /// Largest key accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_key_bytes)]
    max_key_bytes: u32,
    /// Largest value accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_value_bytes)]
    max_value_bytes: u32,
    #[command(flatten)]
    serve_limits: ServeLimitArgs,
}

/// The connection limits of `kv serve`, mapped onto `ServeConfig`.
#[derive(Debug, Args)]
struct ServeLimitArgs {
    /// Most connections served at once; past it a new connection is answered BUSY and closed.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_connections)]
    max_connections: usize,
    /// Most requests of one connection in flight; past it the connection stops reading.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_in_flight_per_connection)]
    max_in_flight: usize,
    /// Close a connection idle this long, in milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().idle_timeout))]
    idle_timeout_ms: u64,
    /// Close a connection whose started frame does not finish within this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().read_timeout))]
    read_timeout_ms: u64,
    /// Close a connection whose peer reads none of its responses for this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(ServeConfig::default().write_timeout))]
    write_timeout_ms: u64,
    /// Budget of request bytes buffered by all connections; past it requests are answered BUSY.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().max_buffered_request_bytes)]
    max_buffered_bytes: usize,
}

impl ServeLimitArgs {
    fn config(&self) -> ServeConfig {
        let timeout = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        ServeConfig {
            max_connections: self.max_connections,
            max_in_flight_per_connection: self.max_in_flight,
            idle_timeout: timeout(self.idle_timeout_ms),
            read_timeout: timeout(self.read_timeout_ms),
            write_timeout: timeout(self.write_timeout_ms),
            max_buffered_request_bytes: self.max_buffered_bytes,
        }
    }
}

/// A timeout as a flag value: milliseconds, 0 for none.
fn millis(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Address of the server.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 100_000)]
    ops: u64,
    /// Stop after this many seconds, whatever the count.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    duration: f64,
    /// Requests in flight per connection (1 = sequential).
    #[arg(long, value_name = "D", default_value_t = 1)]
    pipeline: usize,
    /// Connections, each driven by its own task.
    #[arg(long, value_name = "C", default_value_t = 1)]
    connections: usize,
    /// Bytes per value written.
    #[arg(long, value_name = "B", default_value_t = 64)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, value_name = "K", default_value_t = 100_000)]
    key_space: u64,
    /// put, get, fill (every key once) or mixed:R (R = share of GETs).
    #[arg(long, default_value = "put")]
    workload: Workload,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Address of the server.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
}

/// How a client command ended, as an exit status.
enum Outcome {
    Done,
    NotFound,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KV_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the runtime: {error}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("kv: {message}");
    ExitCode::from(2)
}

async fn run(command: Command) -> Result<Outcome, String> {
    match command {
        Command::Serve(args) => serve(args).await.map(|()| Outcome::Done),
        Command::Ping(client) => {
            connect(&client).await?.ping().await.map_err(|e| e.to_string())?;
            println!("PONG");
            Ok(Outcome::Done)
        }
        Command::Get { key, client } => match connect(&client).await?.get(key).await {
            Ok(Some(value)) => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(&value)
                    .and_then(|()| stdout.write_all(b"\n"))
                    .and_then(|()| stdout.flush())
                    .map_err(|e| format!("cannot write to stdout: {e}"))?;
                Ok(Outcome::Done)
            }
            Ok(None) => Ok(Outcome::NotFound),
            Err(error) => Err(error.to_string()),
        },
        Command::Put {
            key,
            value,
            ttl,
            client,
        } => {
            let client = connect(&client).await?;
            let result = match ttl {
                Some(ms) => client.put_with_ttl(key, value, Duration::from_millis(ms)).await,
                None => client.put(key, value).await,
            };
            result.map(|()| Outcome::Done).map_err(|e| e.to_string())
        }
        Command::Bench(args) => run_bench(args).await.map(|()| Outcome::Done),
        Command::Del { key, client } => match connect(&client).await?.delete(key).await {
            Ok(true) => Ok(Outcome::Done),
            Ok(false) => Ok(Outcome::NotFound),
            Err(error) => Err(error.to_string()),
        },
    }
}

async fn run_bench(args: BenchArgs) -> Result<(), String> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let addr = tokio::net::lookup_host(&args.addr)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("cannot resolve {}", args.addr))?;
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err(format!(
            "--duration must be a positive number of seconds, got {}",
            args.duration
        ));
    }
    let config = BenchConfig {
        addr,
        ops: args.ops,
        duration: Duration::from_secs_f64(args.duration),
        pipeline: args.pipeline.max(1),
        connections: args.connections.max(1),
        value_size: args.value_size,
        key_space: args.key_space.max(1),
        workload: args.workload,
    };
    let total = match config.workload {
        Workload::Fill => config.key_space,
        _ => config.ops,
    };
    let progress = Arc::new(AtomicU64::new(0));
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ops {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (shown, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                shown.set_position(progress.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        bar
    });
    let report = bench::run(config, progress).await.map_err(|e| e.to_string())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// One command, one attempt: a person at a shell wants `BUSY` or a refused
/// connection reported now, not retried until the deadline.
async fn connect(args: &ClientArgs) -> Result<KvClient, String> {
    let no_retries = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    ClientBuilder::new(ClientCodec::new())
        .retry(no_retries)
        .connect_first(&args.addr)
        .await
        .map(KvClient::new)
        .map_err(|e| format!("cannot connect to {}: {e}", args.addr))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = ServerConfig {
        limits: Limits {
            max_key_bytes: args.max_key_bytes,
            max_value_bytes: args.max_value_bytes,
        },
        data_dir: args.data_dir.clone(),
        wal: WalConfig {
            fsync: args.fsync,
            compact_min_bytes: args.compact_min_bytes,
            compact_ratio: args.compact_ratio,
        },
        serve: args.serve_limits.config(),
        ..ServerConfig::default()
    };
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Recover before announcing: a damaged log ends the process before
    // anyone is told the server is there.
    let store = Store::new();
    let wal = kv::server::recover(&config, &store)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {local}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    let shutdown = shutdown_signal()?;
    kv::server::run_recovered(listener, store, wal, config, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Completes on the first SIGINT or SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: draining connections");
    })
}
