//! [`RequireAuth`]: the server's per-connection gate, and [`Reply`], the
//! answer that may close its connection.

use super::limiter::Limiter;
use super::AuthToken;
use crate::kv::codec::{CodecError, ServerCodec};
use crate::kv::{Busy, Incoming, Request, Response, Status};
use crate::server::{Overload, Overloaded};
use bytes::BytesMut;
use futures::future::{Either, MapOk, Ready};
use futures::TryFutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_util::codec::Encoder;
use tower::Service;

/// A response, and whether the server closes the connection once it is
/// written: what [`RequireAuth`] answers. The wire sees only the response;
/// the server's [`CloseAfter`](crate::server::CloseAfter) hook reads
/// `close` ([`Reply::closes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response written.
    pub response: Response,
    /// Close the connection after it.
    pub close: bool,
}

impl Reply {
    /// A response after which the connection goes on.
    pub fn keep(response: Response) -> Self {
        Reply {
            response,
            close: false,
        }
    }

    /// The server's [`CloseAfter`](crate::server::CloseAfter) hook for
    /// replies: give `Reply::closes` to
    /// [`Server::with_close_after`](crate::server::Server::with_close_after).
    pub fn closes(reply: &Reply) -> bool {
        reply.close
    }

    /// The server's [`Overload`](crate::server::Overload) hook for replies:
    /// [`Busy`](crate::kv::Busy)'s answer, kept open. Give `Reply::busy` to
    /// [`Server::with_overload`](crate::server::Server::with_overload).
    pub fn busy(reason: &Overloaded) -> Option<Reply> {
        Busy.overloaded(reason).map(Reply::keep)
    }
}

impl Encoder<Reply> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(reply.response, dst)
    }
}

/// What a connection must do before it is served.
#[derive(Debug, Clone)]
struct Gate {
    token: AuthToken,
    limiter: Arc<Limiter>,
}

/// The KV server's authentication, in front of a service `S` (a
/// [`KvService`](crate::kv::KvService)): one per connection, made for its
/// peer's address.
///
/// With a token ([`Authenticator::require`]), a request before a successful
/// `AUTH` is answered `UNAUTHENTICATED` and the connection goes on; an
/// `AUTH` with a wrong token — or from an address over its
/// [limit](super::AuthLimits) of failed attempts — is answered
/// `UNAUTHENTICATED` and closes the connection. A wrong token is logged
/// (`warn`) with the peer's address — at most the limit's rate per address —
/// and an attempt over the limit at `debug`. Without one ([`RequireAuth::open`]) everything
/// reaches `S`, and `S` answers `AUTH` with `OK`.
///
/// The decision is made when a request is *called*, so a pipelined
/// `AUTH` followed by requests authenticates them.
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    gate: Option<Gate>,
    peer: SocketAddr,
    authenticated: bool,
}

/// Makes the [`RequireAuth`] of each connection: one token and one
/// [limit](super::AuthLimits) of failed attempts per address, shared by
/// every connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    gate: Gate,
}

impl Authenticator {
    /// Requires `token`, with `limits` on failed attempts.
    pub fn new(token: AuthToken, limits: super::AuthLimits) -> Self {
        Authenticator {
            gate: Gate {
                token,
                limiter: Arc::new(Limiter::new(limits)),
            },
        }
    }

    /// The gate in front of `inner` for the connection from `peer`.
    pub fn require<S>(&self, inner: S, peer: SocketAddr) -> RequireAuth<S> {
        RequireAuth {
            inner,
            gate: Some(self.gate.clone()),
            peer,
            authenticated: false,
        }
    }
}

impl<S> RequireAuth<S> {
    /// No authentication: every request reaches `inner`.
    pub fn open(inner: S, peer: SocketAddr) -> Self {
        RequireAuth {
            inner,
            gate: None,
            peer,
            authenticated: true,
        }
    }

    /// `true` once this connection may send every command.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }
}

impl Gate {
    /// Checks an `AUTH` from `peer`, recording the outcome in `authenticated`.
    fn check(&self, candidate: &[u8], peer: SocketAddr, authenticated: &mut bool) -> Reply {
        let ip = peer.ip();
        if !self.limiter.try_attempt(ip) {
            // At debug level: a flood of these must not flood the log. The
            // failures that are compared, logged below, are bounded by the
            // limit itself.
            tracing::debug!(%peer, "AUTH refused: too many failed attempts from this address");
            *authenticated = false;
            return unauthenticated(
                "too many failed AUTH attempts from this address; try again later",
                true,
            );
        }
        if self.token.matches(candidate) {
            self.limiter.succeeded(ip);
            *authenticated = true;
            return Reply::keep(Response::ok_empty());
        }
        *authenticated = false;
        tracing::warn!(%peer, "AUTH failed: wrong token; closing the connection");
        unauthenticated("wrong token", true)
    }
}

fn unauthenticated(message: &str, close: bool) -> Reply {
    Reply {
        response: Response::error(Status::Unauthenticated, message),
        close,
    }
}

impl<S> Service<Incoming> for RequireAuth<S>
where
    S: Service<Incoming, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Reply;
    type Error = std::convert::Infallible;
    type Future =
        Either<Ready<Result<Reply, std::convert::Infallible>>, MapOk<S::Future, fn(Response) -> Reply>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let answer = match (&incoming, &self.gate) {
            (Incoming::Request(Request::Auth { token }), Some(gate)) => {
                Some(gate.check(token, self.peer, &mut self.authenticated))
            }
            (Incoming::Request(_), Some(_)) if !self.authenticated => {
                Some(unauthenticated("AUTH required: this server has a token", false))
            }
            _ => None,
        };
        match answer {
            Some(reply) => Either::Left(futures::future::ready(Ok(reply))),
            None => Either::Right(
                self.inner
                    .call(incoming)
                    .map_ok(Reply::keep as fn(Response) -> Reply),
            ),
        }
    }
}
