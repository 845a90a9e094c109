//! memcached's answers to the framework's questions: which commands may be
//! sent twice, which answers are refusals, which key places a command, what
//! probes a server.

use super::{Reply, Request, SetMode};
use crate::retry::{Idempotent, RetryableResponse};
use crate::route::{Probe, RouteKey};

/// Which commands may be sent again after a lost answer.
///
/// `mg` (a get or a touch) and `mn` are; so are a plain `ms` (mode set,
/// no CAS token) and an `md` without a CAS token, whose effect is the same
/// applied twice — though a retried delete answers "not found" for the key
/// its first attempt deleted, and a retried set overwrites a value written
/// in between, as Redis `SET` and `DEL` do. `ma` (incr/decr), `ms` in add,
/// replace, append or prepend mode, and anything with a CAS token are not:
/// applied twice they add twice, or the second attempt answers "exists"
/// for the change the first one made.
impl Idempotent for Request {
    fn is_idempotent(&self) -> bool {
        match self {
            Request::Get { .. }
            | Request::GetItem { .. }
            | Request::GetMulti { .. }
            | Request::Touch { .. }
            | Request::NoOp => true,
            Request::Set { cas, mode, .. } => cas.is_none() && *mode == SetMode::Set,
            Request::Delete { cas, .. } => cas.is_none(),
            Request::Arithmetic { .. } => false,
        }
    }
}

/// memcached has no "not now, nothing was done" answer (Redis's `LOADING`,
/// KV's `BUSY`): an error answer is final, and nothing is retried for it.
impl RetryableResponse for Reply {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// A command is placed by its key as the caller gave it (not its base64
/// form): the bytes ketama clients hash. `mn` goes to any server.
impl RouteKey for Request {
    fn route_key(&self) -> Option<&[u8]> {
        self.key().map(|key| key.raw())
    }
}

/// An ejected server is probed with `mn`.
impl Probe for Request {
    fn probe() -> Self {
        Request::NoOp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcache::{Key, Status};
    use bytes::Bytes;

    fn key() -> Key {
        Key::new("k").unwrap()
    }

    fn set(cas: Option<u64>, mode: SetMode) -> Request {
        Request::Set {
            key: key(),
            value: Bytes::new(),
            ttl: 0,
            flags: 0,
            cas,
            mode,
        }
    }

    #[test]
    fn only_commands_that_are_the_same_applied_twice_are_idempotent() {
        assert!(Request::Get { key: key() }.is_idempotent());
        assert!(Request::GetItem { key: key() }.is_idempotent());
        assert!(Request::Touch { key: key(), ttl: 1 }.is_idempotent());
        assert!(Request::NoOp.is_idempotent());
        assert!(set(None, SetMode::Set).is_idempotent());
        assert!(Request::Delete {
            key: key(),
            cas: None
        }
        .is_idempotent());
        assert!(!set(Some(1), SetMode::Set).is_idempotent());
        assert!(!set(None, SetMode::Add).is_idempotent());
        assert!(!set(None, SetMode::Append).is_idempotent());
        assert!(!Request::Delete {
            key: key(),
            cas: Some(1)
        }
        .is_idempotent());
        assert!(!Request::Arithmetic {
            key: key(),
            delta: 1,
            decrement: false
        }
        .is_idempotent());
    }

    #[test]
    fn no_answer_is_a_refusal() {
        assert!(!Reply::new(Status::ServerError("out of memory storing object".into())).is_retryable());
        assert!(!Reply::new(Status::Miss).is_retryable());
    }

    #[test]
    fn commands_are_placed_by_their_raw_key() {
        let spaced = Request::Get {
            key: Key::new("a b").unwrap(),
        };
        assert_eq!(spaced.route_key(), Some(&b"a b"[..]));
        assert_eq!(Request::NoOp.route_key(), None);
        assert_eq!(Request::probe(), Request::NoOp);
    }
}
