//! [`Rendezvous`]: which endpoint a key belongs to.

/// Places keys on endpoints by rendezvous (highest random weight) hashing,
/// with minimal movement.
///
/// Every endpoint gets a score for a key, and the key belongs to the
/// endpoint with the highest. A key's scores for the other endpoints do not
/// change when one is added, so adding an endpoint to `n` moves only the keys
/// it now wins — `1/(n+1)` of them in expectation — and never moves a key
/// between two old endpoints; removing one moves only its own keys. The
/// share of keys per endpoint is even in expectation, without virtual nodes.
///
/// The hashes are fixed (FNV-1a over the bytes, then the 64-bit finalizer of
/// MurmurHash3), not seeded per process: every client, in any process,
/// places a key on the same endpoint when it is given the same endpoint
/// names (in any order).
///
/// A lookup costs one hash of the key and one finalizer per endpoint (about
/// 55 ns over 8 endpoints, 276 ns over 100: `cargo bench --bench
/// placement`): for the tens of endpoints a client routes over, less than a
/// ring's binary search misses in cache. Over hundreds,
/// [`RendezvousTable`](super::RendezvousTable) keeps the same guarantees at
/// one table read per key, placing keys differently.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    seeds: Box<[u64]>,
}

impl Rendezvous {
    /// Endpoints identified by `names` (their position is the index
    /// [`pick`](Self::pick) returns).
    pub fn new<N: AsRef<[u8]>>(names: impl IntoIterator<Item = N>) -> Self {
        Rendezvous {
            seeds: names
                .into_iter()
                .map(|name| fmix64(fnv1a(name.as_ref())))
                .collect(),
        }
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.seeds.len()
    }

    /// `true` if there are none.
    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }

    /// The index of the endpoint `key` belongs to (0 when there is none).
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(fnv1a(key))
    }

    /// The index of the endpoint a key whose hash is `hash` belongs to: the
    /// highest score, the first endpoint listed on a tie.
    pub(super) fn pick_hash(&self, hash: u64) -> usize {
        // Four lanes, each the best of every fourth endpoint (the first on a
        // tie), kept with selects rather than branches: the scores are
        // random, so a branch on "better" is mispredicted about as often as
        // not, and the lanes' multiplications overlap.
        let mut lanes = [(0u64, 0usize); LANES];
        let mut chunks = self.seeds.chunks_exact(LANES);
        for (chunk_index, chunk) in chunks.by_ref().enumerate() {
            for (lane, (best, &seed)) in lanes.iter_mut().zip(chunk).enumerate() {
                let index = chunk_index * LANES + lane;
                let score = fmix64(hash ^ seed);
                let better = score > best.0 || index < LANES;
                best.0 = if better { score } else { best.0 };
                best.1 = if better { index } else { best.1 };
            }
        }
        let full = self.seeds.len() - chunks.remainder().len();
        let mut best = (0u64, usize::MAX);
        for lane in lanes.iter().take(full.min(LANES)) {
            best = better_of(best, *lane);
        }
        for (offset, &seed) in chunks.remainder().iter().enumerate() {
            best = better_of(best, (fmix64(hash ^ seed), full + offset));
        }
        if best.1 == usize::MAX {
            0
        } else {
            best.1
        }
    }
}

/// Lanes of [`Rendezvous::pick_hash`].
const LANES: usize = 4;

/// The better of two `(score, index)`: the higher score, the lower index on
/// a tie (an index of `usize::MAX` is none yet).
fn better_of(a: (u64, usize), b: (u64, usize)) -> (u64, usize) {
    if a.1 == usize::MAX || b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
        b
    } else {
        a
    }
}

