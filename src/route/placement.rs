//! [`Placement`]: how a [`Router`](super::Router) places keys on its
//! endpoints, chosen when the router is built.

use super::hash::Rendezvous;

/// How a [`Router`](super::Router) places keys on its endpoints.
///
/// [`Rendezvous`] is the default; `Ketama` (feature `ketama`) places keys
/// as libmemcached does, to share servers with clients that place keys
/// that way. Choose it with [`Router::with_placement`](super::Router::with_placement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Rendezvous hashing ([`Rendezvous`]): minimal movement, no ring.
    #[default]
    Rendezvous,
    /// libmemcached's ketama continuum ([`Ketama`](super::Ketama)).
    #[cfg(feature = "ketama")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ketama")))]
    Ketama,
}

/// A placement built over a router's endpoint names.
#[derive(Debug, Clone)]
pub(super) enum Placer {
    Rendezvous(Rendezvous),
    #[cfg(feature = "ketama")]
    Ketama(super::Ketama),
}

impl Placer {
    /// `placement` over endpoints named `names`, in order.
    pub(super) fn new<'a>(placement: Placement, names: impl IntoIterator<Item = &'a [u8]>) -> Self {
        match placement {
            Placement::Rendezvous => Placer::Rendezvous(Rendezvous::new(names)),
            #[cfg(feature = "ketama")]
            Placement::Ketama => Placer::Ketama(super::Ketama::new(names)),
        }
    }

    /// The index of the endpoint `key` belongs to.
    pub(super) fn pick(&self, key: &[u8]) -> usize {
        match self {
            Placer::Rendezvous(rendezvous) => rendezvous.pick(key),
            #[cfg(feature = "ketama")]
            Placer::Ketama(ketama) => ketama.pick(key),
        }
    }
}
