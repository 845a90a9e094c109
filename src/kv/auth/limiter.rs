//! The limit on failed `AUTH` attempts: a token bucket per peer IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How many failed `AUTH` attempts a peer address may make.
///
/// Each address has a bucket of `burst` attempts that refills by one every
/// `refill`: past the burst, an address gets one attempt per `refill`
/// (defaults: 10, then 5 per second). An `AUTH` that finds its bucket empty
/// is answered `UNAUTHENTICATED` without its token being compared, and
/// closes its connection. A successful `AUTH` gives its attempt back, so
/// clients that know the token are never slowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failed attempts an address may make at once.
    pub burst: u32,
    /// After the burst, one more attempt per this long.
    pub refill: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            burst: 10,
            refill: Duration::from_millis(200),
        }
    }
}

/// The most addresses tracked one by one; past it (after forgetting the
/// full buckets) new addresses share one bucket, so memory stays bounded.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts left, in units of `refill`, as of `at`.
    tokens: u32,
    at: Instant,
}

/// The buckets of every peer address, shared by all connections.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: AuthLimits,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_address: HashMap<IpAddr, Bucket>,
    /// Shared by the addresses that did not fit in `by_address`.
    overflow: Option<Bucket>,
}

impl Limiter {
    pub(crate) fn new(limits: AuthLimits) -> Self {
        Limiter {
            limits: AuthLimits {
                burst: limits.burst.max(1),
                refill: limits.refill,
            },
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes one attempt from `peer`'s bucket; `false` if it is empty.
    pub(crate) fn try_attempt(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = self.bucket(&mut buckets, peer, now);
        self.refill(bucket, now);
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }

    /// Gives back the attempt of an `AUTH` that succeeded.
    pub(crate) fn succeeded(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = self.bucket(&mut buckets, peer, now);
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens + 1).min(self.limits.burst);
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.at);
        let refill = self.limits.refill.max(Duration::from_nanos(1));
        let earned = elapsed.as_nanos() / refill.as_nanos();
        if earned == 0 {
            return;
        }
        let tokens = u128::from(bucket.tokens) + earned;
        bucket.tokens = u32::try_from(tokens.min(u128::from(self.limits.burst))).unwrap_or(self.limits.burst);
        // Keep the remainder, so that a steady trickle earns exactly its rate.
        bucket.at = if bucket.tokens == self.limits.burst {
            now
        } else {
            let spent = refill.saturating_mul(u32::try_from(earned).unwrap_or(u32::MAX));
            bucket.at + spent
        };
    }

    fn bucket<'a>(&self, buckets: &'a mut Buckets, peer: IpAddr, now: Instant) -> &'a mut Bucket {
        let full = Bucket {
            tokens: self.limits.burst,
            at: now,
        };
        if !buckets.by_address.contains_key(&peer) && buckets.by_address.len() >= MAX_TRACKED {
            // A bucket that has refilled is the same as no bucket: forget those.
            let (burst, refill) = (self.limits.burst, self.limits.refill);
            buckets.by_address.retain(|_, bucket| {
                let earned = now.saturating_duration_since(bucket.at).as_nanos() / refill.as_nanos().max(1);
                u128::from(bucket.tokens) + earned < u128::from(burst)
            });
            if buckets.by_address.len() >= MAX_TRACKED {
                return buckets.overflow.get_or_insert(full);
            }
        }
        buckets.by_address.entry(peer).or_insert(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn attempts_allowed(limiter: &Limiter, peer: IpAddr, tries: u32) -> u32 {
        (0..tries).filter(|_| limiter.try_attempt(peer)).count() as u32
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_attempt_per_refill() {
        let limiter = Limiter::new(AuthLimits {
            burst: 3,
            refill: Duration::from_millis(200),
        });
        assert_eq!(attempts_allowed(&limiter, PEER, 100), 3);
        // Another address has its own bucket.
        assert_eq!(attempts_allowed(&limiter, OTHER, 100), 3);
        // Over 10 s of a steady brute force, 50 more attempts: 5 a second.
        let mut allowed = 0;
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            allowed += attempts_allowed(&limiter, PEER, 10);
        }
        assert_eq!(allowed, 50);
        // Left alone, the bucket fills up to the burst, no more.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(attempts_allowed(&limiter, PEER, 100), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_attempt_is_given_back() {
        let limiter = Limiter::new(AuthLimits {
            burst: 2,
            refill: Duration::from_secs(60),
        });
        for _ in 0..100 {
            assert!(limiter.try_attempt(PEER));
            limiter.succeeded(PEER);
        }
        assert_eq!(attempts_allowed(&limiter, PEER, 100), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_sharing_one_bucket_past_the_limit() {
        let limiter = Limiter::new(AuthLimits {
            burst: 1,
            refill: Duration::from_secs(60),
        });
        for i in 0..MAX_TRACKED as u32 {
            assert!(limiter.try_attempt(IpAddr::V4(i.into())));
        }
        let spare = |i: u32| IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
        // Every tracked bucket is empty: newcomers share the overflow one.
        assert!(limiter.try_attempt(spare(1)));
        assert!(!limiter.try_attempt(spare(2)));
        assert!(limiter.buckets.lock().unwrap().by_address.len() <= MAX_TRACKED);
        // Once the tracked buckets refill they are forgotten, and room returns.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.try_attempt(spare(3)));
        assert!(limiter.buckets.lock().unwrap().by_address.len() <= MAX_TRACKED);
    }
}
