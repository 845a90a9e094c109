//! How a protocol's answers leave a connection: the [`Order`] hook (its
//! docs say the rules), and [`InOrder`], the default.

use crate::multiplex::Tag;

/// How the answers of one protocol leave a connection.
///
/// In order, by default ([`InOrder`]): the answer to each request waits for
/// the answers to every request read before it, as HTTP/1.1 pipelining,
/// RESP and KV 1.1 require. A *tagged* protocol (KV 2.0, HTTP/2, memcached's
/// opaque, Kafka's correlation ids) lets each answer leave as soon as it is
/// ready, carrying its request's tag: its [`Order`] says which requests are
/// tagged, which messages have no answer of their own (a cancel), what to
/// answer a request that reuses a tag still in flight, and which message
/// tells the peer that the connection reads no more (GOAWAY).
///
/// The server keeps the tags of the requests in flight on each connection;
/// the service sees requests exactly as the codec decoded them. For each
/// request read, a connection asks, in this order:
///
/// 1. [`answered`](Order::answered): `false` (a cancel) — the service is
///    called with it and its output, answer or error, is dropped when it
///    completes. It counts against
///    [`max_in_flight_per_connection`](super::ServeConfig::max_in_flight_per_connection)
///    and holds its bytes of the buffer budget until then, but no answer
///    ever waits for it. Its tag is not looked at: a cancel names a request
///    in flight.
/// 2. [`tag`](Order::tag): `None` — its answer leaves after the answers to
///    every request read before it, tagged or not (a connection whose
///    requests are all untagged is served exactly as with [`InOrder`]).
///    `Some(tag)` — its answer leaves as soon as it is ready; a later
///    untagged request's answer waits for it, a later tagged one's does
///    not. Its tag is in flight from the moment it is read until its
///    answer is handed to the codec.
/// 3. A tag already in flight: the service is not called;
///    [`tag_in_use`](Order::tag_in_use)'s answer, if any, is written next,
///    ahead of the answers not written yet; the connection reads no more,
///    answers what is in flight and closes (close cause `tag_in_use`).
///
/// A service error on a tagged request has no answer to send, but no other
/// answer waits for it: the connection reads no more, answers what is in
/// flight and closes. (An untagged request's error closes at once, as
/// before: the answers behind it could not leave in their place.)
///
/// # GOAWAY
///
/// When a connection stops reading because the server shuts down
/// gracefully, or because it was idle for
/// [`idle_timeout`](super::ServeConfig::idle_timeout) — the two closes the
/// server decides on its own while the peer may still be sending — it
/// writes [`goaway`](Order::goaway)'s message, if the protocol has one,
/// ahead of every answer not yet written; then it answers every request it
/// has read, flushes and closes its sending side. So a request the peer
/// sent was either answered, or never read and never run: the peer can send
/// it again on another connection. It then reads and drops what the peer
/// still sends (it may have sent more before it read the GOAWAY) until the
/// peer closes, for 2 s at most: closing with bytes unread would reset the
/// connection, and a reset can destroy answers still on their way. The other causes send none: a peer that closed or
/// stalled does not need or read one, a peer whose framing was lost or that
/// reused a tag is not trusted to, and a service error or an answer that
/// closes (see [`CloseAfter`](super::CloseAfter)) says what it has to
/// itself. The reason given is `"server shutting down"` or
/// `"idle connection closed"`; the codec decides the bytes (and may write
/// none, on a connection that speaks an untagged version of the protocol).
///
/// This is the server side of finagle mux's drain (`Tdrain`) and HTTP/2's
/// GOAWAY, without waiting for the peer to acknowledge: the server stops
/// reading at once, so no request can be read after the GOAWAY was written.
///
/// ```
/// use wirestack::multiplex::Tag;
/// use wirestack::server::Order;
///
/// /// Lines "<tag> <text>", answered in any order; "cancel <tag>" cancels.
/// struct TaggedLines;
///
/// impl Order<String, String> for TaggedLines {
///     fn tag(&self, line: &String) -> Option<Tag> {
///         line.split_once(' ')?.0.parse().ok()
///     }
///     fn answered(&self, line: &String) -> bool {
///         !line.starts_with("cancel ")
///     }
///     fn tag_in_use(&self, tag: Tag) -> Option<String> {
///         Some(format!("{tag} ERROR tag in use"))
///     }
///     fn goaway(&self, reason: &str) -> Option<String> {
///         Some(format!("0 GOAWAY {reason}"))
///     }
/// }
/// assert_eq!(TaggedLines.tag(&"7 get k".to_owned()), Some(7));
/// assert_eq!(TaggedLines.tag(&"PING".to_owned()), None);
/// ```
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
    /// flight on its connection (the request itself is never served); the
    /// connection then reads no more, answers what it has and closes.
    /// `None`: drop it and close likewise.
    fn tag_in_use(&self, _tag: Tag) -> Option<Resp> {
        None
    }

    /// The protocol's message that this connection will read no more
    /// requests, for `reason` (sent on graceful shutdown and on the idle
    /// timeout, before the connection answers what it has read and closes;
    /// see [GOAWAY](Order#goaway)); `None` if the protocol has none.
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
