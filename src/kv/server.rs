//! Running a KV server: the store, its log, its service and the framework's server.

use super::auth::{check_protected, AuthDeadline, AuthLimits, AuthToken, Authenticator, Reply};
use super::codec::{Limits, ServerCodec};
use super::metrics::KvMetrics;
use super::service::KvService;
use super::session::SessionConfig;
use super::store::Store;
use super::wal::{Wal, WalConfig, WalError};
use crate::server::{Overloaded, ServeConfig, Server};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything a KV server is configured with: the protocol's limits, the
/// framework's connection limits ([`ServeConfig`]), the log.
#[derive(Debug, Clone)]
pub struct KvServerConfig {
    /// Largest key and value accepted.
    pub limits: Limits,
    /// How each connection is served. Its
    /// [`max_in_flight_per_connection`](ServeConfig::max_in_flight_per_connection)
    /// is also the `max_in_flight` the answer to `HELLO` tells clients.
    pub serve: ServeConfig,
    /// How often expired keys are purged from memory (default 100 ms).
    /// Expired keys are invisible at once either way.
    pub purge_interval: Duration,
    /// Where the write-ahead log lives; `None` (the default) keeps the data
    /// in memory only.
    pub data_dir: Option<PathBuf>,
    /// How the log is written and compacted, when there is a `data_dir`.
    pub wal: WalConfig,
    /// The token every connection must `AUTH` with first; `None` (the
    /// default): no authentication. With a token, a connection is held to
    /// [`ServeConfig::max_unadmitted_frame_bytes`] (raised to fit the
    /// `AUTH` frame with this token) and takes nothing of the buffer
    /// budget's common pool until it has authenticated; a larger request
    /// before `AUTH` is answered `UNAUTHENTICATED` and closes its
    /// connection.
    pub auth: Option<AuthToken>,
    /// The limit on failed `AUTH` attempts per peer address.
    pub auth_limits: AuthLimits,
    /// With a token, how long a connection may take from accept to a
    /// successful `AUTH` before it is closed (default 10 s; `None`: as long
    /// as the idle timeout allows). Peers that connect and never
    /// authenticate then hold a connection slot this long at most.
    pub auth_timeout: Option<Duration>,
    /// The session table's window, caps and lifetime (see
    /// [`Sessions`](super::Sessions)); with a `data_dir` the table is kept
    /// in the log and snapshots.
    pub sessions: SessionConfig,
    /// Serve on an address other than loopback without a token (default
    /// `false`: such a server refuses to start; see [`check_protected`]).
    pub allow_unauthenticated: bool,
    /// Serve TLS with this configuration (see [`crate::tls`]); `None` (the
    /// default): plain TCP.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<std::sync::Arc<crate::tls::rustls::ServerConfig>>,
}

impl Default for KvServerConfig {
    fn default() -> Self {
        KvServerConfig {
            limits: Limits::default(),
            serve: ServeConfig::default(),
            purge_interval: Duration::from_millis(100),
            data_dir: None,
            wal: WalConfig::default(),
            auth: None,
            auth_limits: AuthLimits::default(),
            auth_timeout: Some(Duration::from_secs(10)),
            sessions: SessionConfig::default(),
            allow_unauthenticated: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl KvServerConfig {
    /// Checks that the settings can work together: with a
    /// [`data_dir`](Self::data_dir), the largest key and the largest value
    /// the [`limits`](Self::limits) accept must fit in one log record
    /// ([`Wal::MAX_ENTRY_BYTES`] together), or an answered write could not
    /// be replayed. [`serve`] and [`KvServer::start`] check this before
    /// they touch the data directory.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let entry = u64::from(self.limits.max_key_bytes) + u64::from(self.limits.max_value_bytes);
        if self.data_dir.is_some() && entry > Wal::MAX_ENTRY_BYTES {
            return Err(ConfigError::NotLoggable {
                max_key_bytes: self.limits.max_key_bytes,
                max_value_bytes: self.limits.max_value_bytes,
                limit: Wal::MAX_ENTRY_BYTES,
            });
        }
        Ok(())
    }
}

/// Settings of a [`KvServerConfig`] that cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The limits accept a key and value that one log record cannot hold.
    #[error(
        "a key of max_key_bytes ({max_key_bytes}) and a value of max_value_bytes ({max_value_bytes}) \
         do not fit in one log record: together they may be at most {limit} bytes"
    )]
    NotLoggable {
        /// [`Limits::max_key_bytes`].
        max_key_bytes: u32,
        /// [`Limits::max_value_bytes`].
        max_value_bytes: u32,
        /// [`Wal::MAX_ENTRY_BYTES`].
        limit: u64,
    },
}

