//! [`PerAddress`]: how many connections each peer IP address holds, for
//! [`ServeConfig::max_connections_per_address`](super::ServeConfig::max_connections_per_address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The connections of every peer address. It holds an entry only for an
/// address with a connection open, so it is never larger than the
/// connections themselves.
#[derive(Debug, Clone)]
pub(super) struct PerAddress {
    limit: Option<usize>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection of an address, counted until it is dropped.
#[derive(Debug)]
pub(super) struct AddressSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl PerAddress {
    pub(super) fn new(limit: Option<usize>) -> Self {
        PerAddress {
            limit,
            open: Arc::default(),
        }
    }

    /// Counts a new connection from `peer`: `Ok(None)` without a limit,
    /// `Err(limit)` if `peer` already has `limit` connections.
    pub(super) fn try_acquire(&self, peer: IpAddr) -> Result<Option<AddressSlot>, usize> {
        let Some(limit) = self.limit else {
            return Ok(None);
        };
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(peer).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                open.remove(&peer);
            }
            return Err(limit);
        }
        *count += 1;
        Ok(Some(AddressSlot {
            open: self.open.clone(),
            peer,
        }))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_its_slots_back() {
        let per_address = PerAddress::new(Some(3));
        let (one, other): (IpAddr, IpAddr) = ("192.0.2.7".parse().unwrap(), "192.0.2.8".parse().unwrap());
        let held: Vec<_> = (0..3).map(|_| per_address.try_acquire(one).unwrap()).collect();
        assert_eq!(per_address.try_acquire(one).unwrap_err(), 3);
        assert!(
            per_address.try_acquire(other).is_ok(),
            "another address has its own"
        );
        drop(held);
        assert!(per_address.try_acquire(one).is_ok());
        assert!(
            per_address.open.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
        assert!(PerAddress::new(None).try_acquire(one).unwrap().is_none());
    }
}
