//! Which connections get the server's full limits: the [`Admission`] hook.
//!
//! A protocol with a credential (an `AUTH` command, a login) should not let
//! a peer that has not shown it use what the server shares between
//! connections. The server cannot tell, since it knows no protocol, so it
//! asks an [`Admission`] about a connection's service — the one object that
//! sees every request of that connection — until the answer is yes.
//!
//! Until a connection is admitted:
//!
//! * a frame may be at most
//!   [`ServeConfig::max_unadmitted_frame_bytes`](super::ServeConfig::max_unadmitted_frame_bytes)
//!   long (and no longer than the connection's share of the buffer budget);
//!   a longer one is answered through the [`Overload`](super::Overload) hook
//!   ([`Overloaded::FrameBeforeAdmission`](super::Overloaded::FrameBeforeAdmission))
//!   as soon as its header says so — or, for a protocol that does not tell
//!   a frame's length, once that many bytes of it have arrived — and the
//!   connection closes;
//! * it never takes bytes from the budget's common pool: what it holds is
//!   its own share at most, so unadmitted peers cannot delay anyone else's
//!   large requests.
//!
//! The server asks before it reads, after each request it has handed to
//! the service, and before it refuses a frame, so a credential pipelined
//! ahead of a large request admits that request — if the service knows
//! the credential is good when it is *called* (as a token compared in
//! `call` is). A service that decides later, in its response future, is
//! asked again when that future is done; a large frame that arrives
//! before then is held to the limit. Once admitted a connection stays admitted;
//! the hook is not asked again. The default, [`AdmitAll`], admits every
//! connection at once: without a hook nothing changes.
//!
//! ```
//! use wirestack::server::{Admission, Server};
//!
//! /// A line service that tells whether its connection has logged in.
//! #[derive(Clone, Default)]
//! struct Session {
//!     logged_in: bool,
//! }
//!
//! let admitted = |session: &Session| session.logged_in;
//! assert!(!admitted.admitted(&Session::default()));
//! # let _ = Server::new(tokio_util::codec::LinesCodec::new()).with_admission(admitted);
//! ```

/// Decides, from a connection's service, whether the connection is
/// admitted to the server's full limits. Closures `Fn(&S) -> bool`
/// implement it.
pub trait Admission<S> {
    /// `true` once the connection served by `service` is admitted (for a
    /// protocol with a credential: has shown it).
    fn admitted(&self, service: &S) -> bool;
}

impl<S, F> Admission<S> for F
where
    F: Fn(&S) -> bool,
{
    fn admitted(&self, service: &S) -> bool {
        self(service)
    }
}

/// The default [`Admission`]: every connection is admitted from the start.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl<S> Admission<S> for AdmitAll {
    fn admitted(&self, _service: &S) -> bool {
        true
    }
}
