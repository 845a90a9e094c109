//! Running a KV server: the store, its service and the framework's server.

use super::codec::{Limits, ServerCodec};
use super::service::KvService;
use super::store::Store;
use crate::server::{ServeConfig, Server};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            serve: ServeConfig::default(),
            purge_interval: Duration::from_millis(100),
        }
    }
}

/// Serves the KV protocol on `listener` from `store` until `shutdown`
/// completes, then drains every connection and returns.
pub async fn run(
    listener: TcpListener,
    store: Store,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let purger = tokio::spawn(purge_expired(store.clone(), config.purge_interval));
    let service = KvService::new(store);
    let result = Server::new(ServerCodec::with_limits(config.limits))
        .with_config(config.serve)
        .with_overload(super::Busy)
        .serve(listener, tower::make::Shared::new(service), shutdown)
        .await;
    purger.abort();
    result
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
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

/// Binds `addr` (port 0 picks a free port) and serves a new in-memory store
/// on it in a background task.
pub async fn spawn_server(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<KvServer> {
    spawn_server_on(TcpListener::bind(addr).await?, config)
}

/// Serves a new in-memory store on a listener you bound yourself (to set
/// socket options, or to come back on the port of a server that stopped) in
/// a background task. Must be called within a Tokio runtime.
pub fn spawn_server_on(listener: TcpListener, config: ServerConfig) -> io::Result<KvServer> {
    let local_addr = listener.local_addr()?;
    let store = Store::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        listener,
        store.clone(),
        config,
        stop.clone().cancelled_owned(),
    ));
    Ok(KvServer {
        local_addr,
        store,
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

    /// Shuts down gracefully: stops accepting, answers what was received,
    /// closes every connection, and waits until all of that is done.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "kv server ended with an error"),
            Err(error) => tracing::warn!(%error, "kv server task failed"),
        }
    }

    /// Stops the server at once, without draining: connections are dropped
    /// mid-flight, as if the process had died. For failure tests.
    pub fn abort(self) {
        self.task.abort();
    }
}
