//! What a connection serves and with what: [`Served`], the codec, service
//! and protocol hooks named once with their bounds; [`Hooks`], the
//! protocol's hooks; [`Limits`], the server's limits for one connection.

use super::super::admission::Admission;
use super::super::bounds::ServeCodec;
use super::super::budget::FrameSize;
use super::super::close::CloseAfter;
use super::super::order::Order;
use super::super::overload::Overload;
use crate::BoxError;
use std::time::Duration;
use tower::Service;

/// The limits one connection is served with.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_in_flight: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    /// The largest frame read before the connection is admitted.
    pub(crate) max_unadmitted_frame: usize,
}

/// The protocol's hooks a connection asks: its answer to refused work,
/// which answers end the conversation, the order answers leave in (and its
/// GOAWAY), the length of a frame from its header, if it tells it, and
/// whether the connection is admitted.
#[derive(Debug, Clone)]
pub(crate) struct Hooks<C, O, K, R, D> {
    pub(crate) overload: O,
    pub(crate) close: K,
    pub(crate) order: R,
    pub(crate) frame_size: Option<FrameSize<C>>,
    pub(crate) admission: D,
}

/// What a connection serves, named once with the bounds serving it needs:
/// a codec that decodes the service's requests and encodes its answers, a
/// service whose errors box, and the protocol's hooks for those answers.
/// Implemented for every `(codec, service, overload, close-after, order,
/// admission)` tuple that meets them.
pub(crate) trait Served<Req> {
    type Response;
    type Codec: ServeCodec<Self::Response, Request = Req>;
    type Service: Service<Req, Response = Self::Response, Error: Into<BoxError>>;
    type Overload: Overload<Self::Response>;
    type CloseAfter: CloseAfter<Self::Response>;
    type Order: Order<Req, Self::Response>;
    type Admission: Admission<Self::Service>;
}

impl<C, S, O, K, R, D, Req> Served<Req> for (C, S, O, K, R, D)
where
    C: ServeCodec<S::Response, Request = Req>,
    S: Service<Req, Error: Into<BoxError>>,
    O: Overload<S::Response>,
    K: CloseAfter<S::Response>,
    R: Order<Req, S::Response>,
    D: Admission<S>,
{
    type Response = S::Response;
    type Codec = C;
    type Service = S;
    type Overload = O;
    type CloseAfter = K;
    type Order = R;
    type Admission = D;
}

/// The protocol's hooks of what `P` serves.
pub(crate) type HooksOf<P, Req> = Hooks<
    <P as Served<Req>>::Codec,
    <P as Served<Req>>::Overload,
    <P as Served<Req>>::CloseAfter,
    <P as Served<Req>>::Order,
    <P as Served<Req>>::Admission,
>;
