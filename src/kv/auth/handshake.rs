//! [`AuthHandshake`]: the client's `AUTH` on every new connection.

use super::AuthToken;
use crate::kv::{KvError, Request, Response, Status};
use crate::transport::{Handshake, HandshakeError};
use crate::BoxError;
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::future::Future;

/// Sends `AUTH` with a token on every new connection, before any request:
/// give it to [`ClientBuilder::on_connect`](crate::builder::ClientBuilder::on_connect).
///
/// An `OK` hands the connection over; `UNAUTHENTICATED` is a
/// [rejected](HandshakeError::Rejected) handshake, which callers see as
/// [`KvError::Unauthenticated`] and which is never retried; anything else
/// (the connection failing, another answer) is a failed connect attempt.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use wirestack::builder::ClientBuilder;
/// use wirestack::kv::{AuthHandshake, AuthToken, ClientCodec, KvClient, Request};
///
/// let token = AuthToken::from_file("/etc/kv/token")?;
/// let client = KvClient::new(
///     ClientBuilder::new(ClientCodec::new())
///         .on_connect(AuthHandshake::new(token))
///         .connect::<Request>("127.0.0.1:7878")
///         .await?,
/// );
/// client.put("k", "v").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuthHandshake {
    token: AuthToken,
}

impl AuthHandshake {
    /// Authenticates with `token`.
    pub fn new(token: AuthToken) -> Self {
        AuthHandshake { token }
    }
}

impl<T, E> Handshake<T> for AuthHandshake
where
    T: Sink<Request, Error = E> + Stream<Item = Result<Response, E>> + Unpin + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn handshake(&self, mut transport: T) -> impl Future<Output = Result<T, HandshakeError>> + Send {
        let auth = Request::Auth {
            token: self.token.as_bytes().clone(),
        };
        async move {
            let response = exchange(&mut transport, auth).await?;
            match response.status {
                Status::Ok => Ok(transport),
                _ => Err(refused(&response, "AUTH")),
            }
        }
    }
}

/// Sends `request` on a new connection and reads its one answer.
pub(crate) async fn exchange<T, E>(transport: &mut T, request: Request) -> Result<Response, HandshakeError>
where
    T: Sink<Request, Error = E> + Stream<Item = Result<Response, E>> + Unpin,
    E: Into<BoxError>,
{
    let command = request.command().name();
    transport
        .send(request)
        .await
        .map_err(|e| HandshakeError::failed(e.into()))?;
    match transport.next().await {
        Some(Ok(response)) => Ok(response),
        Some(Err(error)) => Err(HandshakeError::failed(error.into())),
        None => Err(HandshakeError::failed(format!(
            "the server closed the connection during {command}"
        ))),
    }
}

/// A handshake's error for an answer it cannot go on with:
/// `UNAUTHENTICATED` is a refusal (never retried), anything else a failure.
pub(crate) fn refused(response: &Response, command: &'static str) -> HandshakeError {
    match response.status {
        Status::Unauthenticated => HandshakeError::rejected(KvError::Unauthenticated {
            message: response.message(),
        }),
        status => HandshakeError::failed(KvError::UnexpectedStatus { status, command }),
    }
}
