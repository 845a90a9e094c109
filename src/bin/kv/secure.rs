//! The security flags of `kv`: TLS and the token, for `serve` and for the
//! client commands, and how they become library configuration.

use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;
use tower::ServiceExt;
use wirestack::kv::{
    check_protected, AuthHandshake, AuthToken, ClientCodec, Hello, KvError, KvServerConfig, Request,
};
use wirestack::pipeline::Spawn;
use wirestack::tls::{self, rustls, TlsConnector};
use wirestack::transport::{self, Handshake, HandshakeError};

/// The environment variable that holds a token, when no token file is given.
const TOKEN_ENV: &str = "KV_AUTH_TOKEN";

/// `kv serve`'s TLS, token and protected-mode flags.
#[derive(Debug, Args)]
pub(crate) struct ServeSecurityArgs {
    /// Serve TLS with this PEM certificate chain (its own certificate first); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates signed by a CA of this PEM bundle (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Require AUTH with the token in this file (read once, at start; KV_AUTH_TOKEN otherwise).
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token (only on a network you trust).
    #[arg(long)]
    pub(crate) allow_unauthenticated: bool,
    /// With a token, close a connection that has not authenticated this many milliseconds after connecting (0: never).
    #[arg(long, value_name = "MS", default_value_t = millis(KvServerConfig::default().auth_timeout))]
    pub(crate) auth_timeout_ms: u64,
}

/// A timeout as a flag value: milliseconds, 0 for none.
fn millis(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// What `kv serve` runs with, from its flags.
pub(crate) struct ServeSecurity {
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) token: Option<AuthToken>,
    pub(crate) allow_unauthenticated: bool,
    pub(crate) auth_timeout: Option<Duration>,
    /// What the server starts with but should not: each is one line for
    /// stderr, with what to do about it.
    pub(crate) warnings: Vec<String>,
}

impl ServeSecurityArgs {
    /// Reads the certificates and the token, and applies protected mode to
    /// `listen`; every error is one line that says how to fix it.
    pub(crate) fn load(&self, listen: SocketAddr) -> Result<ServeSecurity, String> {
        let token = token(self.auth_token_file.as_deref())?;
        check_protected(listen, token.is_some(), self.allow_unauthenticated).map_err(|_| {
            format!(
                "refusing to listen on {listen} without a token: any host that can reach it could read \
                 and overwrite every key. Give --auth-token-file FILE (or set {TOKEN_ENV}), listen on \
                 127.0.0.1, or pass --allow-unauthenticated if every host on this network is trusted"
            )
        })?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                tls::server_config_from_pem(cert, key, self.tls_client_ca.as_deref())
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            _ => None,
        };
        let mut warnings: Vec<String> = self
            .tls_cert
            .as_deref()
            .filter(|_| tls.is_some())
            .and_then(|cert| {
                let chain = tls::read_certificates(cert).ok()?;
                crate::cert::validity_warning(&chain, cert)
            })
            .into_iter()
            .collect();
        warnings.extend(match &token {
            Some(token) => token_warnings(self.auth_token_file.as_deref(), token),
            None => Vec::new(),
        });
        if token.is_some() && tls.is_none() && !listen.ip().is_loopback() {
            warnings.push(format!(
                "the token crosses the network to {listen} in clear text: anyone on the path can \
                 read it. Serve TLS (--tls-cert, --tls-key)"
            ));
        }
        if token.is_none() && self.allow_unauthenticated {
            warnings.push(format!(
                "--allow-unauthenticated: any client that can reach {listen} can read and overwrite \
                 every key"
            ));
        }
        Ok(ServeSecurity {
            tls,
            token,
            allow_unauthenticated: self.allow_unauthenticated,
            auth_timeout: (self.auth_timeout_ms > 0).then(|| Duration::from_millis(self.auth_timeout_ms)),
            warnings,
        })
    }
}

/// The client commands' TLS and token flags.
#[derive(Debug, Args, Clone)]
pub(crate) struct ClientSecurityArgs {
    /// Connect over TLS, checking the server's certificate (against the platform's roots without --tls-ca).
    #[arg(long)]
    pub(crate) tls: bool,
    /// Trust the CAs of this PEM bundle (implies --tls).
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (implies --tls; default: the host of --addr).
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,
    /// Present this PEM client certificate chain to a server that requires one (mutual TLS; implies --tls; needs --tls-client-key).
    #[arg(long, value_name = "PEM", requires = "tls_client_key")]
    pub(crate) tls_client_cert: Option<PathBuf>,
    /// The PEM private key of --tls-client-cert.
    #[arg(long, value_name = "PEM", requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<PathBuf>,
    /// AUTH with the token in this file on every connection (KV_AUTH_TOKEN otherwise).
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_token_file: Option<PathBuf>,
}

/// How a client connects, from its flags.
#[derive(Clone)]
pub(crate) struct ClientSecurity {
    pub(crate) tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    pub(crate) token: Option<AuthToken>,
}

