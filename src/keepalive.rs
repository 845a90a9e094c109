//! Keepalive: finding a connection whose peer stopped answering.
//!
//! A peer can stop answering without closing anything: its process is
//! stopped (SIGSTOP), its host is gone, a partition drops its packets. TCP
//! tells nobody for minutes, and until then every caller on the connection
//! waits for its own deadline — or forever, without one. Both multiplexers
//! ([`pipeline`](crate::pipeline) and [`multiplex`](crate::multiplex)) can
//! watch their connection instead, with one [`Keepalive`] setting:
//!
//! * when nothing has been received for an interval
//!   ([`Keepalive::interval`]) — the connection idle, or requests
//!   outstanding and no answer coming — the connection task sends the
//!   protocol's ping;
//! * when nothing at all is received within [`Keepalive::timeout`] after
//!   that ping (its answer or any other), the connection is failed like a
//!   reset: every caller waiting on it gets the multiplexer's "lost with the
//!   connection" error at once, and a reconnect layer above replaces it.
//!
//! Any answer counts as a sign of life, not only the ping's. The watch
//! costs one timer per connection, re-armed once per interval, and a flag
//! set per answer: no clock is read per request. The price of the flag is
//! precision: the timer checks it once per interval, so silence is noticed
//! between one and two intervals after the last answer, and the connection
//! fails between `interval + timeout` and `2 × interval + timeout` after it.
//!
//! A response that takes longer than `interval + timeout` to arrive *whole*
//! (a very large value over a slow link) is taken for silence: choose the
//! bounds above the time your largest answer needs.
//!
//! This is finagle mux's `Tping` and HTTP/2's PING used as a liveness check,
//! as hyper's `keep_alive_interval` and `keep_alive_timeout` do for HTTP/2.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// When a connection sends pings and how long it waits for a sign of life.
///
/// The defaults (an interval of 500 ms, a timeout of 900 ms) fail the
/// connection to a stopped peer 1.4 to 1.9 s after its last answer: within
/// 2 s. An idle connection pings about once a second.
///
/// ```
/// use std::time::Duration;
/// use wirestack::keepalive::Keepalive;
///
/// let keepalive = Keepalive::default().interval(Duration::from_secs(5)).timeout(Duration::from_secs(2));
/// assert_eq!(keepalive.get_interval(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    interval: Duration,
    timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(900),
        }
    }
}

impl Keepalive {
    /// The default setting: see [`Keepalive`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How often the connection checks that something was received since
    /// the last check, and pings when nothing was (default 500 ms; at least
    /// 1 ms): silence is noticed one to two intervals after the last answer.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long after a ping the connection waits for anything from the
    /// peer before it is failed (default 900 ms; at least 1 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The interval set.
    pub fn get_interval(&self) -> Duration {
        self.interval
    }

    /// The timeout set.
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

/// What the connection task must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send the protocol's ping.
    Ping,
    /// Nothing came within the timeout after a ping: fail the connection.
    Dead,
}

/// One connection's watch: a timer and a flag.
#[derive(Debug)]
pub(crate) struct Watch {
    setting: Keepalive,
    /// Armed on the first poll (so that a watch can be made outside a
    /// runtime, with the connection task that holds it).
    timer: Option<Pin<Box<Sleep>>>,
    /// Something was received since the timer was last armed.
    heard: bool,
    /// A ping was sent and nothing has been received since.
    pinged: bool,
}

impl Watch {
    pub(crate) fn new(setting: Keepalive) -> Self {
        Watch {
            setting,
            timer: None,
            heard: false,
            pinged: false,
        }
    }

    /// How long after a ping the connection is given up.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.setting.timeout
    }

    /// Something was received from the peer.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    /// Whether a ping is outstanding (for tests and traces).
    #[cfg(test)]
    pub(crate) fn pinged(&self) -> bool {
        self.pinged
    }

    /// Polls the timer. `Ready(Ping)`: send a ping now (the timer is armed
    /// for its timeout); `Ready(Dead)`: fail the connection; `Pending`: the
    /// task will be woken when the timer is due.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Action> {
        let interval = self.setting.interval;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        loop {
            futures::ready!(timer.as_mut().poll(cx));
            let now = Instant::now();
            if std::mem::take(&mut self.heard) {
                self.pinged = false;
                timer.as_mut().reset(now + interval);
                continue;
            }
            if self.pinged {
                return Poll::Ready(Action::Dead);
            }
            self.pinged = true;
            timer.as_mut().reset(now + self.setting.timeout);
            return Poll::Ready(Action::Ping);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    fn poll(watch: &mut Watch) -> Poll<Action> {
        watch.poll(&mut Context::from_waker(noop_waker_ref()))
    }

    #[tokio::test(start_paused = true)]
    async fn silence_pings_then_fails_and_any_answer_keeps_it_alive() {
        let setting = Keepalive::default()
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(500));
        let mut watch = Watch::new(setting);
        assert_eq!(poll(&mut watch), Poll::Pending);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(poll(&mut watch), Poll::Pending);
        watch.heard();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(poll(&mut watch), Poll::Pending, "heard in the interval: no ping");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            poll(&mut watch),
            Poll::Ready(Action::Ping),
            "a silent interval pings"
        );
        assert!(watch.pinged());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(poll(&mut watch), Poll::Pending);
        watch.heard();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(poll(&mut watch), Poll::Pending, "the pong came in time");
        assert!(!watch.pinged());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(poll(&mut watch), Poll::Ready(Action::Ping));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            poll(&mut watch),
            Poll::Ready(Action::Dead),
            "no pong within the timeout"
        );
    }
}
