//! [`Batch`]: many requests that travel through a client stack as one unit.
//!
//! Calling a stack once per request costs a queue slot, a completion, a
//! deadline and a retry decision per request. A `Batch` is one call: every
//! layer of the default stack takes it as one message —
//!
//! * the [pipeline](crate::pipeline) charges it `len()` slots of its
//!   in-flight limit at once, writes its requests back to back (nothing else
//!   in between) and completes it once, when its last answer has arrived;
//! * the [deadline](crate::deadline) layer gives it one deadline;
//! * the [retry](crate::retry) layer retries it as a unit: when some of its
//!   requests failed, it sends again the remainder from the first failed
//!   one, if that is safe request by request (see [`Retry`](crate::retry::Retry)).
//!
//! The answer is a [`BatchResponse`]: one result per request, in order. A
//! request that was answered is `Ok`; one that was lost with its connection
//! carries the pipeline's error for it (so a caller can tell "not sent" from
//! "may have been sent" per request). An error for the batch as a whole
//! (its deadline passed, there was no connection) is the call's `Err`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tokio_util::codec::LinesCodec;
//! use tower::{service_fn, ServiceExt};
//! use wirestack::batch::Batch;
//! use wirestack::pipeline::Pipeline;
//! use wirestack::server::Server;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let shout = service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line.to_uppercase()) });
//! tokio::spawn(Server::new(LinesCodec::new()).serve(listener, tower::make::Shared::new(shout), std::future::pending()));
//!
//! let pipeline: Pipeline<String, String> =
//!     Pipeline::new(wirestack::transport::connect(addr, LinesCodec::new()).await?);
//! let batch: Batch<String> = (0..3).map(|i| format!("line {i}")).collect();
//! let answers = pipeline.oneshot(batch).await?;
//! assert_eq!(answers.len(), 3);
//! assert_eq!(answers[2].as_deref().unwrap(), "LINE 2");
//! # Ok(())
//! # }
//! ```

/// Requests sent as one unit; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<Req> {
    requests: Vec<Req>,
}

/// What a stack answers to a [`Batch`]: one result per request, in order.
pub type BatchResponse<Resp, E> = Vec<Result<Resp, E>>;

impl<Req> Batch<Req> {
    /// A batch of `requests`, sent in this order.
    pub fn new(requests: Vec<Req>) -> Self {
        Batch { requests }
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// `true` if it holds none.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The requests, in order.
    pub fn requests(&self) -> &[Req] {
        &self.requests
    }

    /// The requests.
    pub fn into_requests(self) -> Vec<Req> {
        self.requests
    }
}

impl<Req> From<Vec<Req>> for Batch<Req> {
    fn from(requests: Vec<Req>) -> Self {
        Batch::new(requests)
    }
}

impl<Req> FromIterator<Req> for Batch<Req> {
    fn from_iter<I: IntoIterator<Item = Req>>(iter: I) -> Self {
        Batch::new(iter.into_iter().collect())
    }
}
