//! A [`Router`] takes a [`Batch`]: split per endpoint, the parts sent in
//! parallel, the answers put back in the caller's order.

use super::bounds::EndpointStack;
use super::error::EndpointError;
use super::key::RouteKey;
use super::scatter::{Gather, Scatter};
use super::service::Router;
use crate::batch::{Batch, BatchResponse};
use crate::BoxError;
use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};

/// Each part of the batch (the requests that go to one endpoint) is one
/// [`Batch`] to that endpoint's stack, all parts at once; the answers come
/// back in the batch's order, one per request. A part whose endpoint is
/// ejected, or that failed as a whole (its deadline passed, no connection),
/// answers each of its requests with that error; the other parts are
/// unaffected. The call itself never fails. Each part's outcome is
/// recorded by its endpoint's [`Accrual`](super::Accrual): once per part.
impl<S, Req, Resp, E> Service<Batch<Req>> for Router<S>
where
    S: EndpointStack<Batch<Req>, Response = BatchResponse<Resp, E>>,
    Req: RouteKey + Send + 'static,
    Resp: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Response = BatchResponse<Resp, BoxError>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<BatchResponse<Resp, BoxError>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        let table = &self.table;
        let scatter = Scatter::new(batch.into_requests(), |request| table.index(request));
        let mut gather = Gather::new(scatter.len());
        let mut sends = Vec::new();
        for part in scatter.into_parts() {
            let endpoint = &table.endpoints[part.endpoint];
            let name = endpoint.info.name.clone();
            if !endpoint.info.health.is_up() {
                let ejected = endpoint.info.refuse(part.positions.len());
                for position in part.positions {
                    gather.put(position, Err(ejected.clone().into()));
                }
                continue;
            }
            let send = endpoint.service.clone().oneshot(Batch::new(part.requests));
            sends.push(async move { (name, part.positions, send.await.map_err(Into::<BoxError>::into)) });
        }
        Box::pin(async move {
            for (name, positions, answers) in futures::future::join_all(sends).await {
                match answers {
                    Ok(answers) => {
                        for (position, answer) in positions.into_iter().zip(answers) {
                            let answer =
                                answer.map_err(|e| EndpointError::new(name.clone(), e.into()).into());
                            gather.put(position, answer);
                        }
                    }
                    Err(error) => {
                        let error = EndpointError::new(name, error);
                        for position in positions {
                            gather.put(position, Err(error.clone().into()));
                        }
                    }
                }
            }
            Ok(gather.finish())
        })
    }
}
