//! Version 2's request ids as the framework sees them: [`Tagged`] for the
//! client's multiplexer, [`ByRequestId`] as the server's [`Order`].

use super::{Incoming, Response, Status};
use crate::multiplex::{Answers, Tag, Tagged};
use crate::server::Order;

/// A response with id 0 is a message from the server: `GOAWAY`, or
/// nothing the multiplexer acts on; any other id answers that request.
///
/// ```
/// use wirestack::kv::{Response, Status};
/// use wirestack::multiplex::{Answers, Tagged};
///
/// assert_eq!(Response::ok_empty().with_id(7).answers(), Answers::Request(7));
/// assert_eq!(Response::goaway("shutting down").answers(), Answers::GoAway);
/// assert_eq!(Response::error(Status::BadRequest, "id 0").answers(), Answers::Nothing);
/// ```
impl Tagged for Response {
    fn answers(&self) -> Answers {
        match (self.id, self.status) {
            (0, Status::GoAway) => Answers::GoAway,
            (0, _) => Answers::Nothing,
            (id, _) => Answers::Request(id),
        }
    }
}

/// The KV server's [`Order`]: a version 2 request's answer leaves as soon
/// as it is ready, tagged with its request id; a 1.1 request's in order.
/// Give it to the server with `Server::with_order(kv::ByRequestId)`.
///
/// * the tag of a version 2 request (or of a rejection of one, whose
///   answer carries its id) is its request id; a 1.1 request has none;
/// * a `CANCEL` has no tag (the id it carries is its target's) and is not
///   answered: the service cancels what it names, and its output is
///   dropped;
/// * a request whose id is that of a request still in flight is answered
///   `BAD_REQUEST` with that id, and the connection closes
///   (`PROTOCOL.md`);
/// * on graceful shutdown each connection is sent `GOAWAY` (id 0) with the
///   reason.
///
/// It is implemented for every response made from a [`Response`]: the KV
/// service's own ([`KvService`](super::KvService) alone) and [`Reply`](super::Reply)
/// (behind [`RequireAuth`](super::RequireAuth)).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByRequestId;

impl<Resp: From<Response>> Order<Incoming, Resp> for ByRequestId {
    fn tag(&self, request: &Incoming) -> Option<Tag> {
        match request {
            // A CANCEL's id is its target's, still in flight: it is no tag
            // of its own (it has no answer).
            Incoming::Request(_) | Incoming::Cancel { .. } => None,
            // A rejection of id 0 (a frame whose id was 0) has no tag.
            Incoming::Identified { .. } | Incoming::Rejected(_) => request.id(),
        }
    }

    fn answered(&self, request: &Incoming) -> bool {
        !matches!(request, Incoming::Cancel { .. })
    }

    /// The server closes the connection after it, as the hook says.
    fn tag_in_use(&self, tag: Tag) -> Option<Resp> {
        let message = format!("request id {tag} is the id of a request still in flight");
        Some(Response::error(Status::BadRequest, message).with_id(tag).into())
    }

    fn goaway(&self, reason: &str) -> Option<Resp> {
        Some(Response::goaway(reason).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Reply, Request};

    #[test]
    fn version_2_requests_are_tagged_with_their_id_and_cancels_go_unanswered() {
        let ping = Request::Ping {
            payload: bytes::Bytes::new(),
        };
        let order: &dyn Order<Incoming, Response> = &ByRequestId;
        assert_eq!(order.tag(&Incoming::Request(ping.clone())), None);
        let identified = Incoming::Identified {
            id: 9,
            deadline: None,
            sequenced: None,
            request: ping,
        };
        assert_eq!(order.tag(&identified), Some(9));
        assert!(order.answered(&identified));
        let rejected = Incoming::Rejected(Response::error(Status::BadRequest, "x").with_id(4));
        assert_eq!(order.tag(&rejected), Some(4));
        let id_zero = Incoming::Rejected(Response::error(Status::BadRequest, "id 0"));
        assert_eq!(order.tag(&id_zero), None);
        assert!(!order.answered(&Incoming::Cancel { id: 9 }));
        assert_eq!(
            order.tag(&Incoming::Cancel { id: 9 }),
            None,
            "a cancel of 9 is no reuse of 9"
        );
        let in_use = order.tag_in_use(9).unwrap();
        assert_eq!((in_use.status, in_use.id), (Status::BadRequest, 9));
        let goaway = order.goaway("bye").unwrap();
        assert_eq!(
            (goaway.status, goaway.id, goaway.answers()),
            (Status::GoAway, 0, Answers::GoAway)
        );
        let reply: Reply = Order::<Incoming, Reply>::tag_in_use(&ByRequestId, 3).unwrap();
        assert_eq!((reply.response.id, reply.silent), (3, false));
    }
}
