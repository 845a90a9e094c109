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

mod args;
mod bench;

use args::{BenchArgs, Cli, ClientArgs, Command, ServeArgs};
use bench::{BenchConfig, Workload};
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tower::Service;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{ClientCodec, KvClient, KvServer, KvServerConfig, Limits, Request, Response, WalConfig};
use wirestack::BoxError;

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
        protocol: args.protocol,
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
async fn connect(
    args: &ClientArgs,
) -> Result<KvClient<impl Service<Request, Response = Response, Error = BoxError> + Clone>, String> {
    ClientBuilder::new(ClientCodec::new())
        .no_retry()
        .connect_first(&args.addr)
        .await
        .map(KvClient::new)
        .map_err(|e| format!("cannot connect to {}: {e}", args.addr))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = KvServerConfig {
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
        ..KvServerConfig::default()
    };
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let shutdown = shutdown_signal()?;
    // `start` recovers the log before it binds: a damaged log ends the
    // process before anyone is told the server is there.
    let server = KvServer::start(args.listen, config)
        .await
        .map_err(|e| format!("cannot serve on {}: {e}", args.listen))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.local_addr())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    shutdown.await;
    server.shutdown().await.map_err(|e| e.to_string())
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
