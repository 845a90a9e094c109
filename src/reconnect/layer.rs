//! [`ReconnectLayer`]: builds a [`Reconnect`] from a connector.

use super::Reconnect;
use crate::backoff::Backoff;
use crate::BoxError;
use std::time::Duration;
use tower::{Layer, Service};

/// How a [`Reconnect`] connects and reconnects.
#[derive(Debug, Clone)]
pub struct ReconnectConfig {
    /// Delay between failed connect attempts (default 100 ms doubling to 5 s,
    /// full jitter). The first attempt after a connection that was healthy
    /// for at least `backoff.cap()` is made at once.
    pub backoff: Backoff,
    /// How long one connect attempt may take (default 5 s); past it the
    /// attempt counts as failed with [`ConnectTimedOut`](super::error::ConnectTimedOut).
    pub connect_timeout: Duration,
    /// How many consecutive failed attempts before the task stops trying on
    /// its own (default `None`: never stops). Once stopped, each call still
    /// fails fast with [`Disconnected`](super::error::Disconnected) and asks
    /// for one more attempt, made at most once per `backoff.cap()`: the
    /// endpoint is then probed only as often as someone needs it.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

/// Wraps a connector into a [`Reconnect`] service for `target`.
///
/// The connector is any `Service<Target>` that makes a connection service
/// (a [`MakePipeline`](crate::pipeline::MakePipeline), for example).
/// [`Layer::layer`] spawns the reconnect task, so it must be called within a
/// Tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio_util::codec::LinesCodec;
/// use tower::{Layer, ServiceExt};
/// use wirestack::pipeline::{self, MakePipeline};
/// use wirestack::reconnect::ReconnectLayer;
/// use wirestack::transport::TcpConnector;
/// # use wirestack::server::Server;
///
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # let echo = tower::service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line) });
/// # tokio::spawn(Server::new(LinesCodec::new()).serve(listener, tower::make::Shared::new(echo), std::future::pending()));
/// // A line-echo server listens on `addr`.
/// let connector = MakePipeline::<_, String>::new(TcpConnector::new(LinesCodec::new()), pipeline::Builder::new());
/// let service = ReconnectLayer::new(addr).layer(connector);
/// assert_eq!(service.oneshot("hi".to_string()).await?, "hi");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectLayer<T> {
    target: T,
    config: ReconnectConfig,
}

impl<T> ReconnectLayer<T> {
    /// Connects to `target` with the default [`ReconnectConfig`].
    pub fn new(target: T) -> Self {
        Self::with_config(target, ReconnectConfig::default())
    }

    /// Connects to `target` with `config`.
    pub fn with_config(target: T, config: ReconnectConfig) -> Self {
        ReconnectLayer { target, config }
    }

    /// The settings the layer builds with.
    pub fn config(&self) -> &ReconnectConfig {
        &self.config
    }
}

impl<M, T> Layer<M> for ReconnectLayer<T>
where
    M: Service<T> + Send + 'static,
    M::Response: Clone + Send + Sync + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send,
    T: Clone + Send + 'static,
{
    type Service = Reconnect<M::Response>;

    fn layer(&self, connector: M) -> Self::Service {
        Reconnect::new(connector, self.target.clone(), self.config.clone())
    }
}
