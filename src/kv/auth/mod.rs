//! Authentication of the KV protocol: the token, the server's gate, the
//! limit on failed attempts, the client's on-connect `AUTH`, and the rule
//! that a server reachable from other hosts does not run unprotected.
//!
//! * [`AuthToken`]: a shared secret, compared in constant time, never
//!   printed.
//! * [`RequireAuth`]: the server side, one per connection in front of
//!   [`KvService`](super::KvService): before a successful `AUTH` every
//!   request is answered `UNAUTHENTICATED` (the connection stays open); a
//!   wrong token is answered `UNAUTHENTICATED` and closes the connection.
//! * [`AuthDeadline`]: a connection that has not authenticated within
//!   [`KvServerConfig::auth_timeout`](super::KvServerConfig::auth_timeout)
//!   of connecting is closed, so silent peers do not hold connection slots.
//! * [`AuthLimits`]: failed attempts are counted per peer IP address, and
//!   past a small burst an address is told it has made too many; the
//!   token is compared first, so the right one always gets in.
//! * [`AuthHandshake`]: the client side, an on-connect
//!   [`Handshake`](crate::transport::Handshake) that sends `AUTH` on every
//!   new connection before any request.
//! * [`check_protected`]: protected mode.

mod deadline;
mod gate;
mod handshake;
mod limiter;
mod token;

pub use deadline::{AuthDeadline, AuthDeadlineFuture, AuthTimedOut};
pub use gate::{Authenticator, Reply, RequireAuth};
pub use handshake::AuthHandshake;
pub(crate) use handshake::{exchange, refused};
pub use limiter::AuthLimits;
pub use token::{AuthToken, EmptyToken};

use std::fmt;
use std::net::SocketAddr;

/// A server refused to start: it would listen on an address other than
/// loopback without a token, and was not told that it may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprotected {
    /// The address it would have listened on.
    pub addr: SocketAddr,
}

impl fmt::Display for Unprotected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to serve {} without a token: any host that can reach it could read and \
             overwrite every key. Set a token (KvServerConfig::auth), listen on a loopback \
             address, or allow unauthenticated clients explicitly \
             (KvServerConfig::allow_unauthenticated)",
            self.addr
        )
    }
}

impl std::error::Error for Unprotected {}

/// Protected mode: a server may listen on `addr` unless `addr` is not a
/// loopback address, no token is set and unauthenticated clients are not
/// explicitly allowed. (`0.0.0.0` and `::` are not loopback: they listen on
/// every interface.)
pub fn check_protected(
    addr: SocketAddr,
    has_token: bool,
    allow_unauthenticated: bool,
) -> Result<(), Unprotected> {
    if has_token || allow_unauthenticated || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(Unprotected { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_listen_without_a_token() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_protected(at("127.0.0.1:7878"), false, false).is_ok());
        assert!(check_protected(at("[::1]:7878"), false, false).is_ok());
        for open in ["0.0.0.0:7878", "[::]:7878", "192.0.2.1:7878"] {
            let refused = check_protected(at(open), false, false).unwrap_err();
            assert!(refused.to_string().contains("without a token"), "{refused}");
            assert!(check_protected(at(open), true, false).is_ok());
            assert!(check_protected(at(open), false, true).is_ok());
        }
    }
}
