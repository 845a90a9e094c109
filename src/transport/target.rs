//! [`Target`]: an address a connector connects to, resolved anew on each
//! connect — the one target type of every connector a
//! [`ClientBuilder`](crate::builder::ClientBuilder) uses.

use futures::future::BoxFuture;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use tokio::net::ToSocketAddrs;

/// Anything tokio can resolve, kept so that it is resolved again at every
/// connect (a DNS name that moves is followed).
///
/// [`ClientBuilder`](crate::builder::ClientBuilder) hands one to its
/// connector, so a connector of yours given to
/// [`ClientBuilder::connector`](crate::builder::ClientBuilder::connector)
/// is a `Service<Target>`; [`TcpConnector`](super::TcpConnector) and
/// `tls::TlsConnector` are.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use wirestack::transport::Target;
///
/// let target = Target::new("localhost:7878");
/// assert!(target.resolve().await?.iter().all(|addr| addr.port() == 7878));
/// # Ok(())
/// # }
/// ```
pub struct Target {
    address: Box<dyn Resolve>,
}

impl Target {
    /// A target that resolves `address` (a `SocketAddr`, `"host:port"`,
    /// `(ip, port)`, ...) at every connect.
    pub fn new(address: impl ToSocketAddrs + Clone + Send + 'static) -> Self {
        Target {
            address: Box::new(Address(address)),
        }
    }

    /// Resolves the address now: every `SocketAddr` it names, in order.
    pub fn resolve(&self) -> impl std::future::Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static {
        self.address.resolve()
    }
}

impl Clone for Target {
    fn clone(&self) -> Self {
        Target {
            address: self.address.clone_box(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").finish_non_exhaustive()
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target::new(addr)
    }
}

trait Resolve: Send {
    fn resolve(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
    fn clone_box(&self) -> Box<dyn Resolve>;
}

struct Address<A>(A);

impl<A: ToSocketAddrs + Clone + Send + 'static> Resolve for Address<A> {
    fn resolve(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let address = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the address resolved to nothing",
                ));
            }
            Ok(addrs)
        })
    }

    fn clone_box(&self) -> Box<dyn Resolve> {
        Box::new(Address(self.0.clone()))
    }
}
