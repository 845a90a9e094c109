//! The router on a paused clock: ejection, failing fast, probing back.

use super::*;
use crate::backoff::Backoff;
use crate::failure::Failure;
use crate::BoxError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, ServiceExt};

#[derive(Debug, Clone)]
struct Get(&'static str);

impl RouteKey for Get {
    fn route_key(&self) -> Option<&[u8]> {
        Some(self.0.as_bytes())
    }
}

impl Probe for Get {
    fn probe() -> Self {
        Get("")
    }
}

/// An endpoint that answers with its name while `up`, and otherwise fails
/// after a second, as a request that times out would.
fn endpoint(
    name: &'static str,
    up: Arc<AtomicBool>,
) -> impl tower::Service<Get, Response = &'static str, Error = BoxError, Future = impl Send> + Clone {
    service_fn(move |_: Get| {
        let up = up.load(Ordering::Relaxed);
        async move {
            if up {
                Ok(name)
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err(BoxError::from(crate::deadline::Elapsed::new()))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_fails_at_once_and_a_probe_brings_it_back() {
    let (a_up, b_up) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
    let config = HealthConfig {
        failures: 2,
        window: Duration::from_secs(10),
        probe_backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(100)),
        probe_timeout: Duration::from_secs(5),
    };
    let router = Router::new(
        [("a", endpoint("a", a_up.clone())), ("b", endpoint("b", b_up))],
        config,
    )
    .unwrap();
    let handle = router.handle();
    let (a_keys, b_keys): (Vec<&'static str>, Vec<&'static str>) =
        ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"]
            .into_iter()
            .partition(|key| router.endpoint_of(key.as_bytes()) == "a");
    assert!(!a_keys.is_empty() && !b_keys.is_empty());

    a_up.store(false, Ordering::Relaxed);
    for _ in 0..2 {
        let error = router.clone().oneshot(Get(a_keys[0])).await.unwrap_err();
        assert_eq!(Failure::of(&*error), Failure::TimedOut);
        assert_eq!(error.downcast_ref::<EndpointError>().unwrap().endpoint(), "a");
    }
    assert_eq!(handle.state("a"), Some(EndpointState::Ejected));

    // Ejected: no time passes before the error, and it says "not sent".
    let before = Instant::now();
    let error = router.clone().oneshot(Get(a_keys[0])).await.unwrap_err();
    assert_eq!(Instant::now(), before);
    assert_eq!(error.downcast_ref::<Ejected>().unwrap().endpoint(), "a");
    assert_eq!(Failure::of(&*error), Failure::NotSent);
    // The other endpoint is unaffected.
    assert_eq!(router.clone().oneshot(Get(b_keys[0])).await.unwrap(), "b");

    // Probes fail (each after its timeout of one second) until it is up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(handle.stats()[0].probe_failures >= 1, "{:?}", handle.stats());
    a_up.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(handle.state("a"), Some(EndpointState::Up));
    assert_eq!(router.clone().oneshot(Get(a_keys[0])).await.unwrap(), "a");
    assert_eq!(handle.stats()[0].ejections, 1);
}

#[test]
fn a_router_needs_distinct_endpoints() {
    let up = Arc::new(AtomicBool::new(true));
    type Any = tower::util::BoxCloneService<Get, &'static str, BoxError>;
    let no_endpoint = Router::<Accrual<Any>>::new(Vec::<(&str, Any)>::new(), HealthConfig::default());
    assert_eq!(no_endpoint.map(drop).unwrap_err(), RouteError::NoEndpoints);
    let twice = Router::new(
        [("a", endpoint("a", up.clone())), ("a", endpoint("a", up))],
        HealthConfig::default(),
    );
    assert_eq!(twice.map(drop).unwrap_err(), RouteError::Duplicate("a".into()));
}

impl crate::retry::Idempotent for Get {
    fn is_idempotent(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct Reply;

impl crate::retry::RetryableResponse for Reply {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// A call already inside an endpoint's stack when the endpoint is ejected
/// (waiting in the retry layer's backoff) stops there: its next attempt
/// meets the ejection, which is not retried, instead of retrying until its
/// retries or its deadline run out.
#[tokio::test(start_paused = true)]
async fn a_call_retrying_when_its_endpoint_is_ejected_ends_with_the_ejection() {
    use crate::reconnect::error::Disconnected;
    use crate::retry::{RetryConfig, RetryPolicy};
    use std::sync::atomic::AtomicU32;
    use tower::Layer;

    // Every attempt fails at once, not sent (no connection).
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let dead = service_fn(move |_: Get| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Err::<Reply, BoxError>(Disconnected::new(None).into()) }
    });
    let health = HealthConfig {
        failures: 2,
        window: Duration::from_secs(10),
        // Probes far off: the endpoint stays ejected for this test.
        probe_backoff: Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600)),
        probe_timeout: Duration::from_secs(1),
    };
    let info = endpoint::EndpointInfo::new("a".into(), None);
    let observed = Accrual::new(dead, info.clone(), health);
    let policy = RetryPolicy::new(RetryConfig {
        max_retries: 8,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(100)),
        ..RetryConfig::default()
    });
    let retries = policy.handle();
    let error = policy
        .into_layer()
        .layer(observed)
        .oneshot(Get("k"))
        .await
        .unwrap_err();

    assert_eq!(info.health.state(), EndpointState::Ejected);
    assert!(error.is::<Ejected>(), "{error}");
    assert_eq!(Failure::of(&*error), Failure::NotSent);
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        2,
        "two attempts reached the service"
    );
    assert_eq!(
        retries.stats().retries,
        2,
        "and one more met the ejection: not retried"
    );
}

/// An endpoint that answers a single request, and loses its connection
/// under every batch: each request of one fails as "may have been sent".
#[derive(Clone)]
struct Lossy {
    batches: Arc<std::sync::atomic::AtomicU32>,
}

impl tower::Service<Get> for Lossy {
    type Response = &'static str;
    type Error = BoxError;
    type Future = std::future::Ready<Result<&'static str, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Get) -> Self::Future {
        std::future::ready(Ok("pong"))
    }
}

