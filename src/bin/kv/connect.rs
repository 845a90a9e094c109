//! The client commands' connection: one server as given by `--addr`, or
//! several (`--addr A,B,C`) as one sharded client.

use crate::args::ClientArgs;
use tower::util::BoxCloneService;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{AuthHandshake, ClientCodec, KvClient, KvError, Request, Response};
use wirestack::transport::{MakeTransport, Target};
use wirestack::BoxError;

/// What a client command talks to: one server's stack or a router's.
pub(crate) type Client = KvClient<BoxCloneService<Request, Response, BoxError>>;

/// The servers `--addr` lists: one, or several separated by commas.
pub(crate) fn addresses(addr: &str) -> Vec<String> {
    addr.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
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
    let addrs = addresses(addr);
    // TLS names the server after the first address unless told otherwise.
    let first = addrs.first().cloned().unwrap_or_default();
    let security = args.security.load(&first)?;
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

async fn open<M>(builder: Builder<M>, addr: &str, addrs: Vec<String>) -> Result<Client, String>
where
    M: MakeTransport<Target, Request, Item = Response> + Clone + Send + Sync + 'static,
    M::Future: Send,
{
    if addrs.len() > 1 {
        let router = builder.route(addrs).map_err(|e| format!("--addr {addr}: {e}"))?;
        return Ok(KvClient::new(BoxCloneService::new(router)));
    }
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
    use super::addresses;

    #[test]
    fn a_list_of_addresses_is_split_at_commas() {
        assert_eq!(addresses("127.0.0.1:7878"), ["127.0.0.1:7878"]);
        assert_eq!(addresses("a:1,b:2, c:3,"), ["a:1", "b:2", "c:3"]);
    }
}
