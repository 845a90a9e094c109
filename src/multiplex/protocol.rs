//! What a tagged protocol tells the multiplexer: [`Outgoing`] messages its
//! codec writes, and the [`Tagged`] answer to "which request does this
//! response answer?".

use std::time::Duration;

/// A request's tag: the number that its answer repeats. The multiplexer
/// assigns tags from `1..=max_tag`, never one still in flight.
pub type Tag = u32;

/// What the multiplexer writes to its transport: a protocol's codec for
/// a tagged client encodes `Outgoing<Req>`.
///
/// The tag travels *beside* the request, not in it: the request type stays
/// the protocol's own, and the codec writes the tag where the protocol's
/// header has it (as HTTP/2 writes a stream id in the frame, not in the
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outgoing<Req> {
    /// A caller's request.
    Request {
        /// Its tag, which the answer repeats.
        tag: Tag,
        /// What remains of the caller's deadline when it was written, for a
        /// protocol that tells the server (it may refuse work no one waits
        /// for any more); a codec whose protocol has no such field ignores it.
        budget: Option<Duration>,
        /// The request.
        request: Req,
    },
    /// The caller of the request tagged `Tag` stopped waiting: the
    /// protocol's cancel, where it has one. A codec whose protocol has none
    /// writes nothing. The tag stays in use until its answer comes.
    Cancel(Tag),
    /// A keepalive ping, tagged like a request: the protocol's ping, whose
    /// answer repeats the tag. Sent only when keepalive is on; a codec whose
    /// protocol has no ping must fail to encode it (so that keepalive
    /// asked of it is an error, not silence).
    Ping(Tag),
}

/// What a response of a tagged protocol is to the multiplexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// The answer to the request with this tag.
    Request(Tag),
    /// The server will read no more requests from this connection (KV's
    /// GOAWAY, HTTP/2's GOAWAY): requests not written yet go elsewhere,
    /// requests written are still answered.
    GoAway,
    /// A message from the server that answers no request and asks nothing
    /// of the client: it is dropped.
    Nothing,
}

/// Implemented by a tagged protocol's response type: which request a
/// response answers, or which message from the server it is.
///
/// ```
/// use wirestack::multiplex::{Answers, Tag, Tagged};
///
/// /// A line protocol whose answers start with the tag: "7 hello".
/// struct Line { tag: Tag, text: String }
///
/// impl Tagged for Line {
///     fn answers(&self) -> Answers {
///         Answers::Request(self.tag)
///     }
/// }
/// ```
pub trait Tagged {
    /// Which request this response answers, or which server message it is.
    fn answers(&self) -> Answers;
}
