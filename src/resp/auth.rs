//! [`RedisAuth`]: Redis `AUTH` on every new connection, password or ACL user.

use super::{RedisError, Value};
use crate::transport::{Handshake, HandshakeError};
use crate::BoxError;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::fmt;
use std::future::Future;

/// Sends `AUTH [user] password` on every new connection before any
/// command: give it to
/// [`ClientBuilder::on_connect`](crate::builder::ClientBuilder::on_connect).
///
/// `+OK` hands the connection over. An error reply (`WRONGPASS`, or `ERR`
/// from a server without a password) is a
/// [rejected](HandshakeError::Rejected) handshake: callers get
/// [`RedisError::Auth`], never retried. The password never appears in
/// `Debug` output.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use wirestack::builder::ClientBuilder;
/// use wirestack::resp::{RedisAuth, RedisClient, RespCodec, Value};
///
/// let redis = RedisClient::new(
///     ClientBuilder::new(RespCodec::new())
///         .on_connect(RedisAuth::user("app", "s3cret"))
///         .connect::<Value>("127.0.0.1:6379")
///         .await?,
/// );
/// redis.ping().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisAuth {
    user: Option<Bytes>,
    password: Bytes,
}

impl RedisAuth {
    /// `AUTH password`: the `requirepass` password (the `default` user).
    pub fn password(password: impl Into<Bytes>) -> Self {
        RedisAuth {
            user: None,
            password: password.into(),
        }
    }

    /// `AUTH user password`: an ACL user (Redis 6 and later).
    pub fn user(user: impl Into<Bytes>, password: impl Into<Bytes>) -> Self {
        RedisAuth {
            user: Some(user.into()),
            password: password.into(),
        }
    }

    fn command(&self) -> Value {
        let mut args = vec![Bytes::from_static(b"AUTH")];
        args.extend(self.user.clone());
        args.push(self.password.clone());
        Value::command(args)
    }
}

impl fmt::Debug for RedisAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAuth")
            .field("user", &self.user)
            .field("password", &"(redacted)")
            .finish()
    }
}

impl<T, E> Handshake<T> for RedisAuth
where
    T: Sink<Value, Error = E> + Stream<Item = Result<Value, E>> + Unpin + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn handshake(&self, transport: T) -> impl Future<Output = Result<T, HandshakeError>> + Send {
        expect_ok(transport, self.command(), "AUTH", RedisError::Auth)
    }
}

/// Sends `command` (named `name`) on a new connection and hands the
/// connection over if the server answers `+OK`; an error reply is a
/// [rejected](HandshakeError::Rejected) handshake, its message made into
/// an error by `refused`.
pub(super) async fn expect_ok<T, E>(
    mut transport: T,
    command: Value,
    name: &'static str,
    refused: fn(String) -> RedisError,
) -> Result<T, HandshakeError>
where
    T: Sink<Value, Error = E> + Stream<Item = Result<Value, E>> + Unpin + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    transport
        .send(command)
        .await
        .map_err(|e| HandshakeError::failed(e.into()))?;
    match transport.next().await {
        Some(Ok(Value::Simple(ok))) if &ok[..] == b"OK" => Ok(transport),
        Some(Ok(Value::Error(message))) => Err(HandshakeError::rejected(refused(
            String::from_utf8_lossy(&message).into_owned(),
        ))),
        Some(Ok(reply)) => Err(HandshakeError::failed(RedisError::UnexpectedReply {
            command: name,
            reply,
        })),
        Some(Err(error)) => Err(HandshakeError::failed(error.into())),
        None => Err(HandshakeError::failed(format!(
            "the server closed the connection during {name}"
        ))),
    }
}
