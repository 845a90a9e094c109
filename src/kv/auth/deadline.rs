//! [`AuthDeadline`]: a connection that has not authenticated in time is
//! closed, so that silent peers cannot hold connection slots.

use super::{Reply, RequireAuth};
use crate::kv::{Incoming, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower::Service;

/// A connection did not authenticate within its deadline: the error with
/// which [`AuthDeadline`] ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no successful AUTH within {limit:?} of connecting; closing the connection")]
pub struct AuthTimedOut {
    /// The deadline, [`KvServerConfig::auth_timeout`](crate::kv::KvServerConfig::auth_timeout).
    pub limit: Duration,
}

/// [`RequireAuth`] with a deadline: until the connection has authenticated,
/// its readiness fails once `limit` has passed since it was made (at
/// accept), and the server closes a connection whose service fails. Once
/// authenticated the deadline is gone; a gate without a token
/// ([`RequireAuth::open`]) has none.
///
/// The deadline is counted from accept, not from the last request, so a
/// peer cannot hold its connection by sending unauthenticated requests.
#[derive(Debug)]
pub struct AuthDeadline<S> {
    inner: RequireAuth<S>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
}

impl<S> AuthDeadline<S> {
    /// `inner`, which must authenticate within `limit` from now (`None`:
    /// no deadline).
    pub fn new(inner: RequireAuth<S>, limit: Option<Duration>) -> Self {
        let deadline = limit
            .filter(|_| !inner.is_authenticated())
            .map(|limit| (Box::pin(tokio::time::sleep(limit)), limit));
        AuthDeadline { inner, deadline }
    }

    /// The gate inside.
    pub fn get_ref(&self) -> &RequireAuth<S> {
        &self.inner
    }

    /// `true` once this connection may send every command (see
    /// [`RequireAuth::is_authenticated`]): the KV server's
    /// [`Admission`](crate::server::Admission) hook, so that a connection
    /// sends only small frames, and takes nothing of the shared buffer
    /// pool, before it has authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.inner.is_authenticated()
    }
}

impl<S> Service<Incoming> for AuthDeadline<S>
where
    S: Service<Incoming, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Reply;
    type Error = AuthTimedOut;
    type Future = AuthDeadlineFuture<<RequireAuth<S> as Service<Incoming>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.inner.is_authenticated() {
            self.deadline = None;
        }
        if let Some((sleep, limit)) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(AuthTimedOut { limit: *limit }));
            }
        }
        self.inner.poll_ready(cx).map_err(|never| match never {})
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        AuthDeadlineFuture(self.inner.call(incoming))
    }
}

/// [`AuthDeadline`]'s future: the gate's, whose error cannot happen.
#[derive(Debug)]
#[pin_project::pin_project]
pub struct AuthDeadlineFuture<F>(#[pin] F);

impl<F> Future for AuthDeadlineFuture<F>
where
    F: Future<Output = Result<Reply, std::convert::Infallible>>,
{
    type Output = Result<Reply, AuthTimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().0.poll(cx).map_err(|never| match never {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::auth::{AuthLimits, AuthToken, Authenticator};
    use crate::kv::Request;
    use bytes::Bytes;
    use futures::future::poll_fn;

    fn gate(
        open: bool,
    ) -> RequireAuth<impl Service<Incoming, Response = Response, Error = std::convert::Infallible>> {
        let inner = tower::service_fn(|_: Incoming| futures::future::ok(Response::ok_empty()));
        let peer = "192.0.2.1:5000".parse().unwrap();
        if open {
            return RequireAuth::open(inner, peer);
        }
        Authenticator::new(AuthToken::new("t").unwrap(), AuthLimits::default()).require(inner, peer)
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_fails_at_the_deadline_until_authenticated() {
        let limit = Duration::from_secs(3);
        let mut silent = AuthDeadline::new(gate(false), Some(limit));
        assert!(poll_fn(|cx| silent.poll_ready(cx)).await.is_ok());
        tokio::time::advance(Duration::from_millis(2_900)).await;
        assert!(poll_fn(|cx| silent.poll_ready(cx)).await.is_ok());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(
            poll_fn(|cx| silent.poll_ready(cx)).await,
            Err(AuthTimedOut { limit })
        );

        let mut prompt = AuthDeadline::new(gate(false), Some(limit));
        let auth = Incoming::Request(Request::Auth {
            token: Bytes::from_static(b"t"),
        });
        assert!(poll_fn(|cx| prompt.poll_ready(cx)).await.is_ok());
        assert_eq!(
            prompt.call(auth).await.unwrap(),
            Reply::keep(Response::ok_empty())
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            poll_fn(|cx| prompt.poll_ready(cx)).await.is_ok(),
            "authenticated: no deadline"
        );

        let mut open = AuthDeadline::new(gate(true), Some(limit));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            poll_fn(|cx| open.poll_ready(cx)).await.is_ok(),
            "no token: no deadline"
        );
    }
}
