//! One load task's connection: a bare multiplexer (a pipeline or a
//! tagged multiplex, as the protocol says) to the server, or — with several
//! servers — a router over one to each, which splits every batch per server
//! and sends the parts at once.

use super::protocol::Wire;
use super::BenchConfig;
use tower::{Service, ServiceExt};
use wirestack::batch::Batch;
use wirestack::route::{Accrual, HealthConfig, Router};
use wirestack::BoxError;

/// What protocol `W` answers.
pub(crate) type Answer<W> = <W as Wire>::Answer;

/// One load task's connection; see the [module docs](self).
pub(crate) enum Connection<W: Wire> {
    One(W::Conn),
    Sharded(Router<Accrual<W::Conn>>),
}

impl<W: Wire> Connection<W> {
    /// A connection to every server of `config`.
    pub(crate) async fn open(config: &BenchConfig) -> Result<Self, BoxError> {
        if let [addr] = config.addrs[..] {
            return Ok(Connection::One(W::connect(config, addr).await?));
        }
        let mut pipes = Vec::with_capacity(config.addrs.len());
        for (i, &addr) in config.addrs.iter().enumerate() {
            let name = config.names.get(i).cloned().unwrap_or_else(|| addr.to_string());
            pipes.push((name, W::connect(config, addr).await?));
        }
        Ok(Connection::Sharded(Router::new(pipes, HealthConfig::default())?))
    }

    /// Sends `batch`; one answer per request, in order.
    pub(crate) async fn send(
        &mut self,
        batch: Batch<W::Request>,
    ) -> Result<Vec<Result<Answer<W>, BoxError>>, BoxError> {
        match self {
            Connection::One(pipe) => {
                let answers = ServiceExt::<Batch<W::Request>>::ready(pipe)
                    .await?
                    .call(batch)
                    .await?;
                Ok(answers.into_iter().map(|a| a.map_err(BoxError::from)).collect())
            }
            Connection::Sharded(router) => {
                ServiceExt::<Batch<W::Request>>::ready(router)
                    .await?
                    .call(batch)
                    .await
            }
        }
    }

    /// Sends one request; its answer.
    pub(crate) fn call(
        &self,
        request: W::Request,
    ) -> impl std::future::Future<Output = Result<Answer<W>, BoxError>> + 'static {
        let call: futures::future::BoxFuture<'static, Result<Answer<W>, BoxError>> = match self {
            Connection::One(pipe) => {
                let pipe = pipe.clone();
                Box::pin(async move { Ok(pipe.oneshot(request).await?) })
            }
            Connection::Sharded(router) => {
                let router = router.clone();
                Box::pin(async move { router.oneshot(request).await })
            }
        };
        call
    }

    /// `true` once the (single) connection is gone: the task stops. A
    /// sharded connection goes on with the servers that answer.
    pub(crate) fn is_broken(&self) -> bool {
        match self {
            Connection::One(conn) => W::is_broken(conn),
            Connection::Sharded(_) => false,
        }
    }
}
