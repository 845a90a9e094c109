//! [`Hello`]: the client's version negotiation on every new connection, and
//! [`Negotiated`], what the server's `OK` to `HELLO` carries.

use super::auth::{exchange, refused};
use super::codec::ClientCodec;
use super::{AuthHandshake, Request, Response, Status, PROTOCOL_VERSION};
use crate::session::ClientSession;
use crate::transport::{Handshake, HandshakeError};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// What the server's `OK` to `HELLO` says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The version the connection speaks from now on: 2.
    pub version: u16,
    /// Requests of this connection the server works on at once.
    pub max_in_flight: u32,
    /// How far past `acked_below` a session's `seq` may run; 0 from a server
    /// without sessions (this one, until sessions exist): every SEQUENCED
    /// write is then answered `BAD_REQUEST`.
    pub session_window: u32,
}

impl Negotiated {
    /// The length of the `OK` answer's value: `version` (u16),
    /// `max_in_flight` (u32), `session_window` (u32).
    pub const LEN: usize = 10;

    /// The value of the `OK` answer to `HELLO`.
    pub fn encode(&self) -> Bytes {
        let mut value = BytesMut::with_capacity(Self::LEN);
        value.put_u16_le(self.version);
        value.put_u32_le(self.max_in_flight);
        value.put_u32_le(self.session_window);
        value.freeze()
    }

    /// Reads the value of an `OK` answer to `HELLO`; `None` if it is not
    /// [`LEN`](Self::LEN) bytes long.
    pub fn parse(mut value: &[u8]) -> Option<Negotiated> {
        if value.len() != Self::LEN {
            return None;
        }
        Some(Negotiated {
            version: value.get_u16_le(),
            max_in_flight: value.get_u32_le(),
            session_window: value.get_u32_le(),
        })
    }
}

/// Asks for protocol version 2 on every new connection (`HELLO`, in 1.1
/// framing, before any request), after `AUTH` if it is given one: give it
/// to [`ClientBuilder::on_connect`](crate::builder::ClientBuilder::on_connect)
/// of a client driven by the tagged multiplexer, whose codec
/// ([`ClientCodec`]) encodes [`Outgoing`](crate::multiplex::Outgoing) messages.
///
/// * `OK`: the server speaks version 2. The handshake reads what it
///   [negotiated](Negotiated) and switches the connection's codec to
///   version 2 ([`ClientCodec::use_version_2`]; read it back with
///   [`ClientCodec::negotiated`]).
/// * `BAD_REQUEST`: a 1.1 server (it knows no `HELLO`). The connection
///   goes on in 1.1: the codec frames the multiplexer's messages in 1.1 and
///   tags their answers in order.
/// * `UNAUTHENTICATED`: the server has a token and no `AUTH` came first —
///   a [rejected](HandshakeError::Rejected) handshake
///   ([`KvError::Unauthenticated`](super::KvError::Unauthenticated)), never retried.
/// * anything else, or the connection failing: a failed connect attempt.
///
/// With a token, `AUTH` must come first: [`Hello::after`] runs an
/// [`AuthHandshake`] and then `HELLO`, as one handshake.
///
/// With a [`ClientSession`] ([`Hello::with_session`]) `HELLO` names its id,
/// and the handshake tells the session the `session_window` the server
/// answered (0 from a 1.1 server or one without sessions: the session then
/// stamps nothing), so that [`Session`](crate::session::Session) stamps
/// writes only where the server deduplicates them.
///
/// Not for the in-order [`pipeline`](crate::pipeline), which sends bare
/// [`Request`]s: a codec switched to version 2 refuses them
/// ([`CodecError::NoId`](super::CodecError::NoId)), so a pipelined client
/// stays on 1.1 by not saying `HELLO`.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use wirestack::kv::{AuthHandshake, AuthToken, Hello};
/// use wirestack::transport::{OnConnect, TcpConnector};
/// use wirestack::kv::ClientCodec;
/// use tower::ServiceExt;
///
/// let token = AuthToken::from_file("/etc/kv/token")?;
/// // AUTH, then HELLO, on every connection the connector makes.
/// let connector = OnConnect::new(
///     TcpConnector::new(ClientCodec::new()),
///     Hello::after(AuthHandshake::new(token)),
/// );
/// let transport = connector.oneshot("127.0.0.1:7878").await?;
/// println!("speaking {:?}", transport.codec().negotiated());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Hello {
    auth: Option<AuthHandshake>,
    session: Option<ClientSession>,
}

impl Hello {
    /// `HELLO` alone (a server without a token).
    pub fn new() -> Self {
        Self::default()
    }

    /// `AUTH` with `auth`, then `HELLO`.
    pub fn after(auth: AuthHandshake) -> Self {
        Hello {
            auth: Some(auth),
            session: None,
        }
    }

    /// This `HELLO` names `session` (and tells it the server's window).
    #[must_use]
    pub fn with_session(mut self, session: ClientSession) -> Self {
        self.session = Some(session);
        self
    }

