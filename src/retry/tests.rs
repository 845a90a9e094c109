//! The retry layer's claims about what a caller learns when it gives up.

use super::{Idempotent, RetryConfig, RetryPolicy, RetryableResponse};
use crate::backoff::Backoff;
use crate::failure::{BoxError, Failure};
use crate::pipeline;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Layer, ServiceExt};

#[derive(Debug, Clone)]
struct Read;
impl Idempotent for Read {
    fn is_idempotent(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct Answer;
impl RetryableResponse for Answer {
    fn is_retryable(&self) -> bool {
        false
    }
}

fn lost() -> BoxError {
    pipeline::Error::Closed.into()
}

fn not_sent() -> BoxError {
    pipeline::Error::NotSent(Arc::new(pipeline::Error::Closed)).into()
}

/// Sends `Read` through a retry layer (3 retries) over a connection whose
/// attempts fail as `failures` says, in order.
async fn give_up_after(failures: &'static [fn() -> BoxError]) -> BoxError {
    let calls = Arc::new(AtomicU32::new(0));
    let service = service_fn(move |_: Read| {
        let call = calls.fetch_add(1, Ordering::Relaxed) as usize;
        async move { Err::<Answer, _>(failures[call.min(failures.len() - 1)]()) }
    });
    let policy = RetryPolicy::new(RetryConfig {
        max_retries: 3,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
        ..RetryConfig::default()
    });
    policy
        .into_layer()
        .layer(service)
        .oneshot(Read)
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn a_request_lost_once_then_never_sent_is_reported_as_maybe_applied() {
    let error = give_up_after(&[lost, not_sent]).await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(error.is::<super::MaybeApplied>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_request_never_sent_at_all_is_reported_as_not_sent() {
    let error = give_up_after(&[not_sent]).await;
    assert_eq!(Failure::of(&*error), Failure::NotSent, "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_request_lost_every_time_is_reported_as_lost() {
    let error = give_up_after(&[lost]).await;
    assert_eq!(Failure::of(&*error), Failure::Connection, "{error}");
    assert!(
        !error.is::<super::MaybeApplied>(),
        "the last error as it is: {error}"
    );
}
