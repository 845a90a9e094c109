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
    /// Write nothing: the reply to a version 2 `CANCEL`, which has no
    /// answer of its own. (A server with [`ByRequestId`](crate::kv::ByRequestId)
    /// as its order drops it before it reaches the codec; one answering in
    /// order hands it to the codec, which writes nothing for it.)
    pub silent: bool,
}

impl Reply {
    /// A response after which the connection goes on.
    pub fn keep(response: Response) -> Self {
        Reply {
            response,
            close: false,
            silent: false,
        }
    }

    /// The reply to a `CANCEL`: nothing is written.
    pub fn silent(response: Response) -> Self {
        Reply {
            silent: true,
            ..Reply::keep(response)
        }
    }

    /// The server's [`CloseAfter`](crate::server::CloseAfter) hook for
    /// replies: give `Reply::closes` to
    /// [`Server::with_close_after`](crate::server::Server::with_close_after).
    pub fn closes(reply: &Reply) -> bool {
        reply.close
    }

    /// The server's [`Overload`](crate::server::Overload) hook for replies:
    /// [`Busy`](crate::kv::Busy)'s answer, kept open — but a frame too
    /// large for a connection that has not authenticated
    /// ([`Overloaded::FrameBeforeAdmission`]) is answered
    /// `UNAUTHENTICATED`, since waiting will not help: authenticating will.
    /// Give `Reply::busy` to
    /// [`Server::with_overload`](crate::server::Server::with_overload).
    pub fn busy(reason: &Overloaded) -> Option<Reply> {
        if let Overloaded::FrameBeforeAdmission { limit } = reason {
            let message = format!(
                "AUTH first: before AUTH a request may be at most {limit} bytes; closing the connection"
            );
            return Some(unauthenticated(&message, true));
        }
        Busy.overloaded(reason).map(Reply::keep)
    }
}

/// A response after which the connection goes on ([`Reply::keep`]).
impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Reply::keep(response)
    }
}

impl Encoder<Reply> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        if reply.silent {
            return Ok(());
        }
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
/// `UNAUTHENTICATED` and closes the connection. The right token always
/// gets in: only wrong ones are charged to the limit. A wrong token is
/// logged (`warn`) with the peer's address — at most the limit's rate per
/// address — and one over the limit at `debug`. Without one ([`RequireAuth::open`]) everything
/// reaches `S`, and `S` answers `AUTH` with `OK`.
///
/// The decision is made when a request is *called*, so a pipelined
/// `AUTH` followed by requests authenticates them. Version 2 requests
/// are held to the same rule and answered with their ids (`HELLO` before
/// `AUTH` is answered `UNAUTHENTICATED`, so a connection only reaches
/// version 2 authenticated); a `CANCEL` reaches `S` (there is nothing to
/// cancel before `AUTH`) and its reply is [silent](Reply::silent).
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
    /// The token is compared first: the right one always gets in, and only a
    /// wrong one is charged to the address's [limit](super::AuthLimits).
    fn check(&self, candidate: &[u8], peer: SocketAddr, authenticated: &mut bool) -> Reply {
        *authenticated = self.token.matches(candidate);
        if *authenticated {
            return Reply::keep(Response::ok_empty());
        }
        if !self.limiter.failed(peer.ip()) {
            // At debug level: a flood of these must not flood the log. The
            // failures logged below are bounded by the limit itself.
            tracing::debug!(%peer, "AUTH failed: wrong token, and too many failed attempts from this address");
            return unauthenticated(
                "too many failed AUTH attempts from this address; try again later",
                true,
            );
        }
        tracing::warn!(%peer, "AUTH failed: wrong token; closing the connection");
        unauthenticated("wrong token", true)
    }
}

fn unauthenticated(message: &str, close: bool) -> Reply {
    Reply {
        close,
        ..Reply::keep(Response::error(Status::Unauthenticated, message))
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
        let (request, id) = match &incoming {
            Incoming::Request(request) => (Some(request), 0),
            Incoming::Identified { id, request, .. } => (Some(request), *id),
            Incoming::Rejected(_) | Incoming::Cancel { .. } => (None, 0),
        };
        let answer = match (request, &self.gate) {
            (Some(Request::Auth { token }), Some(gate)) => {
                Some(gate.check(token, self.peer, &mut self.authenticated))
            }
            (Some(_), Some(_)) if !self.authenticated => {
                Some(unauthenticated("AUTH required: this server has a token", false))
            }
            _ => None,
        };
        let reply: fn(Response) -> Reply = match incoming {
            Incoming::Cancel { .. } => Reply::silent,
            _ => Reply::keep,
        };
        match answer {
            Some(mut answer) => {
                answer.response.id = id;
                Either::Left(futures::future::ready(Ok(answer)))
            }
            None => Either::Right(self.inner.call(incoming).map_ok(reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::auth::AuthLimits;
    use bytes::Bytes;
    use std::time::Duration;
    use tower::ServiceExt;

    const TOKEN: &str = "the right token";

    fn auth(token: &str) -> Incoming {
        Incoming::Request(Request::Auth {
            token: Bytes::copy_from_slice(token.as_bytes()),
        })
    }

    /// One connection's gate, in front of a service that answers `OK`.
    fn connection(
        authenticator: &Authenticator,
        peer: SocketAddr,
    ) -> RequireAuth<impl Service<Incoming, Response = Response, Error = std::convert::Infallible>> {
        let inner = tower::service_fn(|_: Incoming| futures::future::ok(Response::ok_empty()));
        authenticator.require(inner, peer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_guesser_on_the_same_address_does_not_keep_the_right_token_out() {
        let authenticator = Authenticator::new(
            AuthToken::new(TOKEN).unwrap(),
            AuthLimits {
                burst: 4,
                refill: Duration::from_millis(250),
            },
        );
        let guesser: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let client: SocketAddr = "203.0.113.9:40001".parse().unwrap();
        let mut refused_guesses = 0;
        // A guesser at 12 a second for 30 s, twice the refill rate; the
        // client with the token connects every second in between.
        for tick in 0..360u32 {
            tokio::time::advance(Duration::from_millis(1000 / 12)).await;
            let reply = connection(&authenticator, guesser)
                .oneshot(auth("guess"))
                .await
                .unwrap();
            assert!(reply.close && reply.response.status == Status::Unauthenticated);
            refused_guesses += u32::from(reply.response.message().contains("too many"));
            if tick % 12 == 0 {
                let mut gate = connection(&authenticator, client);
                let reply = gate.ready().await.unwrap().call(auth(TOKEN)).await.unwrap();
                assert_eq!(reply, Reply::keep(Response::ok_empty()), "at tick {tick}");
                assert!(gate.is_authenticated());
            }
        }
        // The guesser was over its limit most of the time.
        assert!(refused_guesses > 100, "{refused_guesses}");
    }
}
