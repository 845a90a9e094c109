//! The client commands' connection: one server as given by `--addr`, or
//! several (`--addr A,B,C`) as one sharded client.
//!
//! Keys are placed on the servers of a list by each server's *name*: its
//! address as written (`localhost:7878` and `127.0.0.1:7878` are two
//! names), or the name given with `name=host:port`. Clients that spell a
//! list differently place keys differently; a list that names one socket
//! address twice draws a warning.

use crate::args::ClientArgs;
use tower::util::BoxCloneService;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{AuthHandshake, ClientCodec, KvClient, KvError, Request, Response};
use wirestack::transport::{MakeTransport, Target};
use wirestack::BoxError;

/// What a client command talks to: one server's stack or a router's.
pub(crate) type Client = KvClient<BoxCloneService<Request, Response, BoxError>>;

/// The servers `--addr` lists: one, or several separated by commas (a
/// trailing comma or an empty entry names none).
pub(crate) fn addresses(addr: &str) -> Vec<String> {
    addr.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// One entry of `--addr`: `name=host:port`, or `host:port` named by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// What places keys on it.
    pub(crate) name: String,
    /// Where it is.
    pub(crate) addr: String,
}

impl Endpoint {
    pub(crate) fn parse(entry: &str) -> Endpoint {
        match entry.split_once('=') {
            Some((name, addr)) => Endpoint {
                name: name.trim().to_string(),
                addr: addr.trim().to_string(),
            },
            None => Endpoint {
                name: entry.to_string(),
                addr: entry.to_string(),
            },
        }
    }
}

/// The endpoints `--addr` lists, or why it lists none.
pub(crate) fn endpoints(addr: &str) -> Result<Vec<Endpoint>, String> {
    let endpoints: Vec<Endpoint> = addresses(addr).iter().map(|e| Endpoint::parse(e)).collect();
    if endpoints.is_empty() {
        return Err(format!("--addr {addr:?} names no server"));
    }
    if let Some(bad) = endpoints.iter().find(|e| e.name.is_empty() || e.addr.is_empty()) {
        return Err(format!(
            "--addr: {bad:?} needs both a name and an address (name=host:port)"
        ));
    }
    Ok(endpoints)
}

/// Warns on stderr about names of the list that resolve to one socket
/// address: one server under two names is two endpoints, and a key placed
/// through one name is not found through the other.
pub(crate) async fn warn_same_server(endpoints: &[Endpoint]) {
    let mut seen: Vec<(std::net::SocketAddr, &str)> = Vec::new();
    for endpoint in endpoints {
        let Ok(resolved) = tokio::net::lookup_host(endpoint.addr.as_str()).await else {
            continue;
        };
        let mut warned = false;
        for socket in resolved {
            match seen
                .iter()
                .find(|(s, name)| *s == socket && *name != endpoint.name)
            {
                Some((_, other)) if !warned => {
                    eprintln!(
                        "kv: warning: --addr names {other} and {} resolve to the same server ({socket}): \
                         they are two endpoints, and a key placed through one is not found through the other",
                        endpoint.name
                    );
                    warned = true;
                }
                _ => seen.push((socket, &endpoint.name)),
            }
        }
    }
}

/// One command, one attempt: a person at a shell wants `BUSY` or a refused
/// connection reported now, not retried until the deadline. With a token,
/// every connection sends `AUTH` first. With several addresses, each key
/// goes to its server (see `KvClient::sharded`).
pub(crate) async fn connect(args: &ClientArgs) -> Result<Client, String> {
    connect_to(args, &args.addr).await
}

/// [`connect`] to `addr` (one address or a list) instead of `--addr`.
pub(crate) async fn connect_to(args: &ClientArgs, addr: &str) -> Result<Client, String> {
    let addrs = endpoints(addr)?;
    // TLS names the server after the first address unless told otherwise.
    let security = args.security.load(&addrs[0].addr)?;
    let builder = ClientBuilder::new(ClientCodec::new()).no_retry();
    match (security.tls, security.token) {
        (None, None) => open(builder, addr, addrs).await,
        (None, Some(token)) => open(builder.on_connect(AuthHandshake::new(token)), addr, addrs).await,
        (Some((config, name)), None) => open(builder.tls(config, name), addr, addrs).await,
        (Some((config, name)), Some(token)) => {
            let builder = builder.tls(config, name).on_connect(AuthHandshake::new(token));
            open(builder, addr, addrs).await
        }
    }
}

type Builder<M> = ClientBuilder<
    ClientCodec,
    tower::layer::util::Identity,
    std::time::Duration,
    wirestack::builder::NoRetry,
    wirestack::reconnect::ReconnectConfig,
    M,
>;

async fn open<M>(builder: Builder<M>, addr: &str, addrs: Vec<Endpoint>) -> Result<Client, String>
where
    M: MakeTransport<Target, Request, Item = Response> + Clone + Send + Sync + 'static,
    M::Future: Send,
{
    if addrs.len() > 1 {
        warn_same_server(&addrs).await;
        let named = addrs.into_iter().map(|e| (e.name, e.addr));
        let router = builder
            .route_named(named)
            .map_err(|e| format!("--addr {addr}: {e}"))?;
        return Ok(KvClient::new(BoxCloneService::new(router)));
    }
    let addr = addrs[0].addr.as_str();
    builder
        .connect_pinned(addr)
        .await
        .map(|client| KvClient::new(BoxCloneService::new(client)))
        .map_err(|e| match KvError::from_service(e.into()) {
            error @ KvError::Unauthenticated { .. } => crate::explain(error),
            error => format!("cannot connect to {addr}: {error}"),
        })
}

#[cfg(test)]
mod tests {
    use super::{addresses, endpoints, Endpoint};

    #[test]
    fn a_list_of_addresses_is_split_at_commas() {
        assert_eq!(addresses("127.0.0.1:7878"), ["127.0.0.1:7878"]);
        assert_eq!(addresses("a:1,b:2, c:3,"), ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn an_entry_may_name_its_endpoint() {
        let parsed = endpoints("one=127.0.0.1:1, 127.0.0.1:2,").unwrap();
        assert_eq!(
            parsed,
            [
                Endpoint {
                    name: "one".into(),
                    addr: "127.0.0.1:1".into()
                },
                Endpoint {
                    name: "127.0.0.1:2".into(),
                    addr: "127.0.0.1:2".into()
                },
            ]
        );
        assert!(endpoints(" , ").is_err());
        assert!(endpoints("=127.0.0.1:1").is_err());
    }
}
