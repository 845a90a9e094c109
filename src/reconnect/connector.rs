//! [`TcpConnector`]: TCP + a codec → a [`Pipeline`], the connector most
//! clients need.

use crate::pipeline::{self, Pipeline};
use crate::transport::{self, BoxError};
use futures::future::BoxFuture;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tokio::net::ToSocketAddrs;
use tokio_util::codec::{Decoder, Encoder};
use tower::Service;

/// Makes a [`Pipeline`] over a new TCP connection (Nagle off) framed by a
/// clone of a codec, for any address `tokio` can resolve.
///
/// `Req` is the request type the codec encodes (a codec may encode several).
/// It is a `Service<Target>`, so it is the connector a
/// [`Reconnect`](super::Reconnect) needs; the address is resolved again on
/// every attempt.
pub struct TcpConnector<C, Req> {
    codec: C,
    pipeline: pipeline::Builder,
    _request: PhantomData<fn(Req)>,
}

impl<C, Req> TcpConnector<C, Req> {
    /// Connects with `codec` and default [`Pipeline`] limits.
    pub fn new(codec: C) -> Self {
        Self::with_pipeline(codec, pipeline::Builder::default())
    }

    /// Connects with `codec` and builds each pipeline with `pipeline`.
    pub fn with_pipeline(codec: C, pipeline: pipeline::Builder) -> Self {
        TcpConnector {
            codec,
            pipeline,
            _request: PhantomData,
        }
    }
}

impl<C: Clone, Req> Clone for TcpConnector<C, Req> {
    fn clone(&self) -> Self {
        Self::with_pipeline(self.codec.clone(), self.pipeline.clone())
    }
}

impl<C: fmt::Debug, Req> fmt::Debug for TcpConnector<C, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnector")
            .field("codec", &self.codec)
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl<C, Req, T, E> Service<T> for TcpConnector<C, Req>
where
    T: ToSocketAddrs + Send + 'static,
    C: Encoder<Req, Error = E> + Decoder<Error = E> + Clone + Send + 'static,
    C::Item: Send + 'static,
    E: From<io::Error> + Into<BoxError>,
    Req: Send + 'static,
{
    type Response = Pipeline<Req, C::Item>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: T) -> Self::Future {
        let codec = self.codec.clone();
        let pipeline = self.pipeline.clone();
        Box::pin(async move {
            let transport = transport::connect(target, codec).await?;
            Ok(pipeline.spawn(transport))
        })
    }
}