    /// What `HELLO` sends without a session: version 2, no session.
    pub fn request() -> Request {
        Request::Hello {
            version: PROTOCOL_VERSION,
            session_id: [0; 16],
        }
    }

    /// What a `HELLO` naming session `session_id` sends.
    fn request_of(session_id: [u8; 16]) -> Request {
        Request::Hello {
            version: PROTOCOL_VERSION,
            session_id,
        }
    }
}

/// What the server's answer to `HELLO` means for the connection: version
/// 2 with what it negotiated, 1.1 (`None`), or the handshake's error.
fn negotiated(response: &Response) -> Result<Option<Negotiated>, HandshakeError> {
    match response.status {
        Status::Ok => match Negotiated::parse(&response.value) {
            Some(negotiated) if negotiated.version == PROTOCOL_VERSION => Ok(Some(negotiated)),
            _ => Err(HandshakeError::failed(format!(
                "the server's OK to HELLO is not version {PROTOCOL_VERSION}: {:02x?}",
                &response.value[..]
            ))),
        },
        Status::BadRequest => Ok(None),
        _ => Err(refused(response, "HELLO")),
    }
}

impl<Io> Handshake<Framed<Io, ClientCodec>> for Hello
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn handshake(
        &self,
        transport: Framed<Io, ClientCodec>,
    ) -> impl Future<Output = Result<Framed<Io, ClientCodec>, HandshakeError>> + Send {
        let auth = self.auth.clone();
        let session = self.session.clone();
        async move {
            let mut transport = match auth {
                Some(auth) => auth.handshake(transport).await?,
                None => transport,
            };
            // Read once: the session may be renewed meanwhile.
            let session_id = session.as_ref().map_or([0; 16], ClientSession::id);
            let response = exchange(&mut transport, Hello::request_of(session_id)).await?;
            let negotiated = negotiated(&response)?;
            if let Some(session) = &session {
                let window = negotiated.map_or(0, |negotiated| negotiated.session_window);
                session.set_window(session_id, window);
                transport.codec_mut().use_session(session_id);
            }
            match negotiated {
                Some(negotiated) => {
                    tracing::debug!(
                        max_in_flight = negotiated.max_in_flight,
                        session_window = negotiated.session_window,
                        "the server speaks version 2"
                    );
                    transport.codec_mut().use_version_2(negotiated);
                }
                None => tracing::debug!(
                    answer = %response.message(),
                    "the server answered HELLO with BAD_REQUEST: speaking 1.1"
                ),
            }
            Ok(transport)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::codec::ServerCodec;
    use crate::kv::Incoming;
    use crate::multiplex::Outgoing;
    use futures::{SinkExt, StreamExt};

    /// Runs `Hello` against a scripted server that answers its first
    /// request (decoded with a real `ServerCodec`) with `answer`.
    async fn hello_against(
        answer: Response,
    ) -> Result<Framed<tokio::io::DuplexStream, ClientCodec>, HandshakeError> {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = Framed::new(server, ServerCodec::new());
        let script = tokio::spawn(async move {
            let first = server.next().await.unwrap().unwrap();
            assert_eq!(first, Incoming::Request(Hello::request()));
            server.send(answer).await.unwrap();
            server
        });
        let handshake = Hello::new()
            .handshake(Framed::new(client, ClientCodec::new()))
            .await;
        let _server = script.await.unwrap();
        handshake
    }

    #[tokio::test]
    async fn ok_switches_the_codec_to_version_2_and_keeps_what_was_negotiated() {
        let offered = Negotiated {
            version: 2,
            max_in_flight: 64,
            session_window: 0,
        };
        let transport = hello_against(Response::ok(offered.encode())).await.unwrap();
        assert_eq!(transport.codec().negotiated(), Some(offered));
    }

    #[tokio::test]
    async fn bad_request_from_an_old_server_stays_on_1_1() {
        let mut transport = hello_against(Response::error(Status::BadRequest, "unknown command byte 0x07"))
            .await
            .unwrap();
        assert_eq!(transport.codec().negotiated(), None);
        // The multiplexer's requests go out in 1.1 framing.
        let mut bytes = BytesMut::new();
        let ping = Outgoing::Request {
            tag: 5,
            budget: None,
            request: Request::Ping {
                payload: Bytes::new(),
            },
        };
        tokio_util::codec::Encoder::encode(transport.codec_mut(), ping, &mut bytes).unwrap();
        assert_eq!(&bytes[..], &[0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn unauthenticated_is_a_rejected_handshake_and_other_answers_fail_it() {
        let refused = hello_against(Response::error(Status::Unauthenticated, "AUTH required"))
            .await
            .unwrap_err();
        assert!(matches!(refused, HandshakeError::Rejected(_)), "{refused:?}");
        let odd = hello_against(Response::error(Status::Busy, "later"))
            .await
            .unwrap_err();
        assert!(matches!(odd, HandshakeError::Failed(_)), "{odd:?}");
        let short = hello_against(Response::ok(Bytes::from_static(b"\x02\x00")))
            .await
            .unwrap_err();
        assert!(matches!(short, HandshakeError::Failed(_)), "{short:?}");
    }
}
