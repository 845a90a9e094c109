//! The pipeline's ping: a request of the caller's protocol, made by a
//! function given to [`Builder::keepalive`](super::Builder::keepalive).
//!
//! The pipeline writes plain requests, so it cannot make a ping itself: the
//! builder carries the setting as a type parameter — [`NoPing`] by default,
//! [`Ping<Req>`] once a ping is given — and [`Pinger<Req>`] is what the
//! builder's `build` asks of it.

use std::fmt;

/// The default: no ping, and so no keepalive.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPing;

/// A ping made by a function: the request the connection task writes when
/// the connection has been silent for the keepalive interval.
pub struct Ping<Req> {
    make: fn() -> Req,
}

impl<Req> Ping<Req> {
    pub(super) fn new(make: fn() -> Req) -> Self {
        Ping { make }
    }
}

impl<Req> Clone for Ping<Req> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req> Copy for Ping<Req> {}

impl<Req> fmt::Debug for Ping<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ping").finish_non_exhaustive()
    }
}

/// A pipeline's ping setting for requests of type `Req`: implemented by
/// [`NoPing`] for every request type and by [`Ping<Req>`] for its own.
pub trait Pinger<Req>: Clone + fmt::Debug + Send + Sync + 'static {
    /// The function that makes a ping, if there is one.
    fn ping(&self) -> Option<fn() -> Req>;
}

impl<Req> Pinger<Req> for NoPing {
    fn ping(&self) -> Option<fn() -> Req> {
        None
    }
}

impl<Req: 'static> Pinger<Req> for Ping<Req> {
    fn ping(&self) -> Option<fn() -> Req> {
        Some(self.make)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{pair, settle, Peer};
    use super::super::{Builder, Error, Pipeline};
    use crate::keepalive::Keepalive;
    use std::time::Duration;
    use tokio::time::Instant;
    use tower::{Service, ServiceExt};

    fn connect() -> (Pipeline<String, String>, Peer<String, String>) {
        let keepalive = Keepalive::new()
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(500));
        let (transport, peer) = pair(16);
        let pipeline = Builder::new()
            .keepalive(keepalive, || "PING".to_string())
            .spawn(transport);
        (pipeline, peer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_gets_the_ping_then_the_connection_fails() {
        let (mut pipeline, mut peer) = connect();
        ServiceExt::<String>::ready(&mut pipeline).await.expect("ready");
        let call = pipeline.call("GET a".to_string());
        settle().await;
        assert_eq!(peer.read_all(), ["GET a"]);
        tokio::time::advance(Duration::from_millis(999)).await;
        settle().await;
        assert!(peer.read_all().is_empty(), "no ping before the interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(peer.read_all(), ["PING"], "the user's ping, in line");
        tokio::time::advance(Duration::from_millis(500)).await;
        settle().await;
        let lost = tokio::time::timeout(Duration::from_secs(60), call).await;
        assert!(
            matches!(lost, Ok(Err(Error::Unresponsive(after))) if after == Duration::from_millis(500)),
            "{lost:?}"
        );
        assert!(matches!(pipeline.broken(), Some(Error::Unresponsive(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answering_peer_keeps_it_and_the_pings_answers_go_to_nobody() {
        let (mut pipeline, mut peer) = connect();
        settle().await;
        let started = Instant::now();
        for round in 0..10 {
            // Wait for the ping, 100 ms at a time.
            let since = Instant::now();
            loop {
                tokio::time::advance(Duration::from_millis(100)).await;
                settle().await;
                assert!(pipeline.broken().is_none(), "{:?}", pipeline.broken());
                if !peer.read_all().is_empty() {
                    break;
                }
                assert!(since.elapsed() <= Duration::from_millis(1500), "no ping came");
            }
            // A caller's request goes out behind the ping; the first answer
            // is the ping's, the second the caller's.
            ServiceExt::<String>::ready(&mut pipeline).await.expect("ready");
            let call = pipeline.call(format!("GET {round}"));
            settle().await;
            assert_eq!(peer.read_all(), [format!("GET {round}")]);
            tokio::time::advance(Duration::from_millis(400)).await;
            peer.send("PONG".to_string());
            peer.send(format!("VALUE {round}"));
            let answer = tokio::time::timeout(Duration::from_secs(60), call).await;
            assert_eq!(
                answer.expect("in time").expect("answered"),
                format!("VALUE {round}")
            );
        }
        assert!(started.elapsed() > Duration::from_secs(10));
    }
}