impl tower::Service<crate::batch::Batch<Get>> for Lossy {
    type Response = crate::batch::BatchResponse<&'static str, crate::pipeline::Error>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: crate::batch::Batch<Get>) -> Self::Future {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let lost = batch
            .requests()
            .iter()
            .map(|_| Err(crate::pipeline::Error::Closed));
        std::future::ready(Ok(lost.collect()))
    }
}

/// A batch's part counts once against its endpoint, as its first failed
/// answer, though the part's call succeeded: two such parts eject it.
#[tokio::test(start_paused = true)]
async fn a_batch_part_whose_answers_failed_counts_once_against_its_endpoint() {
    use crate::batch::Batch;
    let config = HealthConfig {
        failures: 2,
        window: Duration::from_secs(10),
        // Probes far off: the endpoint stays ejected for this test.
        probe_backoff: Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600)),
        probe_timeout: Duration::from_secs(1),
    };
    let batches = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let lossy = Lossy {
        batches: batches.clone(),
    };
    let router = Router::new([("a", lossy.clone()), ("b", lossy)], config).unwrap();
    let handle = router.handle();
    let a_keys: Vec<&'static str> = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"]
        .into_iter()
        .filter(|key| router.endpoint_of(key.as_bytes()) == "a")
        .collect();
    assert!(a_keys.len() >= 2, "{a_keys:?}");
    let batch = || Batch::new(a_keys.iter().map(|&key| Get(key)).collect());

    let answers = router.clone().oneshot(batch()).await.unwrap();
    assert_eq!(answers.len(), a_keys.len());
    for answer in &answers {
        let error = answer.as_ref().unwrap_err();
        assert_eq!(error.downcast_ref::<EndpointError>().unwrap().endpoint(), "a");
        assert_eq!(Failure::of(&**error), Failure::Connection);
    }
    let a = &handle.stats()[0];
    assert_eq!((a.requests, a.failures), (1, 1), "{a:?}");
    assert_eq!(a.state, EndpointState::Up);

    router.clone().oneshot(batch()).await.unwrap();
    assert_eq!(handle.state("a"), Some(EndpointState::Ejected));
    assert_eq!(handle.stats()[0].ejections, 1);

    // Ejected: the part fails at once, without its stack.
    let answers = router.clone().oneshot(batch()).await.unwrap();
    assert!(answers
        .iter()
        .all(|answer| answer.as_ref().unwrap_err().is::<Ejected>()));
    assert_eq!(batches.load(Ordering::Relaxed), 2);
    assert_eq!(handle.stats()[1].requests, 0, "b was not sent anything");
}