impl From<ConfigError> for io::Error {
    fn from(error: ConfigError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// Serves the KV protocol on `listener` until `shutdown` completes, then
/// drains every connection, closes the log and returns.
///
/// This is the foreground way to run a server: a future you drive (spawn it,
/// or `.await` it in `main`). [`KvServer::start`] runs one in the background
/// and hands you its address, its store and a way to stop it.
///
/// With a [`KvServerConfig::data_dir`], the log there is first recovered
/// (connections wait in the listen queue meanwhile; a damaged log is an
/// error of kind `InvalidData` whose inner error is a
/// [`WalError`](super::wal::WalError)), every write goes through it, and the
/// log is fsynced after the last connection is drained. A configuration
/// that fails [`KvServerConfig::validate`] is an error of kind
/// `InvalidInput`, before anything is read.
///
/// A listener on an address other than loopback is refused (an error of
/// kind `PermissionDenied` whose inner error is an
/// [`Unprotected`](super::Unprotected)) unless the config has a token or
/// allows unauthenticated clients.
pub async fn serve(
    listener: TcpListener,
    config: KvServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    protected(listener.local_addr()?, &config)?;
    let store = Store::with_sessions(config.sessions.clone());
    let wal = recover(&config, &store).await?;
    serve_recovered(listener, store, wal, config, shutdown).await
}

/// Protected mode: see [`check_protected`].
fn protected(addr: SocketAddr, config: &KvServerConfig) -> io::Result<()> {
    check_protected(addr, config.auth.is_some(), config.allow_unauthenticated)
        .map_err(|refused| io::Error::new(io::ErrorKind::PermissionDenied, refused))
}

/// Recovers the log of `config.data_dir` into `store`, if there is one, off
/// the runtime's threads.
async fn recover(config: &KvServerConfig, store: &Store) -> io::Result<Option<Wal>> {
    config.validate()?;
    let Some(dir) = config.data_dir.clone() else {
        return Ok(None);
    };
    let (wal_config, store) = (config.wal.clone(), store.clone());
    let started = std::time::Instant::now();
    let opened = tokio::task::spawn_blocking(move || Wal::open(dir, wal_config, store)).await?;
    let wal = opened?;
    super::metrics::recovered(started.elapsed());
    Ok(Some(wal))
}

/// Serves with the log [`recover`] opened (or none).
async fn serve_recovered(
    listener: TcpListener,
    store: Store,
    wal: Option<Wal>,
    config: KvServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let purger = tokio::spawn(purge_expired(store.clone(), wal.clone(), config.purge_interval));
    let service = match &wal {
        Some(wal) => KvService::with_wal(wal.clone()),
        None => KvService::new(store),
    };
    // What HELLO tells a client: the server's own per-connection limit.
    let max_in_flight = u32::try_from(config.serve.max_in_flight_per_connection).unwrap_or(u32::MAX);
    let service = service.with_max_in_flight(max_in_flight);
    // One gate per connection, in front of a clone of the service.
    let authenticator = config
        .auth
        .clone()
        .map(|token| Authenticator::new(token, config.auth_limits));
    let auth_timeout = config.auth_timeout;
    let per_connection = tower::service_fn(move |peer: SocketAddr| {
        let gated = match &authenticator {
            Some(authenticator) => authenticator.require(service.clone(), peer),
            None => super::RequireAuth::open(service.clone(), peer),
        };
        let gated = AuthDeadline::new(gated, auth_timeout);
        std::future::ready(Ok::<_, std::convert::Infallible>(gated))
    });
    // Before AUTH a connection sends small frames only, and takes nothing
    // of the buffer pool; its AUTH with the right token always fits.
    let mut serve = config.serve;
    if let Some(token) = &config.auth {
        let auth_frame = super::codec::REQUEST_HEADER_LEN.saturating_add(token.len());
        serve.max_unadmitted_frame_bytes = serve.max_unadmitted_frame_bytes.max(auth_frame);
    }
    let server = Server::new(ServerCodec::with_limits(config.limits))
        .with_config(serve)
        .with_admission(AuthDeadline::<KvService>::is_authenticated as fn(&AuthDeadline<KvService>) -> bool)
        .with_overload(Reply::busy as fn(&Overloaded) -> Option<Reply>)
        .with_codec_frame_size(ServerCodec::frame_len_for)
        .with_close_after(Reply::closes as fn(&Reply) -> bool)
        .with_order(super::ByRequestId);
    #[cfg(feature = "tls")]
    let served = match config.tls {
        Some(tls) => {
            server
                .with_acceptor(crate::tls::TlsAcceptor::new(tls))
                .serve(listener, per_connection, shutdown)
                .await
        }
        None => server.serve(listener, per_connection, shutdown).await,
    };
    #[cfg(not(feature = "tls"))]
    let served = server.serve(listener, per_connection, shutdown).await;
    purger.abort();
    // Every connection has been answered: make what they were told durable.
    let closed = match wal {
        Some(wal) => wal.shutdown().await.map_err(io::Error::from),
        None => Ok(()),
    };
    served.and(closed)
}

/// Purges expired keys on every tick, and publishes the store's and the
/// log's figures (see [`super::metrics`]).
async fn purge_expired(store: Store, wal: Option<Wal>, every: Duration) {
    let metrics = KvMetrics::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let purged = store.purge_expired();
        metrics.publish(&store, wal.as_ref(), purged);
    }
}

/// A KV server running in the background of this process: for tests,
/// examples, embedding, and the `kv serve` command.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use wirestack::kv::{KvClient, KvServer, KvServerConfig};
///
/// let server = KvServer::start("127.0.0.1:0", KvServerConfig::default()).await?;
/// let client = KvClient::connect(server.local_addr()).await?;
/// client.put("k", "v").await?;
/// assert_eq!(server.store().len(), 1);
/// server.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KvServer {
    local_addr: SocketAddr,
    store: Store,
    wal: Option<Wal>,
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

impl KvServer {
    /// Recovers the log of [`KvServerConfig::data_dir`] if there is one,
    /// then binds `addr` (port 0 picks a free port) and serves in a
    /// background task. Must be called within a Tokio runtime.
    ///
    /// When it returns the server is listening and its data is recovered:
    /// announcing [`local_addr`](Self::local_addr) then tells the truth.
    pub async fn start(addr: impl ToSocketAddrs, config: KvServerConfig) -> io::Result<KvServer> {
        let store = Store::with_sessions(config.sessions.clone());
        let wal = recover(&config, &store).await?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        protected(local_addr, &config)?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_recovered(
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

    /// Shuts down gracefully: stops accepting, answers what was received
    /// (within [`ServeConfig::shutdown_timeout`]), closes every connection,
    /// fsyncs and closes the log, and waits until all of that is done: when
    /// it returns the data directory is unlocked, and a server may start on
    /// it at once. Fails if serving or closing the log failed.
    pub async fn shutdown(self) -> io::Result<()> {
        self.shutdown_or_force(std::future::pending()).await
    }

    /// [`shutdown`](Self::shutdown), unless `force` completes first: then
    /// every connection is closed where it stands (answers not yet written
    /// are lost; writes already handed to the log still land), and the log
    /// is fsynced and closed. What `kv serve` does on a second SIGTERM.
    pub async fn shutdown_or_force(mut self, force: impl Future<Output = ()>) -> io::Result<()> {
        self.stop.cancel();
        tokio::select! {
            served = &mut self.task => served?,
            () = force => {
                tracing::warn!("closing every connection now");
                self.task.abort();
                // Wait until the connections are dropped and their services
                // with them: nothing more can reach the log after this.
                let _ = (&mut self.task).await;
                match &self.wal {
                    // `Closed`: the aborted task had already closed it.
                    Some(wal) => match wal.shutdown().await {
                        Ok(()) | Err(WalError::Closed) => Ok(()),
                        Err(error) => Err(error.into()),
                    },
                    None => Ok(()),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_limits(max_key_bytes: u32, max_value_bytes: u32, durable: bool) -> KvServerConfig {
        KvServerConfig {
            limits: Limits {
                max_key_bytes,
                max_value_bytes,
            },
            data_dir: durable.then(|| PathBuf::from("/nonexistent")),
            ..KvServerConfig::default()
        }
    }

    #[test]
    fn limits_the_log_cannot_hold_are_refused_only_with_a_data_dir() {
        let most = Wal::MAX_ENTRY_BYTES;
        let key = 64 * 1024u32;
        let value = u32::try_from(most - u64::from(key)).unwrap();
        assert_eq!(with_limits(key, value, true).validate(), Ok(()));
        let error = with_limits(key, value + 1, true).validate().unwrap_err();
        assert!(error.to_string().contains(&most.to_string()), "{error}");
        assert_eq!(with_limits(u32::MAX, u32::MAX, false).validate(), Ok(()));
        assert!(with_limits(u32::MAX, 0, true).validate().is_err());
    }

    #[tokio::test]
    async fn a_server_with_limits_the_log_cannot_hold_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = with_limits(1024, u32::MAX, true);
        config.data_dir = Some(dir.path().to_path_buf());
        let error = KvServer::start("127.0.0.1:0", config).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        // Refused before the directory was touched.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
