//! [`Retry`] takes a [`Batch`] as one unit: one budget deposit, one
//! deadline, and retries of the remainder from the first request that
//! failed, when that is safe request by request.

use super::classify::{Idempotent, RetryableResponse};
use super::future::{ResponseFuture, Shape};
use super::policy::{Reason, Rules};
use super::service::Retry;
use super::tries::Resend;
use crate::batch::{Batch, BatchResponse};
use crate::BoxError;
use std::error::Error;
use std::task::{Context, Poll};
use tower::Service;

/// A batch is retried from its first request that failed — refused, or
/// lost with its connection — to its end, if every request in that
/// remainder may be sent again: refused or never sent, or idempotent. The
/// answers before it are kept. Otherwise (or out of retries, budget or
/// time) the last answers are returned as they are: a request's own error
/// is the inner service's `E`, so only an error of the whole call can
/// become [`MaybeApplied`](super::MaybeApplied).
impl<S, Req, Resp, E> Service<Batch<Req>> for Retry<S>
where
    S: Service<Batch<Req>, Response = BatchResponse<Resp, E>> + Clone,
    S::Error: Into<BoxError>,
    Req: Idempotent + Clone,
    Resp: RetryableResponse,
    E: Error + 'static,
{
    type Response = BatchResponse<Resp, E>;
    type Error = BoxError;
    type Future = BatchFuture<S, Req, Resp, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner_mut().poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        let shape = Many {
            requests: batch.requests().to_vec(),
            offset: 0,
            answers: Vec::new(),
        };
        ResponseFuture::start(self, batch, shape)
    }
}

/// The response of a [`Batch`] sent through a [`Retry`].
pub type BatchFuture<S, Req, Resp, E> = ResponseFuture<S, Batch<Req>, Many<Req, Resp, E>>;

/// A batch, kept to send its remainder again.
#[derive(Debug)]
pub struct Many<Req, Resp, E> {
    requests: Vec<Req>,
    /// Where the attempt under way starts in `requests`.
    offset: usize,
    /// The answers to the requests before `offset`.
    answers: BatchResponse<Resp, E>,
}

/// Where the remainder to send again starts, if one should be.
fn first_failed<Resp: RetryableResponse, E>(answers: &[Result<Resp, E>]) -> Option<usize> {
    answers.iter().position(|answer| match answer {
        Ok(response) => response.is_retryable(),
        Err(_) => true,
    })
}

/// Why to send `requests` again after their `outcomes` (the first a
/// failure), if each may be sent again: refused or never sent, or
/// idempotent. The first one's reason is the retry's.
fn resend<'a, Req: Idempotent, Resp: RetryableResponse + 'a>(
    policy: &Rules,
    requests: &[Req],
    outcomes: impl Iterator<Item = Result<&'a Resp, &'a (dyn Error + 'static)>>,
) -> Option<Resend> {
    let mut pairs = requests.iter().zip(outcomes);
    let (request, outcome) = pairs.next()?;
    let mut resend = Resend::after(policy.reason(request, outcome)?);
    for (request, outcome) in pairs {
        resend.applied |= match outcome {
            // Answered, so applied: sent again only if that changes nothing.
            Ok(response) if !response.is_retryable() => request.is_idempotent().then_some(true)?,
            outcome => matches!(policy.reason(request, outcome)?, Reason::LostIdempotent),
        };
    }
    Some(resend)
}

impl<Req, Resp, E> Shape<Batch<Req>, BatchResponse<Resp, E>> for Many<Req, Resp, E>
where
    Req: Idempotent + Clone,
    Resp: RetryableResponse,
    E: Error + 'static,
{
    fn resend(&self, policy: &Rules, result: &Result<BatchResponse<Resp, E>, BoxError>) -> Option<Resend> {
        let remainder = &self.requests[self.offset..];
        let resend = match result {
            Ok(answers) => {
                let first = first_failed(answers)?;
                let outcomes = answers[first..]
                    .iter()
                    .map(|answer| answer.as_ref().map_err(|e| e as _));
                resend(policy, &remainder[first..], outcomes)
            }
            Err(error) => resend::<Req, Resp>(policy, remainder, std::iter::repeat(Err(&**error as _))),
        };
        #[cfg(feature = "sim-mutations")]
        if crate::mutations::on(crate::mutations::Mutation::BatchDropsMaybeApplied) {
            return resend.map(|resend| Resend {
                applied: false,
                ..resend
            });
        }
        resend
    }

    /// The remainder was not sent: its first request's reason decides.
    fn unready(&self, policy: &Rules, error: &BoxError) -> Option<Reason> {
        let request = self.requests.get(self.offset)?;
        policy.reason::<Req, Resp>(request, Err(&**error))
    }

    fn next(&self) -> Batch<Req> {
        Batch::new(self.requests[self.offset..].to_vec())
    }

    fn keep(&mut self, result: Result<BatchResponse<Resp, E>, BoxError>) {
        if let Ok(mut answers) = result {
            let first = first_failed(&answers).unwrap_or(answers.len());
            self.answers.extend(answers.drain(..first));
            self.offset += first;
        }
    }

    fn finish(
        &mut self,
        result: Result<BatchResponse<Resp, E>, BoxError>,
    ) -> Result<BatchResponse<Resp, E>, BoxError> {
        result.map(|answers| {
            let mut all = std::mem::take(&mut self.answers);
            all.extend(answers);
            all
        })
    }
}
