//! The retry layer's claims about what a caller learns when it gives up.

use super::{Idempotent, MaybeApplied, Retry, RetryConfig, RetryPolicy, RetryableResponse};
use crate::backoff::Backoff;
use crate::batch::{Batch, BatchResponse};
use crate::failure::Failure;
use crate::pipeline;
use crate::BoxError;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::util::ServiceFn;
use tower::{service_fn, Layer, Service, ServiceExt};

#[derive(Debug, Clone)]
struct Read;
impl Idempotent for Read {
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// An answer; `Answer(true)` is a refusal ("busy").
#[derive(Debug)]
struct Answer(bool);
impl RetryableResponse for Answer {
    fn is_retryable(&self) -> bool {
        self.0
    }
}

type Answers = BatchResponse<Answer, pipeline::Error>;

fn lost<T>() -> Result<T, BoxError> {
    Err(pipeline::Error::Closed.into())
}

fn not_sent<T>() -> Result<T, BoxError> {
    Err(pipeline::Error::NotSent(Arc::new(pipeline::Error::Closed)).into())
}

/// A batch of two whose first request is refused and second answered.
fn busy_then_answered() -> Result<Answers, BoxError> {
    Ok(vec![Ok(Answer(true)), Ok(Answer(false))])
}

/// A connection whose attempts end as `attempts` says, in order (the last
/// one again after).
fn connection<Req, Resp>(
    attempts: &'static [fn() -> Result<Resp, BoxError>],
) -> ServiceFn<impl FnMut(Req) -> Ready<Result<Resp, BoxError>> + Clone> {
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |_: Req| {
        let call = calls.fetch_add(1, Ordering::Relaxed) as usize;
        ready(attempts[call.min(attempts.len() - 1)]())
    })
}

/// Sends `request` through a retry layer (3 retries) over `connection` and
/// returns the error it gives up with.
async fn give_up_after<Req, S>(request: Req, connection: S) -> BoxError
where
    Retry<S>: Service<Req, Error = BoxError>,
    <Retry<S> as Service<Req>>::Response: fmt::Debug,
{
    let policy = RetryPolicy::new(RetryConfig {
        max_retries: 3,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
        ..RetryConfig::default()
    });
    policy
        .into_layer()
        .layer(connection)
        .oneshot(request)
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn a_request_lost_once_then_never_sent_is_reported_as_maybe_applied() {
    let error = give_up_after(Read, connection(&[lost::<Answer>, not_sent])).await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(error.is::<MaybeApplied>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_request_never_sent_at_all_is_reported_as_not_sent() {
    let error = give_up_after(Read, connection(&[not_sent::<Answer>])).await;
    assert_eq!(Failure::of(&*error), Failure::NotSent, "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_request_lost_every_time_is_reported_as_lost() {
    let error = give_up_after(Read, connection(&[lost::<Answer>])).await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(!error.is::<MaybeApplied>(), "the last error as it is: {error}");
}

#[tokio::test(start_paused = true)]
async fn a_batch_lost_once_then_never_sent_is_reported_as_maybe_applied() {
    let error = give_up_after(
        Batch::new(vec![Read, Read]),
        connection(&[lost::<Answers>, not_sent]),
    )
    .await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(error.is::<MaybeApplied>(), "{error}");
}

/// The answered request behind a refused one is sent again with it: it
/// was applied once already.
#[tokio::test(start_paused = true)]
async fn a_batch_resent_with_an_answered_request_then_never_sent_is_reported_as_maybe_applied() {
    let error = give_up_after(
        Batch::new(vec![Read, Read]),
        connection(&[busy_then_answered, not_sent]),
    )
    .await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(error.is::<MaybeApplied>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_batch_never_sent_at_all_is_reported_as_not_sent() {
    let error = give_up_after(Batch::new(vec![Read, Read]), connection(&[not_sent::<Answers>])).await;
    assert_eq!(Failure::of(&*error), Failure::NotSent, "{error}");
}
