//! A [`Cluster`] takes a [`Batch`]: split per node, the parts sent in
//! parallel, and each command a part could not serve (a redirect, a lost
//! connection) sent again on its own, as a single command would be.

use super::execute::execute;
use super::node::ClusterNode;
use super::redirect::Redirect;
use super::service::{command_slot, Cluster};
use crate::batch::{Batch, BatchResponse};
use crate::failure::Delivery;
use crate::resp::Value;
use crate::retry::Idempotent;
use crate::route::scatter::{Gather, Scatter};
use crate::route::EndpointError;
use crate::BoxError;
use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};

/// The answers come back in the batch's order, one per command. A command
/// whose keys span slots is answered with
/// [`ClusterError::CrossSlot`](super::ClusterError::CrossSlot); the others
/// are sent. The call itself never fails.
impl<S: ClusterNode> Service<Batch<Value>> for Cluster<S> {
    type Response = BatchResponse<Value, BoxError>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<BatchResponse<Value, BoxError>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch<Value>) -> Self::Future {
        let cluster = self.state.clone();
        Box::pin(async move {
            let commands = batch.into_requests();
            let mut gather = Gather::new(commands.len());
            // Each command's node, by address: `None` for one that cannot
            // be placed now (sent on its own, which waits for a map).
            let mut targets: Vec<Option<std::sync::Arc<str>>> = Vec::new();
            let mut placed = Vec::with_capacity(commands.len());
            for (position, command) in commands.into_iter().enumerate() {
                let node = match command_slot(&command) {
                    Err(cross) => {
                        gather.put(position, Err(cross.into()));
                        continue;
                    }
                    Ok(slot) => cluster.route(slot).ok().map(|(addr, _)| addr),
                };
                let index = match targets.iter().position(|known| *known == node) {
                    Some(index) => index,
                    None => {
                        targets.push(node);
                        targets.len() - 1
                    }
                };
                placed.push((position, index, command));
            }
            let scatter = Scatter::new(placed, |(_, index, _)| *index);
            let sends = scatter.into_parts().into_iter().map(|part| {
                let cluster = cluster.clone();
                let target = targets.get(part.endpoint).cloned().flatten();
                async move {
                    let (positions, commands): (Vec<usize>, Vec<Value>) = part
                        .requests
                        .into_iter()
                        .map(|(position, _, command)| (position, command))
                        .unzip();
                    let answers = match &target {
                        Some(addr) => {
                            let (_, node) = cluster.node(addr);
                            ServiceExt::<Batch<Value>>::oneshot(node, Batch::new(commands.clone()))
                                .await
                                .map_err(Into::into)
                        }
                        None => Err(BoxError::from("not placed")),
                    };
                    let mut done = Vec::with_capacity(positions.len());
                    let mut again = Vec::new();
                    match answers {
                        Ok(answers) => {
                            for ((position, command), answer) in
                                positions.into_iter().zip(commands).zip(answers)
                            {
                                match answer {
                                    Ok(reply) if Redirect::of(&reply).is_none() => {
                                        done.push((position, Ok(reply)))
                                    }
                                    Ok(_) => again.push((position, command)),
                                    Err(error) => {
                                        let error: BoxError = error.into();
                                        if resend(&error, &command) {
                                            again.push((position, command));
                                        } else {
                                            done.push((position, Err(error)));
                                        }
                                    }
                                }
                            }
                        }
                        Err(error)
                            if target.is_none() || Delivery::of(&*error) == Some(Delivery::NotSent) =>
                        {
                            again.extend(positions.into_iter().zip(commands));
                        }
                        Err(error) => {
                            // May have been sent: only what is idempotent goes again.
                            let lost = Delivery::of(&*error).is_some();
                            let node = target.clone().unwrap_or_else(|| "?".into());
                            let error = EndpointError::new(node, error);
                            for (position, command) in positions.into_iter().zip(commands) {
                                if lost && command.is_idempotent() {
                                    again.push((position, command));
                                } else {
                                    done.push((position, Err(error.clone().into())));
                                }
                            }
                        }
                    }
                    let resent = futures::future::join_all(again.into_iter().map(|(position, command)| {
                        let cluster = cluster.clone();
                        async move { (position, execute(cluster, command).await) }
                    }))
                    .await;
                    done.extend(resent);
                    done
                }
            });
            for answers in futures::future::join_all(sends).await {
                for (position, answer) in answers {
                    gather.put(position, answer);
                }
            }
            Ok(gather.finish())
        })
    }
}

/// Whether a command that failed in a batch is sent again on its own.
fn resend(error: &BoxError, command: &Value) -> bool {
    match Delivery::of(&**error) {
        Some(Delivery::NotSent) => true,
        Some(Delivery::MaybeSent) => command.is_idempotent(),
        None => false,
    }
}
