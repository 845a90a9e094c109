//! How a protocol asks the server to close a connection after an answer:
//! the [`CloseAfter`] hook.
//!
//! Some answers end a conversation: a refused credential, a "goodbye". The
//! server cannot know which, since it knows no protocol, so it asks a
//! [`CloseAfter`] about every response it is about to write. When the hook
//! says yes, the server writes that response, flushes, and closes the
//! connection: it reads nothing more, and the requests that were read
//! after it are dropped unanswered (their futures dropped). With answers by
//! tag (see [`Order`](super::Order)), every request still in flight when
//! that answer is written is dropped, whenever it was read.
//!
//! The answer must be decidable from the response alone, so a protocol
//! that closes only on *some* of its answers makes its service's response
//! type say so (a field or a variant that its encoder does not write).
//!
//! ```
//! use wirestack::server::{CloseAfter, Server};
//!
//! // A line protocol whose "BYE" answer ends the connection.
//! let bye = |line: &String| line == "BYE";
//! assert!(bye.close_after(&"BYE".to_string()));
//! # let _ = Server::new(tokio_util::codec::LinesCodec::new()).with_close_after(bye);
//! ```

/// Decides, for each response, whether the connection closes once it is
/// written. Closures `Fn(&Resp) -> bool` implement it.
pub trait CloseAfter<Resp> {
    /// `true` to close the connection after writing `response`.
    fn close_after(&self, response: &Resp) -> bool;
}

impl<Resp, F> CloseAfter<Resp> for F
where
    F: Fn(&Resp) -> bool,
{
    fn close_after(&self, response: &Resp) -> bool {
        self(response)
    }
}

/// The default [`CloseAfter`]: no response closes the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepOpen;

impl<Resp> CloseAfter<Resp> for KeepOpen {
    fn close_after(&self, _response: &Resp) -> bool {
        false
    }
}
