//! [`Elsewhere`]: how a [`Hedge`](super::Hedge) asks the service under it
//! to send a copy of a request to another endpoint than the first copy's.
//!
//! The hedge keeps a [`Tried`] per call and hands it to every copy it
//! sends; the service under it (a [`Balance`](crate::balance::Balance))
//! chooses among the endpoints the set does not name and adds the one it
//! chose. Nothing else passes between them: the hedge knows no endpoint,
//! and the balancer knows no hedge.

use tower::Service;

/// The endpoints the copies of one call went to, by the ids their service
/// gives them (at most two: a call and its hedge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried {
    ids: [u64; 2],
    len: u8,
}

impl Tried {
    /// No endpoint yet.
    pub fn new() -> Self {
        Tried::default()
    }

    /// Whether a copy went to endpoint `id`.
    pub fn contains(&self, id: u64) -> bool {
        self.ids[..usize::from(self.len)].contains(&id)
    }

    /// Records that a copy went to endpoint `id` (past two, the oldest is
    /// forgotten).
    pub fn push(&mut self, id: u64) {
        if usize::from(self.len) < self.ids.len() {
            self.ids[usize::from(self.len)] = id;
            self.len += 1;
        } else {
            self.ids = [self.ids[1], id];
        }
    }

    /// How many endpoints it names.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether it names none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A service over several endpoints that can send a request to one that a
/// [`Tried`] does not name: what a [`Hedge`](super::Hedge) needs under it.
///
/// Like [`Service::call`], it is called after `poll_ready` answered ready.
pub trait Elsewhere<Req>: Service<Req> {
    /// Sends `request` to an endpoint that `tried` does not name, and adds
    /// that endpoint to `tried`; gives the request back if there is none
    /// (every endpoint was tried, or the others are ejected).
    fn call_elsewhere(&mut self, request: Req, tried: &mut Tried) -> Result<Self::Future, Req>;

    /// Says that the copy `future` is about to be dropped because another
    /// copy answered first: its endpoint lost the race (a
    /// [`Balance`](crate::balance::Balance) counts it against the
    /// endpoint's success rate). Nothing by default.
    fn lost(_future: std::pin::Pin<&mut Self::Future>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_remembers_the_last_two() {
        let mut tried = Tried::new();
        assert!(tried.is_empty());
        tried.push(7);
        tried.push(9);
        assert!(tried.contains(7) && tried.contains(9) && !tried.contains(8));
        tried.push(8);
        assert_eq!(tried.len(), 2);
        assert!(!tried.contains(7) && tried.contains(9) && tried.contains(8));
    }
}
