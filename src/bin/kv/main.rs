//! `kv`: serve the KV protocol, or speak it from the command line.
//!
//! ```text
//! kv serve --listen 127.0.0.1:7878 --data-dir ./data
//! kv put KEY VALUE [--ttl MS]     kv get KEY     kv del KEY     kv ping
//! kv repair --data-dir ./data [--dry-run]
//! kv cert --dir ./tls --name db.example --name 192.0.2.7
//! kv serve --listen 0.0.0.0:7878 --tls-cert server.pem --tls-key server.key --auth-token-file token
//! kv get KEY --addr db.example:7878 --tls-ca ca.pem --auth-token-file token
//! ```
//!
//! Client commands exit 0 on success, 1 when the key was not found and 2 on
//! any error, with a one-line message on stderr; `kv ping` exits 3 when the
//! server answers but its log refuses writes. The binary is thin: every
//! behaviour lives in the library.

mod args;
mod bench;
mod cert;
mod connect;
mod metrics;
mod secure;

use args::{BenchArgs, Cli, Command, RepairArgs, ServeArgs};
use bench::{BenchConfig, Workload};
use clap::Parser;
use connect::connect;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use wirestack::kv::wal::{RepairMode, Wal, WalConfig, WalError};
use wirestack::kv::{ConfigError, KvError, KvServer, KvServerConfig, Limits};

/// How a client command ended, as an exit status.
enum Outcome {
    Done,
    NotFound,
    /// The server answers, but its log refuses writes (`kv ping`).
    Degraded,
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
        Ok(Outcome::Degraded) => ExitCode::from(3),
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
            // Every server of a list answers, or the first that does not is the error.
            let mut outcome = Outcome::Done;
            connect::endpoints(&client.addr)?;
            for addr in connect::addresses(&client.addr) {
                if let Outcome::Degraded = ping(connect::connect_to(&client, &addr).await?).await? {
                    outcome = Outcome::Degraded;
                }
            }
            Ok(outcome)
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
            Err(error) => Err(explain(error)),
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
            result.map(|()| Outcome::Done).map_err(explain_write)
        }
        Command::Bench(args) => run_bench(args).await.map(|()| Outcome::Done),
        Command::Repair(args) => repair(args).await,
        Command::Cert(args) => {
            let said = cert::run(&args)?;
            print!("{said}");
            Ok(Outcome::Done)
        }
        Command::Del { key, client } => match connect(&client).await?.delete(key).await {
            Ok(true) => Ok(Outcome::Done),
            Ok(false) => Ok(Outcome::NotFound),
            Err(error) => Err(explain_write(error)),
        },
    }
}

/// `kv ping` of one server: `PONG`, then whether its log takes writes.
async fn ping(client: connect::Client) -> Result<Outcome, String> {
    client.ping().await.map_err(explain)?;
    println!("PONG");
    // A second probe: PING only echoes, HEALTH says whether writes
    // are taken. A server older than HEALTH answers BAD_REQUEST.
    match client.health().await {
        Err(error) if error.is_storage() => {
            eprintln!("kv: the server refuses writes: {error}");
            Ok(Outcome::Degraded)
        }
        Ok(()) | Err(KvError::Server { .. }) => Ok(Outcome::Done),
        Err(error) => Err(explain(error)),
    }
}

/// `kv repair`: prints the report; with `--dry-run`, damage found is exit 1.
async fn repair(args: RepairArgs) -> Result<Outcome, String> {
    let mode = if args.dry_run {
        RepairMode::Check
    } else {
        RepairMode::Fix
    };
    let dir = args.data_dir.clone();
    let report = tokio::task::spawn_blocking(move || Wal::repair(dir, mode))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot repair {}: {e}", args.data_dir.display()))?;
    print!("{report}");
    Ok(if args.dry_run && !report.is_clean() {
        Outcome::NotFound
    } else {
        Outcome::Done
    })
}

/// A client error as one line, with what to do about a missing token.
pub(crate) fn explain(error: KvError) -> String {
    match error {
        KvError::Unauthenticated { .. } => {
            format!("{error} (give --auth-token-file FILE or set KV_AUTH_TOKEN)")
        }
        error => {
            // A certificate refused after the handshake (an alert on the
            // first exchange) is not explained by the connector: say it here.
            let said = error.to_string();
            match wirestack::tls::explain(&error) {
                Some(sentence) if !said.contains(&sentence) => format!("{said}: {sentence}"),
                _ => said,
            }
        }
    }
}

/// A write's error as one line: one whose write may have taken effect
/// (timed out, or the connection failed after sending it) says so.
fn explain_write(error: KvError) -> String {
    let maybe_applied = matches!(
        error,
        KvError::TimedOut | KvError::Connection(_) | KvError::Protocol(_)
    );
    let message = explain(error);
    if maybe_applied {
        format!("{message}: the write may have been applied (read the key to know)")
    } else {
        message
    }
}

