//! The [`ResponseFuture`] of [`Reconnect`](super::Reconnect).

use super::error::Disconnected;
use super::service::Status;
use crate::BoxError;
use futures::future::BoxFuture;
use futures::ready;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// The response of a [`Reconnect`](super::Reconnect) call.
///
/// With a live connection it is the connection's own future. Without one it
/// first waits for the connect attempt under way, then sends the request on
/// the new connection — or fails with [`Disconnected`] without sending it.
#[pin_project]
pub struct ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    kind: Kind<S, Req>,
}

/// With a live connection the future is the connection's own: the other
/// states are rare and boxed, so that they do not make every request's
/// future larger to move around.
#[pin_project(project = KindProj)]
enum Kind<S, Req>
where
    S: Service<Req>,
{
    Called {
        #[pin]
        future: S::Future,
    },
    Slow(Box<Slow<S, Req>>),
}

enum Slow<S, Req>
where
    S: Service<Req>,
{
    Waiting {
        wait: BoxFuture<'static, Result<(u64, S), Disconnected>>,
        request: Option<Req>,
        status: Arc<Status>,
    },
    Readying {
        generation: u64,
        service: S,
        request: Option<Req>,
        status: Arc<Status>,
    },
    Failed {
        error: Option<Disconnected>,
    },
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(crate) fn called(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Called { future },
        }
    }

    pub(crate) fn waiting(
        wait: BoxFuture<'static, Result<(u64, S), Disconnected>>,
        request: Req,
        status: Arc<Status>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Slow(Box::new(Slow::Waiting {
                wait,
                request: Some(request),
                status,
            })),
        }
    }

    pub(crate) fn failed(error: Disconnected) -> Self {
        ResponseFuture {
            kind: Kind::Slow(Box::new(Slow::Failed { error: Some(error) })),
        }
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Slow(slow) => match **slow {
                Slow::Waiting { .. } => "waiting for a connection",
                Slow::Readying { .. } => "waiting for the connection to be ready",
                Slow::Failed { .. } => "failed",
            },
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish()
    }
}

const POLLED_AFTER_COMPLETION: &str = "reconnect::ResponseFuture polled after completion";

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let slow = match this.kind.as_mut().project() {
                KindProj::Called { future } => return future.poll(cx).map_err(Into::into),
                KindProj::Slow(slow) => slow,
            };
            let next = match &mut **slow {
                Slow::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect(POLLED_AFTER_COMPLETION).into()));
                }
                Slow::Waiting {
                    wait,
                    request,
                    status,
                } => match ready!(wait.as_mut().poll(cx)) {
                    Ok((generation, service)) => {
                        **slow = Slow::Readying {
                            generation,
                            service,
                            request: request.take(),
                            status: status.clone(),
                        };
                        continue;
                    }
                    Err(error) => return Poll::Ready(Err(error.into())),
                },
                Slow::Readying {
                    generation,
                    service,
                    request,
                    status,
                } => match ready!(service.poll_ready(cx)) {
                    Ok(()) => {
                        let request = request.take().expect(POLLED_AFTER_COMPLETION);
                        tracing::debug!(connection = *generation, "sending");
                        Kind::Called {
                            future: service.call(request),
                        }
                    }
                    Err(error) => {
                        // The new connection broke before this request was
                        // written: it was not sent.
                        let error: BoxError = error.into();
                        status.report_broken(*generation, &*error);
                        return Poll::Ready(Err(Disconnected::new(Some(Arc::from(error))).into()));
                    }
                },
            };
            this.kind.set(next);
        }
    }
}
