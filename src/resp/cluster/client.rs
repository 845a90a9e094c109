//! [`RedisClient::cluster`]: the typed client over a [`Cluster`].

use super::{Cluster, ClusterConfig, ReadOnly};
use crate::builder::{ClientBuilder, Stack};
use crate::deadline::Deadline;
use crate::pipeline::Pipeline;
use crate::reconnect::Reconnect;
use crate::resp::{RedisClient, RedisError, RespCodec, Value};
use std::fmt;
use std::time::Duration;

/// The stack of one node in [`RedisClient::cluster`]: a reconnecting
/// pipeline (the cluster layer above retries and keeps the deadline).
pub type NodeService = Stack<Reconnect<Pipeline<Value, Value>>>;

/// The stack [`RedisClient::cluster`] builds: one 5 s deadline around a
/// [`Cluster`] of [`NodeService`]s.
pub type ClusterService = Deadline<Cluster<NodeService>>;

impl RedisClient<ClusterService> {
    /// A client of the Redis Cluster that `seeds` (`ip:port` of any of its
    /// nodes) belong to: loads the slot map from the first seed that
    /// answers, then sends each command to its slot's primary, following
    /// redirects and failovers (see [`crate::resp::cluster`]) within a 5 s
    /// deadline per command. For other settings (AUTH, TLS, another
    /// deadline) build a [`Cluster`] with [`Cluster::connect`] and your own
    /// node stacks, and wrap it in a [`Deadline`].
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), wirestack::resp::RedisError> {
    /// use wirestack::resp::RedisClient;
    ///
    /// let redis = RedisClient::cluster(["127.0.0.1:7000", "127.0.0.1:7001"]).await?;
    /// redis.set("{user:1}:name", "ada").await?;
    /// let values = redis.get_many(["{user:1}:name", "other"]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cluster<A: fmt::Display>(seeds: impl IntoIterator<Item = A>) -> Result<Self, RedisError> {
        Self::cluster_with(seeds, ClusterConfig::default()).await
    }

    /// [`cluster`](Self::cluster) with `config`: with
    /// [`read_from_replicas`](ClusterConfig::read_from_replicas), every
    /// node connection sends [`ReadOnly`] first, and read-only commands go
    /// to a shard's primary or one of its replicas, whichever its balancer
    /// chooses.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), wirestack::resp::RedisError> {
    /// use wirestack::resp::cluster::ClusterConfig;
    /// use wirestack::resp::RedisClient;
    ///
    /// let config = ClusterConfig { read_from_replicas: true, ..ClusterConfig::default() };
    /// let redis = RedisClient::cluster_with(["127.0.0.1:7000"], config).await?;
    /// let name = redis.get("{user:1}:name").await?; // from the primary or a replica
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cluster_with<A: fmt::Display>(
        seeds: impl IntoIterator<Item = A>,
        config: ClusterConfig,
    ) -> Result<Self, RedisError> {
        let read_only = config.read_from_replicas;
        let node = move |addr: &str| {
            let builder = ClientBuilder::new(RespCodec::new()).no_timeout().no_retry();
            if read_only {
                builder
                    .on_connect(ReadOnly)
                    .connect_lazy::<Value>(addr.to_string())
            } else {
                builder.connect_lazy::<Value>(addr.to_string())
            }
        };
        let cluster = Cluster::connect(seeds, node, config).await?;
        Ok(RedisClient::new(Deadline::new(cluster, Duration::from_secs(5))))
    }
}