async fn run_bench(args: BenchArgs) -> Result<(), String> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let endpoints = connect::endpoints(&args.addr)?;
    if endpoints.len() > 1 {
        connect::warn_same_server(&endpoints).await;
    }
    let mut addrs = Vec::new();
    for endpoint in &endpoints {
        let addr = &endpoint.addr;
        let resolved = tokio::net::lookup_host(addr)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("cannot resolve {addr}"))?;
        addrs.push(resolved);
    }
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err(format!(
            "--duration must be a positive number of seconds, got {}",
            args.duration
        ));
    }
    let security = args.security.load(&endpoints[0].addr)?;
    let config = BenchConfig {
        addrs,
        names: endpoints.into_iter().map(|e| e.name).collect(),
        tls: security.tls,
        token: security.token,
        ops: args.ops,
        duration: Duration::from_secs_f64(args.duration),
        pipeline: args.pipeline.max(1),
        depth: args.depth.map(|depth| depth.max(1)),
        connections: args.connections.max(1),
        threads: args.threads,
        value_size: args.value_size,
        put_value_size: args.put_value_size,
        key_space: args.key_space.max(1),
        workload: args.workload,
        protocol: args.protocol,
        timeline: args.plot.is_some(),
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
    if let Some(path) = &args.hdr_out {
        std::fs::write(path, bench::percentile_distribution(&report.latency_us))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "kv bench --protocol {} {} --workload {} -c {} -P {}: {:.0} ops/s",
            args.protocol,
            args.addr,
            args.workload,
            args.connections.max(1),
            args.pipeline.max(1),
            report.ops_per_sec()
        );
        bench::draw(path, &title, &report, &report.intervals, report.interval)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Token, certificates and protected mode are settled before anything
    // else: a server that must not start does not touch its data.
    let security = args.security.load(args.listen)?;
    let mut warnings = security.warnings;
    if let Some(metrics) = &args.metrics_listen {
        if !metrics.0.ip().is_loopback() {
            warnings.push(format!(
                "--metrics-listen {}: the metrics endpoint has no token and no TLS, and any host that \
                 can reach it reads the server's figures; prefer a loopback address",
                metrics.0
            ));
        }
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let config = KvServerConfig {
        auth: security.token,
        allow_unauthenticated: security.allow_unauthenticated,
        auth_timeout: security.auth_timeout,
        tls: security.tls,
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
        sessions: args.sessions.config(),
        ..KvServerConfig::default()
    };
    if let Err(ConfigError::NotLoggable { limit, .. }) = config.validate() {
        return Err(format!(
            "--max-key-bytes ({}) plus --max-value-bytes ({}) is more than one log record holds \
             ({limit} bytes): lower them, or serve without --data-dir",
            args.max_key_bytes, args.max_value_bytes
        ));
    }
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut signals = Signals::new()?;
    // Before the server is built, so that every layer registers with it.
    let metrics = match args.metrics_listen {
        Some(addr) => Some(metrics::start(addr).await?),
        None => None,
    };
    // `start` recovers the log before it binds: a damaged log ends the
    // process before anyone is told the server is there.
    let server = KvServer::start(args.listen, config)
        .await
        .map_err(|e| start_failure(&args, &e))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
        if let Some((listener, handle)) = metrics {
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            writeln!(stdout, "metrics on {at}")
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
            tokio::spawn(metrics::serve(listener, handle));
        }
    }
    signals.next().await;
    tracing::info!("shutting down: draining connections (a second signal stops at once)");
    server
        .shutdown_or_force(signals.next())
        .await
        .map_err(|e| e.to_string())
}

/// Why `kv serve` could not start, with what to do about a damaged log.
fn start_failure(args: &ServeArgs, error: &std::io::Error) -> String {
    let wal = error.get_ref().and_then(|e| e.downcast_ref::<WalError>());
    match (wal, &args.data_dir) {
        (Some(WalError::Corrupt { .. } | WalError::Missing { .. }), Some(dir)) => format!(
            "cannot recover {}: {error}. Nothing was changed; `kv repair --data-dir {}` \
             cuts the log at the damage, keeping a copy of what it changes",
            dir.display(),
            dir.display()
        ),
        (Some(_), Some(dir)) => format!("cannot open {}: {error}", dir.display()),
        _ => format!("cannot serve on {}: {error}", args.listen),
    }
}

/// SIGINT and SIGTERM, as they arrive.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(|e| e.to_string())?,
            terminate: signal(SignalKind::terminate()).map_err(|e| e.to_string())?,
        })
    }

    /// Completes on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