/// An endpoint that answers a batch with its name for each request, and
/// counts the batches it was sent.
#[derive(Clone)]
struct Named {
    name: &'static str,
    batches: Arc<std::sync::atomic::AtomicU32>,
}

impl tower::Service<Get> for Named {
    type Response = (&'static str, &'static str);
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Get) -> Self::Future {
        std::future::ready(Ok((self.name, request.0)))
    }
}

impl tower::Service<crate::batch::Batch<Get>> for Named {
    type Response = crate::batch::BatchResponse<(&'static str, &'static str), crate::pipeline::Error>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: crate::batch::Batch<Get>) -> Self::Future {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let answers = batch
            .into_requests()
            .into_iter()
            .map(|get| Ok((self.name, get.0)));
        std::future::ready(Ok(answers.collect()))
    }
}

/// Under either rendezvous placement, a batch over five endpoints sends
/// each key to the endpoint the placement names — one part per endpoint
/// in use — and puts the answers back in the batch's order.
#[tokio::test]
async fn a_batch_goes_where_the_placement_says_in_one_part_per_endpoint() {
    use crate::batch::Batch;
    const NAMES: [&str; 5] = [
        "10.0.0.1:7878",
        "10.0.0.2:7878",
        "10.0.0.3:7878",
        "10.0.0.4:7878",
        "10.0.0.5:7878",
    ];
    const KEYS: [&str; 12] = [
        "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11",
    ];
    for placement in [Placement::Rendezvous, Placement::RendezvousTable] {
        let batches = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let endpoints = NAMES.map(|name| {
            let service = Named {
                name,
                batches: batches.clone(),
            };
            (name, service)
        });
        let router = Router::new(endpoints, HealthConfig::default())
            .unwrap()
            .with_placement(placement);
        let expected: Vec<&str> = KEYS
            .iter()
            .map(|key| match placement {
                Placement::RendezvousTable => NAMES[RendezvousTable::new(NAMES).pick(key.as_bytes())],
                _ => NAMES[Rendezvous::new(NAMES).pick(key.as_bytes())],
            })
            .collect();
        for (key, name) in KEYS.iter().zip(&expected) {
            assert_eq!(router.endpoint_of(key.as_bytes()), *name, "{placement:?}");
        }
        let answers = router
            .clone()
            .oneshot(Batch::new(KEYS.iter().map(|&key| Get(key)).collect()))
            .await
            .unwrap();
        let answered: Vec<(&str, &str)> = answers.into_iter().map(|answer| answer.unwrap()).collect();
        let wanted: Vec<(&str, &str)> = expected.iter().copied().zip(KEYS).collect();
        assert_eq!(answered, wanted, "{placement:?}");
        let in_use = expected.iter().collect::<std::collections::HashSet<_>>().len();
        assert_eq!(batches.load(Ordering::Relaxed) as usize, in_use, "{placement:?}");
    }
}
