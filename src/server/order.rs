//! How a protocol's answers leave a connection: the [`Order`] hook.
//!
//! In order, by default ([`InOrder`]): the answer to each request waits for
//! the answers to every request read before it, as HTTP/1.1 pipelining,
//! RESP and KV 1.1 require. A *tagged* protocol (KV 2.0, HTTP/2, memcached's
//! opaque, Kafka's correlation ids) lets each answer leave as soon as it is
//! ready, carrying its request's tag: its [`Order`] says which requests are
//! tagged, which messages have no answer of their own (a cancel), what to
//! answer a request that reuses a tag still in flight, and which message
//! tells the peer that the connection reads no more (GOAWAY).
//!
//! The server keeps the tags of the requests in flight on each connection;
//! the service sees requests exactly as the codec decoded them.

use crate::multiplex::Tag;

/// How the answers of one protocol leave a connection. See the
/// [module docs](self).
pub trait Order<Req, Resp> {
    /// The tag of `request` if its answer may leave before the answers to
    /// the requests read before it; `None` for a request answered in order.
    fn tag(&self, request: &Req) -> Option<Tag>;

    /// Whether `request` gets an answer of its own. A cancel does not: the
    /// service is called with it (so that it can cancel what it names) and
    /// its output is dropped. Default: every request is answered.
    fn answered(&self, _request: &Req) -> bool {
        true
    }

    /// The answer to a request whose tag is the tag of a request still in
    /// flight on its connection; the connection then reads no more, answers
    /// what it has and closes. `None`: drop it and close likewise.
    fn tag_in_use(&self, _tag: Tag) -> Option<Resp> {
        None
    }

    /// The protocol's message that this connection will read no more
    /// requests (sent on graceful shutdown before the connection answers
    /// what it has read and closes); `None` if the protocol has none.
    fn goaway(&self, _reason: &str) -> Option<Resp> {
        None
    }
}

/// The default [`Order`]: every answer in request order, no GOAWAY.
#[derive(Debug, Clone, Copy, Default)]
pub struct InOrder;

impl<Req, Resp> Order<Req, Resp> for InOrder {
    fn tag(&self, _request: &Req) -> Option<Tag> {
        None
    }
}
