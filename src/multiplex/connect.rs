//! [`MakeMultiplex`]: a connector of tagged multiplexers, from a connector
//! of transports.

use super::client::{Builder, Multiplex};
use super::protocol::{Outgoing, Tagged};
use crate::transport::Transport;
use crate::BoxError;
use futures::ready;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;

/// Puts a [`Multiplex`] on every transport a connector makes: the
/// connector the [reconnect](crate::reconnect) layer needs, as
/// [`MakePipeline`](crate::pipeline::MakePipeline) is for pipelines.
///
/// `M` is any `Service<Target>` whose transports carry
/// [`Outgoing<Req>`](Outgoing) and read [`Tagged`] responses; `Req` is the
/// request type the multiplexers send.
pub struct MakeMultiplex<M, Req> {
    connector: M,
    builder: Builder,
    _request: PhantomData<fn(Req)>,
}

impl<M, Req> MakeMultiplex<M, Req> {
    /// Multiplexers built by `builder` over the transports `connector` makes.
    pub fn new(connector: M, builder: Builder) -> Self {
        MakeMultiplex {
            connector,
            builder,
            _request: PhantomData,
        }
    }

    /// The transport connector.
    pub fn get_ref(&self) -> &M {
        &self.connector
    }
}

impl<M: Clone, Req> Clone for MakeMultiplex<M, Req> {
    fn clone(&self) -> Self {
        Self::new(self.connector.clone(), self.builder.clone())
    }
}

impl<M: fmt::Debug, Req> fmt::Debug for MakeMultiplex<M, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeMultiplex")
            .field("connector", &self.connector)
            .field("builder", &self.builder)
            .finish()
    }
}

impl<M, Target, Req> Service<Target> for MakeMultiplex<M, Req>
where
    M: Service<Target>,
    M::Response: Transport<Outgoing<Req>> + Send + 'static,
    <M::Response as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    <M::Response as Transport<Outgoing<Req>>>::Response: Tagged + Send + 'static,
    Req: Send + 'static,
{
    type Response = Multiplex<Req, <M::Response as Transport<Outgoing<Req>>>::Response>;
    type Error = M::Error;
    type Future = MakeFuture<M::Future, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.connector.poll_ready(cx)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        MakeFuture {
            connecting: self.connector.call(target),
            builder: Some(self.builder.clone()),
            _request: PhantomData,
        }
    }
}

/// The future of [`MakeMultiplex`]: connects, then spawns the multiplexer's
/// connection task.
#[pin_project]
pub struct MakeFuture<F, Req> {
    #[pin]
    connecting: F,
    builder: Option<Builder>,
    _request: PhantomData<fn(Req)>,
}

impl<F, Req> fmt::Debug for MakeFuture<F, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeFuture").finish_non_exhaustive()
    }
}

impl<F, T, E, Req> Future for MakeFuture<F, Req>
where
    F: Future<Output = Result<T, E>>,
    T: Transport<Outgoing<Req>> + Send + 'static,
    <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
    T::Response: Tagged + Send + 'static,
    Req: Send + 'static,
{
    type Output = Result<Multiplex<Req, T::Response>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let transport = ready!(this.connecting.poll(cx))?;
        let builder = this
            .builder
            .take()
            .expect("multiplex::MakeFuture polled after completion");
        Poll::Ready(Ok(builder.spawn(transport)))
    }
}
