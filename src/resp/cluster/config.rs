//! [`ClusterConfig`]: how a cluster client follows redirects and retries.

use crate::backoff::Backoff;
use std::time::Duration;

/// How a [`Cluster`](super::Cluster) follows redirects and retries.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Most attempts of one command: redirects, retries after `TRYAGAIN`
    /// or `CLUSTERDOWN`, and retries after a failed node (default 64; the
    /// deadline around the cluster usually ends a failover's retries first).
    pub max_attempts: u32,
    /// Pause before a retry (not before following a redirect): default
    /// 10 ms doubling to 500 ms, full jitter.
    pub backoff: Backoff,
    /// How long a node may take to answer `CLUSTER SLOTS` (default 1 s).
    pub refresh_timeout: Duration,
    /// Sends read-only commands (`GET`, `MGET`, `HGETALL`, ... — a table in
    /// the crate) to a shard's replicas as well as its primary, choosing
    /// among them with a [balancer](crate::balance) (peak-EWMA), and falls
    /// back to the primary when the node chosen fails or redirects (default
    /// `false`: every command goes to a primary). A replica may answer with
    /// data a little older than the primary's: turn it on for reads that
    /// accept that. The node stacks must send `READONLY` on every new
    /// connection ([`ReadOnly`](super::ReadOnly), as
    /// [`RedisClient::cluster_with`](crate::resp::RedisClient::cluster_with)
    /// does). Batches still go to primaries. The replicas are those the
    /// last `CLUSTER SLOTS` named (a cluster just made may not list them
    /// yet; the map is loaded again after a redirect or a failed node).
    /// The balancer follows load: one read at a time goes to the node that
    /// answers fastest, and the others take reads as calls queue on it.
    pub read_from_replicas: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            max_attempts: 64,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(500)),
            refresh_timeout: Duration::from_secs(1),
            read_from_replicas: false,
        }
    }
}
