//! [`ClusterNode`]: what a [`Cluster`](super::Cluster) needs of the stack of
//! one node, named.
//!
//! It only names a set of bounds, so that the signatures of the cluster's
//! service, its batches and its command loop stay readable and alike; it is
//! implemented for every type that has them and cannot be implemented
//! otherwise.

use crate::batch::{Batch, BatchResponse};
use crate::resp::Value;
use crate::BoxError;
use tower::Service;

/// The stack of one cluster node: a `Service` that answers a command with
/// a [`Value`] and a [`Batch`] of commands with one result each, whose
/// errors convert into a [`BoxError`] and whose futures can move between
/// tasks, cheap to clone into a call running on another task.
///
/// [`NodeService`](super::NodeService) (what
/// [`RedisClient::cluster`](crate::resp::RedisClient::cluster) builds) is
/// one, and so is any [`Stack`](crate::builder::Stack) of the
/// [`RespCodec`](crate::resp::RespCodec).
pub trait ClusterNode:
    Service<Value, Response = Value, Error: Into<BoxError>, Future: Send>
    + Service<
        Batch<Value>,
        Response = BatchResponse<Value, Self::CommandError>,
        Error: Into<BoxError>,
        Future: Send,
    >
    + Clone
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// Why one command of a batch failed while the node answered others
    /// (its connection was lost, for example).
    type CommandError: Into<BoxError> + Send + 'static;
}

impl<S, E> ClusterNode for S
where
    S: Service<Value, Response = Value> + Service<Batch<Value>, Response = BatchResponse<Value, E>>,
    S: Clone + Send + Sync + 'static,
    <S as Service<Value>>::Error: Into<BoxError>,
    <S as Service<Value>>::Future: Send,
    <S as Service<Batch<Value>>>::Error: Into<BoxError>,
    <S as Service<Batch<Value>>>::Future: Send,
    E: Into<BoxError> + Send + 'static,
{
    type CommandError = E;
}

mod sealed {
    pub trait Sealed {}
    impl<S> Sealed for S {}
}
