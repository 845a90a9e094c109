//! [`RendezvousTable`]: rendezvous hashing over a fixed table of slots, so
//! that placing a key costs the same over 100 endpoints as over one.

use super::hash::{fmix64, fnv1a, Rendezvous};

/// A key's slot is the top `SLOT_BITS` bits of its hash: 65,536 slots.
const SLOT_BITS: u32 = 16;

/// Places keys on endpoints in O(1): a key hashes to one of 65,536 slots,
/// and each slot belongs to the endpoint that [`Rendezvous`] hashing gives
/// it, worked out once when the table is built.
///
/// It keeps what rendezvous hashing promises, slot by slot: adding an
/// endpoint to `n` moves only the slots the new one wins — `1/(n+1)` of
/// them in expectation, all to it — and never moves a key between two old
/// endpoints; the names' order does not matter; the hashes are fixed, so
/// every process places a key alike. The share of keys per endpoint is
/// even within the spread of 65,536 slots (a few percent at 100 endpoints).
///
/// A lookup is one hash of the key and one read of the table (256 KiB),
/// where [`Rendezvous::pick`] scores every endpoint: 100 scores per key
/// over 100 endpoints. Building the table scores every endpoint for every
/// slot (65,536 · n scores: milliseconds at 100 endpoints).
///
/// It is **not** the same placement as [`Rendezvous`]: a key's endpoint
/// differs between the two for about `1 - 1/n` of keys, so a client that
/// switched would find its keys elsewhere. Choose it when a cluster is set
/// up, with [`Placement::RendezvousTable`](super::Placement::RendezvousTable).
///
/// ```
/// use wirestack::route::RendezvousTable;
///
/// let forward = RendezvousTable::new(["a:1", "b:2", "c:3"]);
/// let backward = RendezvousTable::new(["c:3", "b:2", "a:1"]);
/// // The same endpoint, whatever the order the names were given in.
/// assert_eq!(forward.pick(b"user:42"), 2 - backward.pick(b"user:42"));
/// ```
#[derive(Debug, Clone)]
pub struct RendezvousTable {
    /// The endpoint of each slot.
    owners: Box<[u32]>,
    endpoints: usize,
}

impl RendezvousTable {
    /// The table for endpoints identified by `names` (their position is
    /// the index [`pick`](Self::pick) returns).
    pub fn new<N: AsRef<[u8]>>(names: impl IntoIterator<Item = N>) -> Self {
        let rendezvous = Rendezvous::new(names);
        let endpoints = rendezvous.len();
        let owners = (0..1u64 << SLOT_BITS)
            .map(|slot| {
                // Fewer than 2^32 endpoints: every index fits.
                u32::try_from(rendezvous.pick_hash(slot_hash(slot))).unwrap_or(u32::MAX)
            })
            .collect();
        RendezvousTable { owners, endpoints }
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
        let slot = slot_of(key);
        self.owners.get(slot).map_or(0, |&owner| owner as usize)
    }
}

/// The slot of `key`: the top bits of its hash, mixed so that every byte
/// of the key reaches them.
fn slot_of(key: &[u8]) -> usize {
    (fmix64(fnv1a(key)) >> (64 - SLOT_BITS)) as usize
}

/// The hash a slot is placed by, as a key's hash places the key.
fn slot_hash(slot: u64) -> u64 {
    fmix64(slot.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:7878", i / 256, i % 256))
            .collect()
    }

    fn keys() -> impl Iterator<Item = Vec<u8>> {
        (0..100_000).map(|i| format!("key:{i:012}").into_bytes())
    }

    #[test]
    fn a_key_goes_where_rendezvous_places_its_slot() {
        for n in [1, 2, 8, 100] {
            let rendezvous = Rendezvous::new(names(n));
            let table = RendezvousTable::new(names(n));
            assert_eq!(table.len(), n);
            for key in keys().take(20_000) {
                let expected = rendezvous.pick_hash(slot_hash(slot_of(&key) as u64));
                assert_eq!(table.pick(&key), expected, "{n} endpoints");
            }
        }
    }

    #[test]
    fn adding_an_endpoint_moves_about_its_share_and_only_to_it() {
        for n in [8, 100] {
            let before = RendezvousTable::new(names(n));
            let after = RendezvousTable::new(names(n + 1));
            let (mut moved, mut between_old) = (0, 0);
            for key in keys() {
                let (old, new) = (before.pick(&key), after.pick(&key));
                if old != new {
                    moved += 1;
                    between_old += usize::from(new != n);
                }
            }
            assert_eq!(between_old, 0, "{n}: keys move only to the new endpoint");
            let (moved, ideal) = (moved as f64 / 100_000.0, 1.0 / (n as f64 + 1.0));
            assert!(
                (moved - ideal).abs() < ideal * 0.2,
                "{n}: moved {moved:.4}, ideal {ideal:.4}"
            );
        }
    }

    #[test]
    fn endpoints_share_keys_near_evenly() {
        for (n, tolerance) in [(3, 0.05), (100, 0.25)] {
            let table = RendezvousTable::new(names(n));
            let mut counts = vec![0u32; n];
            for key in keys() {
                counts[table.pick(&key)] += 1;
            }
            let even = 100_000.0 / n as f64;
            for &count in &counts {
                assert!(
                    (f64::from(count) - even).abs() < even * tolerance,
                    "{n}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn the_placement_is_fixed_across_processes_and_orders() {
        let forward = RendezvousTable::new(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
        let backward = RendezvousTable::new(["127.0.0.1:7003", "127.0.0.1:7002", "127.0.0.1:7001"]);
        let placed: Vec<usize> = (0..8).map(|i| forward.pick(format!("k{i}").as_bytes())).collect();
        for i in 0..8 {
            let key = format!("k{i}");
            assert_eq!(forward.pick(key.as_bytes()), 2 - backward.pick(key.as_bytes()));
        }
        // A change here re-places every key of every client using this
        // placement, so it must be deliberate.
        assert_eq!(placed, PLACED);
    }

    const PLACED: [usize; 8] = [0, 0, 2, 2, 2, 2, 2, 1];

    #[test]
    fn no_endpoints_place_at_zero() {
        let table = RendezvousTable::new(Vec::<String>::new());
        assert!(table.is_empty());
        assert_eq!(table.pick(b"k"), 0);
    }
}
