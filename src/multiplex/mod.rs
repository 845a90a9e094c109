//! The tagged multiplexer: many callers, one connection, answers in any
//! order, matched by tag.
//!
//! [`Multiplex`] is the sibling of [`Pipeline`](crate::pipeline::Pipeline)
//! for protocols whose server may answer requests out of order — Kafka's
//! correlation ids, Cassandra's stream ids, HTTP/2 streams, Thrift and
//! finagle mux's tags, memcached's opaque. Callers share one connection by
//! cloning the service; a background task ([`Dispatch`]) owns the
//! transport:
//!
//! ```text
//!  caller ─┐                     ┌──────────── Dispatch task ────────────┐
//!  caller ─┼─► queue (bounded ───►  tag and write every queued request,  │──► socket
//!  caller ─┘   by max_in_flight) │  flush once; match answers by tag     ◄──── socket
//!  dropped ──► drop notes ───────►  cancels, pings, one deadline timer   │
//!                                └───────────────────────────────────────┘
//! ```
//!
//! It keeps all the pipeline gives — requests queued meanwhile written
//! together and flushed once, at most `max_in_flight` queued or unanswered
//! (then `poll_ready` waits), a [`Batch`](crate::batch::Batch) as one call,
//! one timer per connection for the deadlines a
//! [`Deadline`](crate::deadline::Deadline) layer sets, every waiter told at
//! once when the connection fails, the same [`Error`] and the same metrics
//! — and adds what tags make possible.
//!
//! ## The protocol's part
//!
//! The codec encodes [`Outgoing<Req>`](Outgoing) — a request with its tag
//! and what remains of its deadline, a cancel, a ping — and the response
//! type says what it answers through [`Tagged`]: a request's tag, the
//! server's GOAWAY, or nothing. The request type stays the protocol's own:
//! the tag travels beside it, as HTTP/2 writes a stream id in the frame.
//!
//! ## Tags: what they are and who owns them
//!
//! A tag is a number in `1..=max_tag` ([`Builder::max_tag`]; never 0) that
//! the connection task gives a request when it writes it, and that the
//! request's answer repeats. The task owns every tag: they live in a slab
//! indexed by tag with a free list, so taking one, matching an answer and
//! freeing it are O(1). A tag is freed when — and only when — its answer
//! has been read, *whatever happened to its caller*: a tag is never in
//! flight twice, so a late answer can never reach the wrong caller. When
//! every tag is in flight, requests wait in the task's queue until an
//! answer frees one. Each request of a batch gets a tag of its own; a
//! keepalive ping takes one from the same space.
//!
//! ## A caller that drops its future
//!
//! The future's `Drop` sends its call's id to the task — one message, O(1);
//! the task never scans its waiters to find who left. Dropped *before* the
//! request was written, it is never written and its permit returns. Dropped
//! *after*, the task writes [`Outgoing::Cancel`] for its tag once, keeps
//! the tag until the answer comes and drops the answer. A batch dropped
//! midway writes no more of its requests and cancels each written one not
//! answered yet. A cancel that crosses the answer on the wire is harmless:
//! the answer is read and dropped, the tag freed.
//!
//! ## Deadlines
//!
//! The deadline current when a request is called (see
//! [`crate::deadline`]) is kept with one timer per connection (the
//! pipeline's sweep). It goes to the peer too: [`Outgoing::Request`]'s
//! `budget` is what remains of it when the request is written (the clock is
//! read at most once per pass), so a server may refuse work nobody waits
//! for. When it passes, the caller gets [`Error::TimedOut`]; a request not
//! written is never written, a written one is cancelled as if dropped.
//!
//! ## GOAWAY
//!
//! When the peer says it reads no more requests ([`Answers::GoAway`]), the
//! connection takes no new work: `poll_ready` and [`Multiplex::broken`]
//! report [`Error::GoingAway`] (so a reconnect layer opens another
//! connection), calls queued but not written fail with
//! [`Error::NotSent`]`(GoingAway)` — safe to send again elsewhere, whatever
//! they do — and written ones are still answered. No more pings are sent;
//! once every tag is answered the task closes the connection.
//!
//! A GOAWAY promises that the peer answers every request it has read
//! before it closes (KV's GOAWAY does, as HTTP/2's says which streams it
//! will still process). So when the peer then closes the connection
//! cleanly with requests still unanswered, those were written but never
//! read: they fail with [`Error::NotSent`]`(GoingAway)` too, and a retry
//! layer sends them again, writes included. A reset or a transport error
//! after the GOAWAY promises nothing: those requests fail as lost with the
//! connection, as always.
//!
//! ## Keepalive
//!
//! With [`Builder::keepalive`], every answer read counts as a sign of life;
//! after the interval with none the task writes [`Outgoing::Ping`] with a
//! tag of its own (its answer is matched and dropped), and with nothing
//! received within the timeout after it the connection fails with
//! [`Error::Unresponsive`]: every waiter gets it at once, as on a reset
//! (see [`crate::keepalive`]).
//!
//! ## Failures
//!
//! An answer for a tag not in flight means the two ends no longer agree:
//! the connection fails with [`Error::UnexpectedResponse`] for every waiter
//! (never a panic). A message that answers nothing ([`Answers::Nothing`])
//! is dropped. When the transport fails, written requests get the error and
//! unwritten ones its [`Error::NotSent`] form, exactly as on a pipeline.
//!
//! ## Where this follows tokio-tower and finagle mux, and where it differs
//!
//! tokio-tower's `multiplex` client has the same shape — a service in
//! front of one task that owns the transport and matches responses by tag —
//! but leaves the tags to the protocol (a `TagStore` the user writes) and
//! does not cancel: a dropped caller's request runs to completion. Here the
//! multiplexer assigns tags itself from a bounded space with O(1) reuse,
//! and a drop writes the protocol's cancel, as finagle mux's `Tdiscarded`
//! does. From finagle mux come the cancel, the ping on the same tag space
//! and draining on the server's GOAWAY (mux's `Tdrain`). Beyond both: the
//! remaining deadline travels with each request, deadlines cost one timer
//! per connection rather than one per request, writes are coalesced into
//! one flush per pass, a batch is one call with one tag per request, and
//! GOAWAY's "not sent" is a typed error a retry layer can act on.
//!
//! ## Example
//!
//! A tiny tagged line protocol — `"<tag> <text>"` both ways — over an
//! in-memory connection to a server that answers its second request first:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bytes::BytesMut;
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};
//! use tower::ServiceExt;
//! use wirestack::multiplex::{Answers, Multiplex, Outgoing, Tag, Tagged};
//!
//! /// An answer: `"<tag> <text>"`; tag 0 is the server's GOAWAY.
//! #[derive(Debug)]
//! struct Answer {
//!     tag: Tag,
//!     text: String,
//! }
//!
//! impl Tagged for Answer {
//!     fn answers(&self) -> Answers {
//!         match self.tag {
//!             0 => Answers::GoAway,
//!             tag => Answers::Request(tag),
//!         }
//!     }
//! }
//!
//! /// Requests go out as `"<tag> <text>"`, cancels as `"<tag> cancel"`,
//! /// pings as `"<tag> ping"`.
//! struct TaggedLines(LinesCodec);
//!
//! impl Encoder<Outgoing<String>> for TaggedLines {
//!     type Error = LinesCodecError;
//!
//!     fn encode(&mut self, message: Outgoing<String>, dst: &mut BytesMut) -> Result<(), Self::Error> {
//!         let line = match message {
//!             Outgoing::Request { tag, request, .. } => format!("{tag} {request}"),
//!             Outgoing::Cancel(tag) => format!("{tag} cancel"),
//!             Outgoing::Ping(tag) => format!("{tag} ping"),
//!             _ => return Ok(()),
//!         };
//!         self.0.encode(line, dst)
//!     }
//! }
//!
//! impl Decoder for TaggedLines {
//!     type Item = Answer;
//!     type Error = LinesCodecError;
//!
//!     fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Answer>, Self::Error> {
//!         let Some(line) = self.0.decode(src)? else {
//!             return Ok(None);
//!         };
//!         let (tag, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
//!         let tag = tag
//!             .parse()
//!             .map_err(|_| LinesCodecError::Io(std::io::Error::other("a tag must be a number")))?;
//!         Ok(Some(Answer { tag, text: text.to_string() }))
//!     }
//! }
//!
//! let (client, server) = tokio::io::duplex(4096);
//! tokio::spawn(async move {
//!     // Reads two requests and answers the second one first.
//!     let mut lines = Framed::new(server, LinesCodec::new());
//!     let mut read = Vec::new();
//!     while read.len() < 2 {
//!         match lines.next().await {
//!             Some(Ok(line)) => read.push(line),
//!             _ => return,
//!         }
//!     }
//!     for line in read.into_iter().rev() {
//!         let (tag, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
//!         let _ = lines.send(format!("{tag} {}", text.to_uppercase())).await;
//!     }
//! });
//!
//! let mux: Multiplex<String, Answer> = Multiplex::new(Framed::new(client, TaggedLines(LinesCodec::new())));
//! let (a, b) = tokio::join!(mux.clone().oneshot("a".to_string()), mux.clone().oneshot("b".to_string()));
//! assert_eq!(a?.text, "A");
//! assert_eq!(b?.text, "B");
//! # Ok(())
//! # }
//! ```

mod client;
mod connect;
mod dispatch;
mod protocol;
mod tags;
mod written;

pub use crate::pipeline::Error;
pub use crate::pipeline::{MakeMultiplexer, Spawn, SpawnFuture};
pub use client::{BatchFuture, Builder, Multiplex, ResponseFuture};
pub use connect::{MakeFuture, MakeMultiplex};
pub use dispatch::Dispatch;
pub use protocol::{Answers, Outgoing, Tag, Tagged};
pub(crate) use written::IdHasher;

#[cfg(test)]
mod tests;
