//! [`ReadOnly`]: Redis Cluster's `READONLY` on every new connection, so
//! that a replica answers reads of the slots its primary serves.

use crate::resp::Value;
use crate::transport::{Handshake, HandshakeError};
use crate::BoxError;
use futures::{Sink, Stream};
use std::future::Future;

/// Sends `READONLY` on every new connection before any command: a cluster
/// replica then answers read-only commands for its primary's slots instead
/// of redirecting them (a primary ignores it). Give it to
/// [`ClientBuilder::on_connect`](crate::builder::ClientBuilder::on_connect)
/// for the node stacks of a [`Cluster`](super::Cluster) that
/// [reads from replicas](super::ClusterConfig::read_from_replicas);
/// [`RedisClient::cluster_with`](crate::resp::RedisClient::cluster_with)
/// does. An error reply (a server not in cluster mode) is a
/// [rejected](HandshakeError::Rejected) handshake.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

impl<T, E> Handshake<T> for ReadOnly
where
    T: Sink<Value, Error = E> + Stream<Item = Result<Value, E>> + Unpin + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn handshake(&self, transport: T) -> impl Future<Output = Result<T, HandshakeError>> + Send {
        crate::resp::auth::expect_ok(
            transport,
            Value::command(["READONLY"]),
            "READONLY",
            crate::resp::RedisError::Server,
        )
    }
}
