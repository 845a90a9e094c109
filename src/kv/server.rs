//! Running a KV server: the store, its log, its service and the framework's server.

use super::codec::{Limits, ServerCodec};
use super::service::KvService;
use super::store::Store;
use super::wal::{Wal, WalConfig};
use crate::server::{ServeConfig, Server};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything a KV server can be configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest key and value accepted.
    pub limits: Limits,
    /// How each connection is served.
    pub serve: ServeConfig,
    /// How often expired keys are purged from memory (default 100 ms).
    /// Expired keys are invisible at once either way.
    pub purge_interval: Duration,
    /// Where the write-ahead log lives; `None` (the default) keeps the data
    /// in memory only.
    pub data_dir: Option<PathBuf>,
    /// How the log is written and compacted, when there is a `data_dir`.
    pub wal: WalConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            serve: ServeConfig::default(),
            purge_interval: Duration::from_millis(100),
            data_dir: None,
            wal: WalConfig::default(),
        }
    }
}

/// Serves the KV protocol on `listener` from `store` until `shutdown`
/// completes, then drains every connection and returns.
///
/// With a [`ServerConfig::data_dir`], the log there is first recovered into
/// `store` (connections wait in the listen queue meanwhile; a damaged log is
/// an error of kind `InvalidData` whose inner error is a
/// [`WalError`](super::wal::WalError)), every write goes through it, and the
/// log is fsynced after the last connection is drained.
pub async fn run(
    listener: TcpListener,
    store: Store,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let wal = recover(&config, &store).await?;
    run_recovered(listener, store, wal, config, shutdown).await
}

/// Recovers the log of `config.data_dir` into `store`, if there is one, off
/// the runtime's threads. [`run`] does this first; call it yourself to know
/// that recovery succeeded before announcing the server (as `kv serve` does
/// before it prints `listening on`), then call [`run_recovered`].
pub async fn recover(config: &ServerConfig, store: &Store) -> io::Result<Option<Wal>> {
    let Some(dir) = config.data_dir.clone() else {
        return Ok(None);
    };
    let (wal_config, store) = (config.wal.clone(), store.clone());
    let opened = tokio::task::spawn_blocking(move || Wal::open(dir, wal_config, store)).await?;
    Ok(Some(opened?))
}

/// Serves like [`run`], with the log [`recover`] opened (or none).
pub async fn run_recovered(
    listener: TcpListener,
    store: Store,
    wal: Option<Wal>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let purger = tokio::spawn(purge_expired(store.clone(), config.purge_interval));
    let service = match &wal {
        Some(wal) => KvService::with_wal(wal.clone()),
        None => KvService::new(store),
    };
    let served = Server::new(ServerCodec::with_limits(config.limits))
        .with_config(config.serve)
        .with_overload(super::Busy)
        .serve(listener, tower::make::Shared::new(service), shutdown)
        .await;
    purger.abort();
    // Every connection has been answered: make what they were told durable.
    let closed = match wal {
        Some(wal) => wal.shutdown().await.map_err(io::Error::from),
        None => Ok(()),
    };
    served.and(closed)
}

async fn purge_expired(store: Store, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        store.purge_expired();
    }
}

/// A KV server running in the background of this process, for tests,
/// examples and embedding.
#[derive(Debug)]
pub struct KvServer {
    local_addr: SocketAddr,
    store: Store,
    wal: Option<Wal>,
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

/// Recovers the log of [`ServerConfig::data_dir`] if there is one, binds
/// `addr` (port 0 picks a free port) and serves the store in a background
/// task.
pub async fn spawn_server(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<KvServer> {
    let store = Store::new();
    let wal = recover(&config, &store).await?;
    spawn(TcpListener::bind(addr).await?, store, wal, config)
}

/// Serves a new store on a listener you bound yourself (to set socket
/// options, or to come back on the port of a server that stopped) in a
/// background task. Must be called within a Tokio runtime.
///
/// With a [`ServerConfig::data_dir`], the log is recovered first, blocking
/// the calling thread meanwhile; [`spawn_server`] does it off the runtime.
pub fn spawn_server_on(listener: TcpListener, config: ServerConfig) -> io::Result<KvServer> {
    let store = Store::new();
    let wal = match &config.data_dir {
        Some(dir) => Some(Wal::open(dir, config.wal.clone(), store.clone())?),
        None => None,
    };
    spawn(listener, store, wal, config)
}

fn spawn(
    listener: TcpListener,
    store: Store,
    wal: Option<Wal>,
    config: ServerConfig,
) -> io::Result<KvServer> {
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_recovered(
        listener,
        store.clone(),
        wal.clone(),
        config,
        stop.clone().cancelled_owned(),
    ));
    Ok(KvServer {
        local_addr,
        store,
        wal,
        stop,
        task,
    })
}

impl KvServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the server answers from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The write-ahead log, when the server has a data directory.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    /// Shuts down gracefully: stops accepting, answers what was received,
    /// closes every connection, fsyncs the log, and waits until all of that
    /// is done.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "kv server ended with an error"),
            Err(error) => tracing::warn!(%error, "kv server task failed"),
        }
    }

    /// Stops the server at once, without draining: connections are dropped
    /// mid-flight, as if the process had died. For failure tests. (The
    /// log's writer thread still finishes what it had received and fsyncs
    /// before it stops; to test a real crash, kill a `kv serve` process.)
    pub fn abort(self) {
        self.task.abort();
    }
}
