//! [`Recorded`]: the response of an [`Accrual`](super::Accrual) call, its
//! outcome recorded against the endpoint, read by [`Single`] for a request
//! and by [`Batched`] for a batch.

use super::bounds::EndpointStack;
use super::endpoint::EndpointWatch;
use super::error::Ejected;
use super::key::Probe;
use crate::batch::BatchResponse;
use crate::BoxError;
use pin_project::pin_project;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How the answer `T` of a call that succeeded is read: whether it says
/// that the endpoint failed, and how.
pub trait ReadOutcome<T> {
    /// The failure `answer` reports, if any.
    fn failure(answer: &T) -> Option<&(dyn Error + 'static)>;
}

/// A single request's answer never reports a failure: the request failed
/// only if its call did.
#[derive(Debug)]
pub enum Single {}

impl<T> ReadOutcome<T> for Single {
    fn failure(_: &T) -> Option<&(dyn Error + 'static)> {
        None
    }
}

/// A batch's answers report the first of their requests that failed.
#[derive(Debug)]
pub enum Batched {}

impl<Resp, E: Error + 'static> ReadOutcome<BatchResponse<Resp, E>> for Batched {
    fn failure(answers: &BatchResponse<Resp, E>) -> Option<&(dyn Error + 'static)> {
        answers
            .iter()
            .find_map(|answer| answer.as_ref().err())
            .map(|e| e as _)
    }
}

/// The response of an [`Accrual`](super::Accrual) call: the inner call's
/// (its outcome, as `R` reads it, recorded against the endpoint, which is
/// probed with `Req` if that ejected it), or the ejection.
#[pin_project]
pub struct Recorded<F, S, Req, R> {
    #[pin]
    state: State<F>,
    watch: Arc<EndpointWatch<S>>,
    read: PhantomData<fn(Req) -> R>,
}

#[pin_project(project = StateProj)]
enum State<F> {
    Called(#[pin] F),
    Refused(Option<Ejected>),
}

impl<F, S, Req, R> Recorded<F, S, Req, R> {
    pub(super) fn called(inner: F, watch: Arc<EndpointWatch<S>>) -> Self {
        Recorded {
            state: State::Called(inner),
            watch,
            read: PhantomData,
        }
    }

    pub(super) fn refused(ejected: Ejected, watch: Arc<EndpointWatch<S>>) -> Self {
        Recorded {
            state: State::Refused(Some(ejected)),
            watch,
            read: PhantomData,
        }
    }
}

impl<F, S, Req, R> fmt::Debug for Recorded<F, S, Req, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called(_) => "called",
            State::Refused(_) => "ejected",
        };
        f.debug_struct("Recorded")
            .field("endpoint", &self.watch.info.name)
            .field("state", &state)
            .finish()
    }
}

impl<F, T, E, S, Req, R> Future for Recorded<F, S, Req, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    S: EndpointStack<Req>,
    Req: Probe + Send + 'static,
    R: ReadOutcome<T>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = match this.state.project() {
            StateProj::Called(inner) => inner,
            StateProj::Refused(ejected) => {
                let ejected = ejected.take().expect("Accrual's future polled after completion");
                return Poll::Ready(Err(ejected.into()));
            }
        };
        let result = futures::ready!(inner.poll(cx)).map_err(Into::into);
        let failure = match &result {
            Ok(answer) => R::failure(answer),
            Err(error) => Some(&**error as _),
        };
        this.watch.record::<Req>(failure.map_or(Ok(()), Err));
        Poll::Ready(result)
    }
}
