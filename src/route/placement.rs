//! [`Placement`]: how a [`Router`](super::Router) places keys on its
//! endpoints, chosen when the router is built.

use super::hash::Rendezvous;

/// How a [`Router`](super::Router) places keys on its endpoints.
///
/// [`Rendezvous`] is the default; [`RendezvousTable`](super::RendezvousTable)
/// keeps its guarantees at a cost per key that does not grow with the
/// number of endpoints (but places keys differently); `Ketama` (feature `ketama`) places keys
/// as libmemcached does, to share servers with clients that place keys
/// that way. Choose it with [`Router::with_placement`](super::Router::with_placement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Rendezvous hashing ([`Rendezvous`]): minimal movement, no ring.
    /// A key costs one score per endpoint.
    #[default]
    Rendezvous,
    /// Rendezvous hashing over a table of 65,536 slots
    /// ([`RendezvousTable`](super::RendezvousTable)): the same guarantees
    /// slot by slot, and a key costs one hash and one table read however
    /// many endpoints there are. Not the same placement as `Rendezvous`.
    RendezvousTable,
    /// libmemcached's ketama continuum ([`Ketama`](super::Ketama)).
    #[cfg(feature = "ketama")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ketama")))]
    Ketama,
}

/// A placement built over a router's endpoint names.
#[derive(Debug, Clone)]
pub(super) enum Placer {
    Rendezvous(Rendezvous),
    Table(super::RendezvousTable),
    #[cfg(feature = "ketama")]
    Ketama(super::Ketama),
}

impl Placer {
    /// `placement` over endpoints named `names`, in order.
    pub(super) fn new<'a>(placement: Placement, names: impl IntoIterator<Item = &'a [u8]>) -> Self {
        match placement {
            Placement::Rendezvous => Placer::Rendezvous(Rendezvous::new(names)),
            Placement::RendezvousTable => Placer::Table(super::RendezvousTable::new(names)),
            #[cfg(feature = "ketama")]
            Placement::Ketama => Placer::Ketama(super::Ketama::new(names)),
        }
    }

    /// The index of the endpoint `key` belongs to.
    pub(super) fn pick(&self, key: &[u8]) -> usize {
        match self {
            Placer::Rendezvous(rendezvous) => rendezvous.pick(key),
            Placer::Table(table) => table.pick(key),
            #[cfg(feature = "ketama")]
            Placer::Ketama(ketama) => ketama.pick(key),
        }
    }
}