impl ClientSecurityArgs {
    /// Reads the CA bundle and the token; `addr` gives the default server name.
    pub(crate) fn load(&self, addr: &str) -> Result<ClientSecurity, String> {
        let token = token(self.auth_token_file.as_deref())?;
        let wants_tls = self.tls
            || self.tls_ca.is_some()
            || self.tls_server_name.is_some()
            || self.tls_client_cert.is_some();
        let tls = if wants_tls {
            let roots = match &self.tls_ca {
                Some(ca) => tls::read_roots(ca),
                None => tls::platform_roots(),
            }
            .map_err(|e| format!("TLS: {e}"))?;
            let name = match &self.tls_server_name {
                Some(name) => name.clone(),
                None => host_of(addr).ok_or_else(|| {
                    format!("TLS: cannot tell the server's name from --addr {addr}; give --tls-server-name")
                })?,
            };
            let identity = match (&self.tls_client_cert, &self.tls_client_key) {
                (Some(cert), Some(key)) => Some((
                    tls::read_certificates(cert).map_err(|e| format!("TLS: {e}"))?,
                    tls::read_private_key(key).map_err(|e| format!("TLS: {e}"))?,
                )),
                _ => None,
            };
            let config = tls::client_config(roots, identity).map_err(|e| format!("TLS: {e}"))?;
            let name = tls::server_name(&name).map_err(|e| format!("TLS: {e}"))?;
            Some((config, name))
        } else {
            None
        };
        Ok(ClientSecurity { tls, token })
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> Option<String> {
    let (host, _port) = addr.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// The token of `--auth-token-file`, or of `KV_AUTH_TOKEN` (trimmed as a
/// file is), or none.
fn token(file: Option<&Path>) -> Result<Option<AuthToken>, String> {
    if let Some(file) = file {
        return AuthToken::from_file(file).map(Some).map_err(|e| e.to_string());
    }
    match std::env::var_os(TOKEN_ENV) {
        None => Ok(None),
        Some(value) => {
            let value = value
                .into_string()
                .map_err(|_| format!("{TOKEN_ENV} is not valid UTF-8"))?;
            AuthToken::from_text(value)
                .map(Some)
                .map_err(|_| format!("{TOKEN_ENV} is set but empty"))
        }
    }
}

/// Tokens shorter than this are worth a warning: 16 random bytes is the
/// least a guesser cannot get through.
const SHORT_TOKEN: usize = 16;

/// What is weak about a server's token: a file other users can read, or a
/// token short enough to guess.
fn token_warnings(file: Option<&Path>, token: &AuthToken) -> Vec<String> {
    let mut warnings = Vec::new();
    #[cfg(unix)]
    if let Some(file) = file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                warnings.push(format!(
                    "the token file {} can be read by every user of this host (mode {mode:03o}): \
                     `chmod 600 {}`",
                    file.display(),
                    file.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    let len = token.as_bytes().len();
    if len < SHORT_TOKEN {
        warnings.push(format!(
            "the token is {len} bytes: a short token can be guessed. Use 32 random bytes, \
             e.g. `head -c 32 /dev/urandom | base64 > token`"
        ));
    }
    warnings
}

/// One bare connection, plain or TLS, greeted as `greeting` says (AUTH if
/// there is a token; HELLO for protocol 2.0), under the multiplexer
/// `builder` starts: the transport hides which, so the load is the same.
pub(crate) async fn connect_bare<B, S>(
    addr: SocketAddr,
    tls: &Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    greeting: Greeting,
    builder: B,
) -> Result<S, KvError>
where
    B: Spawn<Framed<TcpStream, ClientCodec>, Request, Service = S>
        + Spawn<Framed<TlsStream<TcpStream>, ClientCodec>, Request, Service = S>,
{
    let lost = |e: std::io::Error| KvError::Connection(e.into());
    let refused = |e: HandshakeError| KvError::from_service(e.into());
    match tls {
        None => {
            let transport = transport::connect(addr, ClientCodec::new()).await.map_err(lost)?;
            let transport = greeting.handshake(transport).await.map_err(refused)?;
            Ok(builder.spawn_on(transport))
        }
        Some((tls, name)) => {
            let connector = TlsConnector::new(tls.clone(), name.clone(), ClientCodec::new());
            let transport = connector.oneshot(addr).await.map_err(lost)?;
            let transport = greeting.handshake(transport).await.map_err(refused)?;
            Ok(builder.spawn_on(transport))
        }
    }
}

/// What a bare connection says before its load: `AUTH` if there is a
/// token, then `HELLO` if it is to speak protocol 2.0.
#[derive(Debug, Clone)]
pub(crate) struct Greeting {
    pub(crate) token: Option<AuthToken>,
    pub(crate) hello: bool,
}

impl<Io> Handshake<Framed<Io, ClientCodec>> for Greeting
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn handshake(
        &self,
        transport: Framed<Io, ClientCodec>,
    ) -> impl Future<Output = Result<Framed<Io, ClientCodec>, HandshakeError>> + Send {
        let Greeting { token, hello } = self.clone();
        async move {
            let auth = token.map(AuthHandshake::new);
            match (auth, hello) {
                (auth, true) => {
                    auth.map_or_else(Hello::new, Hello::after)
                        .handshake(transport)
                        .await
                }
                (Some(auth), false) => auth.handshake(transport).await,
                (None, false) => Ok(transport),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host_of_the_address() {
        assert_eq!(host_of("db.example:7878").as_deref(), Some("db.example"));
        assert_eq!(host_of("127.0.0.1:7878").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:7878").as_deref(), Some("::1"));
        assert_eq!(host_of(":7878"), None);
        assert_eq!(host_of("nohost"), None);
    }
}
