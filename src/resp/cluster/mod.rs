//! Redis Cluster: one client over a cluster's primaries, routed by hash slot.
//!
//! A cluster splits its keys into 16384 hash slots ([`slot`]: CRC16 of the
//! key, or of its `{hash tag}`), each served by one primary. [`Cluster`] is
//! a `Service` over one stack per node (a [`ClusterNode`], built by a
//! function you give it, typically a
//! [`ClientBuilder`](crate::builder::ClientBuilder) with no
//! deadline and no retry: the cluster layer retries, and one deadline goes
//! around it all):
//!
//! * **Slot map.** Loaded with `CLUSTER SLOTS` from the first seed that
//!   answers; kept in the client, so a command goes straight to its slot's
//!   primary. Loaded again (in the background, one load at a time) after a
//!   `MOVED`, a `CLUSTERDOWN`, or a node whose connection failed.
//! * **`MOVED slot addr`**: the slot has moved for good: the map is
//!   updated at once and the command sent to `addr`.
//! * **`ASK slot addr`**: the slot is being migrated and this key is
//!   already at `addr`: the command is sent there once, right after
//!   `ASKING`, as one batch on one connection. The map is not changed.
//! * **`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`**: sent again after a jittered
//!   pause; so is a command whose connection failed before it was sent, or
//!   after if it is [idempotent](crate::retry::Idempotent) — by then the
//!   map may name a new primary (a failover).
//! * **Multi-key commands** (`MGET a b`, `DEL a b`, ...) whose keys are in
//!   different slots are refused before anything is sent, with
//!   [`ClusterError::CrossSlot`].
//! * **Batches** are split per node and the parts sent at once; a command
//!   a part could not serve is sent again on its own as above.
//!
//! * **Reads from replicas** (off by default:
//!   [`ClusterConfig::read_from_replicas`]): a read-only command goes to
//!   one of its shard's primary and replicas, chosen by a
//!   [balancer](crate::balance) (power of two choices over peak-EWMA
//!   latency, so a slow replica is avoided), over connections that sent
//!   [`ReadOnly`]; if that node fails or redirects, the command falls back
//!   to the primary. Writes, keyless commands and batches go to primaries.
//!
//! [`RedisClient::cluster`](super::RedisClient::cluster) builds the whole
//! client with defaults, [`RedisClient::cluster_with`](super::RedisClient::cluster_with)
//! with a [`ClusterConfig`].

mod batch;
mod client;
mod config;
mod error;
mod execute;
mod keys;
mod map;
mod node;
mod readonly;
mod redirect;
mod service;
mod slot;
mod stats;

pub use client::{ClusterService, NodeService};
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use node::ClusterNode;
pub use readonly::ReadOnly;
pub use service::Cluster;
pub use slot::{slot, SLOTS};
pub use stats::{ClusterHandle, ClusterStats};