/// FNV-1a, 64 bits.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// MurmurHash3's 64-bit finalizer: every input bit reaches every output bit.
pub(super) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:7878")).collect()
    }

    fn keys() -> impl Iterator<Item = Vec<u8>> {
        (0..100_000).map(|i| format!("key:{i:012}").into_bytes())
    }

    /// Keys that move when an endpoint is added to `n`, as a share; and
    /// whether any moved between two old endpoints.
    fn movement(n: usize) -> (f64, usize) {
        let before = Rendezvous::new(names(n));
        let after = Rendezvous::new(names(n + 1));
        let (mut moved, mut between_old) = (0, 0);
        for key in keys() {
            let (old, new) = (before.pick(&key), after.pick(&key));
            if old != new {
                moved += 1;
                if new != n {
                    between_old += 1;
                }
            }
        }
        (moved as f64 / 100_000.0, between_old)
    }

    #[test]
    fn adding_an_eleventh_endpoint_moves_about_one_eleventh_of_the_keys() {
        let (moved, between_old) = movement(10);
        assert_eq!(between_old, 0, "rendezvous moves keys only to the new endpoint");
        let ideal = 1.0 / 11.0;
        assert!(
            (moved - ideal).abs() < ideal * 0.05,
            "moved {moved:.4}, ideal {ideal:.4}"
        );
    }

    #[test]
    fn adding_a_101st_endpoint_moves_about_one_percent_of_the_keys() {
        let (moved, between_old) = movement(100);
        assert_eq!(between_old, 0);
        let ideal = 1.0 / 101.0;
        assert!(
            (moved - ideal).abs() < ideal * 0.15,
            "moved {moved:.5}, ideal {ideal:.5}"
        );
    }

    #[test]
    fn three_endpoints_share_keys_within_ten_percent_of_even() {
        let ring = Rendezvous::new(names(3));
        let mut counts = [0u32; 3];
        for key in keys() {
            counts[ring.pick(&key)] += 1;
        }
        let even = 100_000.0 / 3.0;
        for count in counts {
            assert!((f64::from(count) - even).abs() < even * 0.10, "{counts:?}");
        }
    }

    #[test]
    fn placement_depends_on_names_not_their_order() {
        let forward = Rendezvous::new(["a:1", "b:2", "c:3"]);
        let backward = Rendezvous::new(["c:3", "b:2", "a:1"]);
        for key in keys().take(1000) {
            assert_eq!(forward.pick(&key), 2 - backward.pick(&key));
        }
    }

    #[test]
    fn the_hash_is_fixed_across_processes() {
        // Values of the fixed hashes: a change here re-places every key of
        // every deployed client, so it must be deliberate.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let ring = Rendezvous::new(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
        let placed: Vec<usize> = (0..8).map(|i| ring.pick(format!("k{i}").as_bytes())).collect();
        assert_eq!(placed, PLACED);
    }

    const PLACED: [usize; 8] = [2, 2, 1, 0, 2, 2, 2, 1];

    /// The placement as first written: one score per endpoint in order,
    /// the first endpoint listed winning a tie.
    fn reference(seeds: &[u64], key: &[u8]) -> usize {
        let hash = fnv1a(key);
        let mut best = (0, 0u64);
        for (index, &seed) in seeds.iter().enumerate() {
            let score = fmix64(hash ^ seed);
            if index == 0 || score > best.1 {
                best = (index, score);
            }
        }
        best.0
    }

    #[test]
    fn every_key_goes_where_the_first_written_placement_put_it() {
        let counts = (0..=20).chain([31, 64, 100, 257]);
        for n in counts {
            let ring = Rendezvous::new(names(n));
            for key in keys().step_by(7) {
                assert_eq!(ring.pick(&key), reference(&ring.seeds, &key), "{n} endpoints");
            }
        }
    }

    #[test]
    fn a_tie_goes_to_the_endpoint_listed_first() {
        // The same name twice scores the same for every key: the first wins.
        for n in [2, 5, 9] {
            let mut listed = names(n);
            listed.push(listed[1].clone());
            listed.insert(0, listed[n - 1].clone());
            let ring = Rendezvous::new(&listed);
            for key in keys().take(5_000) {
                let picked = ring.pick(&key);
                assert_eq!(picked, reference(&ring.seeds, &key));
                assert!(
                    picked != n + 1 && picked != n,
                    "{n}: a duplicate listed later never wins"
                );
            }
        }
    }
}
