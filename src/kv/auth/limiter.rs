//! The limit on failed `AUTH` attempts: a token bucket per peer IP address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How many failed `AUTH` attempts a peer address may make.
///
/// Each address has a bucket of `burst` failures that refills by one every
/// `refill`: past the burst, an address gets one failure per `refill`
/// (defaults: 10, then 5 per second). The token is compared first and only
/// a wrong one is charged, so clients that know the token are never slowed
/// — not even while another client behind the same address (a NAT, a proxy)
/// guesses. A wrong token from an address whose bucket is empty is answered
/// `too many failed AUTH attempts`, logged at `debug` instead of `warn`, and
/// closes its connection like any wrong token.
///
/// The limit bounds the log and tells a guesser it was noticed; what bounds
/// how fast a guesser can try is that each wrong token costs a connection
/// (and, with
/// [`ServeConfig::max_connections_per_address`](crate::server::ServeConfig::max_connections_per_address),
/// how many one host may hold), and the token's length: use 32 random bytes.
///
/// Past 4,096 addresses tracked one by one, new addresses share a bucket
/// per network — an IPv4 /24 or an IPv6 /64 — so one network's guesses
/// never touch another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failed attempts an address may make at once.
    pub burst: u32,
    /// After the burst, one more failed attempt per this long.
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
/// full buckets) new addresses share one bucket per network.
const MAX_TRACKED: usize = 4096;

/// The most networks tracked for the addresses past [`MAX_TRACKED`]; past
/// both, the rest share one last bucket, so memory stays bounded.
const MAX_NETWORKS: usize = 1024;

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
    /// Addresses that did not fit in `by_address`, by their /24 or /64.
    by_network: HashMap<IpAddr, Bucket>,
    /// Shared by the networks that did not fit in `by_network` either.
    overflow: Option<Bucket>,
}

/// The network `peer` is in, for the shared buckets: its IPv4 /24 or its
/// IPv6 /64 (an IPv4-mapped IPv6 address counts as IPv4).
fn network(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & !0xff)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
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

    /// Charges one failed attempt to `peer`'s bucket; `false` if it was
    /// already empty (the address is over its limit). A successful `AUTH`
    /// is never charged, so it needs no call.
    pub(crate) fn failed(&self, peer: IpAddr) -> bool {
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
        if self.room(&mut buckets.by_address, peer, MAX_TRACKED, now) {
            return buckets.by_address.entry(peer).or_insert(full);
        }
        let network = network(peer);
        if self.room(&mut buckets.by_network, network, MAX_NETWORKS, now) {
            return buckets.by_network.entry(network).or_insert(full);
        }
        buckets.overflow.get_or_insert(full)
    }

    /// `true` if `map` has `key` or room for it (after forgetting the
    /// buckets that have refilled: a full bucket is the same as none).
    fn room(&self, map: &mut HashMap<IpAddr, Bucket>, key: IpAddr, cap: usize, now: Instant) -> bool {
        if map.contains_key(&key) || map.len() < cap {
            return true;
        }
        let (burst, refill) = (self.limits.burst, self.limits.refill);
        map.retain(|_, bucket| {
            let earned = now.saturating_duration_since(bucket.at).as_nanos() / refill.as_nanos().max(1);
            u128::from(bucket.tokens) + earned < u128::from(burst)
        });
        map.len() < cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn failures_allowed(limiter: &Limiter, peer: IpAddr, tries: u32) -> u32 {
        (0..tries).filter(|_| limiter.failed(peer)).count() as u32
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_failure_per_refill() {
        let limiter = Limiter::new(AuthLimits {
            burst: 3,
            refill: Duration::from_millis(200),
        });
        assert_eq!(failures_allowed(&limiter, PEER, 100), 3);
        // Another address has its own bucket.
        assert_eq!(failures_allowed(&limiter, OTHER, 100), 3);
        // Over 10 s of a steady brute force, 50 more failures: 5 a second.
        let mut allowed = 0;
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            allowed += failures_allowed(&limiter, PEER, 10);
        }
        assert_eq!(allowed, 50);
        // Left alone, the bucket fills up to the burst, no more.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(failures_allowed(&limiter, PEER, 100), 3);
    }

    /// Fills every tracked slot with an address whose bucket is empty.
    fn fill_tracked(limiter: &Limiter) {
        for i in 0..MAX_TRACKED as u32 {
            // 10.0.0.0/8 and up: none in the networks the tests use below.
            assert!(limiter.failed(IpAddr::V4((0x0a00_0000 + i).into())));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_tracked_addresses_each_network_has_its_own_bucket() {
        let limiter = Limiter::new(AuthLimits {
            burst: 2,
            refill: Duration::from_secs(60),
        });
        fill_tracked(&limiter);
        // Newcomers from one /24 share a bucket, and spend it...
        let in_a = |host: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, host));
        assert_eq!(failures_allowed(&limiter, in_a(7), 5), 2);
        assert!(!limiter.failed(in_a(8)));
        // ...while another /24 keeps its own.
        let in_b = |host: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 101, host));
        assert_eq!(failures_allowed(&limiter, in_b(7), 5), 2);
        // IPv6 newcomers share per /64: a whole /64 is one host's.
        let v6 = |net: u16, host: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, net, 0, 0, 0, host));
        assert_eq!(failures_allowed(&limiter, v6(1, 1), 5), 2);
        assert!(!limiter.failed(v6(1, 2)));
        assert_eq!(failures_allowed(&limiter, v6(2, 1), 5), 2);
        let buckets = limiter.buckets.lock().unwrap();
        assert!(buckets.by_address.len() <= MAX_TRACKED);
        assert_eq!(buckets.by_network.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_one_last_bucket_past_both_limits() {
        let limiter = Limiter::new(AuthLimits {
            burst: 1,
            refill: Duration::from_secs(60),
        });
        fill_tracked(&limiter);
        for i in 0..MAX_NETWORKS as u32 {
            assert!(limiter.failed(IpAddr::V4((0xc000_0000 + (i << 8)).into())));
        }
        let spare = |i: u32| IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64));
        // Every tracked bucket is empty: newcomers share the last one.
        assert!(limiter.failed(spare(1)));
        assert!(!limiter.failed(spare(2)));
        {
            let buckets = limiter.buckets.lock().unwrap();
            assert!(buckets.by_address.len() <= MAX_TRACKED);
            assert!(buckets.by_network.len() <= MAX_NETWORKS);
        }
        // Once the tracked buckets refill they are forgotten, and room returns.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.failed(spare(3)));
        assert!(limiter.buckets.lock().unwrap().by_address.len() <= MAX_TRACKED);
    }
}
