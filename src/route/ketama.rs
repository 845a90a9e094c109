//! [`Ketama`]: libmemcached's consistent hashing, so that a routed client
//! shares a memcached cluster with the clients already using it.

use md5::{Digest, Md5};

/// Digests per endpoint: 40 MD5 digests of 4 points each, the 160 points
/// per server of libmemcached's `MEMCACHED_POINTS_PER_SERVER_KETAMA`.
const DIGESTS_PER_ENDPOINT: u32 = 40;

/// The port libmemcached leaves out of a server's name on the continuum.
const DEFAULT_PORT: &str = "11211";

/// Places keys on endpoints as libmemcached's ketama does
/// (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, equal weights), and the many
/// clients that copy it (pylibmc, php-memcached, spymemcached's
/// `KETAMA_HASH`).
///
/// The continuum: for each endpoint `host:port`, the MD5 digests of
/// `"host:port-i"` for `i` in `0..40` — `"host-i"` when the port is 11211,
/// as libmemcached writes it — each cut into four little-endian `u32`
/// points: 160 points per endpoint, sorted. A key's hash is the first four
/// bytes of its MD5 digest, little-endian; its endpoint owns the first point
/// at or after the hash, wrapping around to the first point.
///
/// Names are the endpoints' addresses as written (`127.0.0.1:11212`), as
/// other clients were configured: a client given `localhost:11212` places
/// keys differently from one given `127.0.0.1:11212`, as with libmemcached.
///
/// ```
/// use wirestack::route::Ketama;
///
/// let ring = Ketama::new(["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"]);
/// // Where libmemcached puts "foo" on these three servers.
/// assert_eq!(ring.pick(b"foo"), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Ketama {
    /// `(point, endpoint index)`, sorted by point.
    points: Box<[(u32, usize)]>,
    endpoints: usize,
}

impl Ketama {
    /// The continuum of endpoints identified by `names` (their position is
    /// the index [`pick`](Self::pick) returns).
    pub fn new<N: AsRef<[u8]>>(names: impl IntoIterator<Item = N>) -> Self {
        let mut points = Vec::new();
        let mut endpoints = 0;
        for (index, name) in names.into_iter().enumerate() {
            endpoints += 1;
            let name = continuum_name(name.as_ref());
            for i in 0..DIGESTS_PER_ENDPOINT {
                let mut hasher = Md5::new();
                hasher.update(name);
                hasher.update(format!("-{i}").as_bytes());
                let digest = hasher.finalize();
                for chunk in digest.chunks_exact(4) {
                    let point = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    points.push((point, index));
                }
            }
        }
        // Ties between two endpoints' points (a 2^-32 chance per pair) go
        // to the endpoint listed first.
        points.sort_unstable();
        Ketama {
            points: points.into_boxed_slice(),
            endpoints,
        }
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.endpoints
    }

    /// `true` if there are none.
    pub fn is_empty(&self) -> bool {
        self.endpoints == 0
    }

    /// The index of the endpoint `key` belongs to (0 when there is none).
    pub fn pick(&self, key: &[u8]) -> usize {
        let hash = key_hash(key);
        let at = self.points.partition_point(|&(point, _)| point < hash);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, index)| index)
    }
}

/// A key's place on the continuum: the first four bytes of its MD5,
/// little-endian (libhashkit's `hashkit_md5`).
fn key_hash(key: &[u8]) -> u32 {
    let digest = Md5::digest(key);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// An endpoint's name on the continuum: `host:port`, or `host` alone when
/// the port is memcached's default.
fn continuum_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b':') {
        Some(colon) if &name[colon + 1..] == DEFAULT_PORT.as_bytes() => &name[..colon],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected value below was computed from libmemcached's
    // documented algorithm (a dozen lines of Python's hashlib, in the
    // module's docs' words), not by this code.

    #[test]
    fn points_are_libmemcached_s() {
        // md5("127.0.0.1:11212-0") as four little-endian u32s.
        let ring = Ketama::new(["127.0.0.1:11212"]);
        for point in [647_876_633u32, 3_420_366_637, 96_110_928, 4_175_585_575] {
            assert!(ring.points.iter().any(|&(p, _)| p == point), "{point}");
        }
        assert_eq!(ring.points.len(), 160);
    }

    #[test]
    fn three_servers_place_keys_as_libmemcached_does() {
        let ring = Ketama::new(["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"]);
        assert_eq!(ring.points.len(), 480);
        assert_eq!(ring.points[0], (15_946_801, 1));
        assert_eq!(ring.points[479], (4_292_932_786, 0));
        let placed: Vec<usize> = (0..16).map(|i| ring.pick(format!("k{i}").as_bytes())).collect();
        assert_eq!(placed, [0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 2, 0, 1, 2, 1]);
        assert_eq!(key_hash(b"foo"), 0xdb18_bdac);
        assert_eq!(ring.pick(b"foo"), 0);
        assert_eq!(ring.pick(b"bar"), 1);
        assert_eq!(ring.pick(b"user:42"), 1);
        assert_eq!(ring.pick(b""), 2);
        assert_eq!(ring.pick(b"\xff\x00binary"), 2);
    }

    #[test]
    fn ten_servers_on_the_default_port_drop_it_from_their_names() {
        let names: Vec<String> = (1..=10).map(|i| format!("10.0.1.{i}:11211")).collect();
        let ring = Ketama::new(&names);
        let placed: Vec<usize> = (0..16).map(|i| ring.pick(format!("k{i}").as_bytes())).collect();
        assert_eq!(placed, [3, 7, 5, 3, 8, 8, 4, 2, 4, 4, 2, 9, 6, 5, 2, 8]);
        // The same servers named without the port are the same continuum.
        let bare = Ketama::new((1..=10).map(|i| format!("10.0.1.{i}")));
        assert_eq!(bare.points, ring.points);
    }

    #[test]
    fn a_key_past_the_last_point_wraps_to_the_first() {
        let ring = Ketama::new(["a:1", "b:2"]);
        let last = ring.points[ring.points.len() - 1].0;
        // Search for a key that hashes past the last point: bounded, and
        // with 320 points one in a few hundred keys does.
        let key = (0..100_000)
            .map(|i| format!("wrap{i}"))
            .find(|key| key_hash(key.as_bytes()) > last)
            .expect("a key past the last point");
        assert_eq!(ring.pick(key.as_bytes()), ring.points[0].1);
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let all = Ketama::new(["a:1", "b:2", "c:3"]);
        let two = Ketama::new(["a:1", "b:2"]);
        for i in 0..10_000 {
            let key = format!("key{i}");
            let before = all.pick(key.as_bytes());
            if before != 2 {
                assert_eq!(two.pick(key.as_bytes()), before, "{key}");
            }
        }
    }
}
