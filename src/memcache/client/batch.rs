//! [`MemcacheClient`]'s batches: many commands as one
//! [`Batch`](crate::batch::Batch), and the multi-key `get`.

use super::error::{server_error, unexpected};
use super::{get_reply, set_request, MemcacheClient, MemcacheError};
use crate::batch::{Batch, BatchResponse};
use crate::builder::Stack;
use crate::memcache::{Key, KeyError, Reply, Request, Status};
use crate::BoxError;
use bytes::{Bytes, BytesMut};
use tower::{Service, ServiceExt};

/// Batches: many commands as one [`Batch`] through the stack — written back
/// to back, one flush, answered in order, retried as a unit (see
/// [`crate::batch`]); over a sharded client, split per server.
impl<S, E> MemcacheClient<S>
where
    S: Service<Request, Response = Reply>
        + Service<Batch<Request>, Response = BatchResponse<Reply, E>>
        + Clone,
    <S as Service<Request>>::Error: Into<BoxError>,
    <S as Service<Batch<Request>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    /// Sends `requests` as one batch; returns the raw answers in order.
    /// Fails if any request failed in the stack (a lost connection, a
    /// deadline).
    pub async fn batch(
        &self,
        requests: impl IntoIterator<Item = Request>,
    ) -> Result<Vec<Reply>, MemcacheError> {
        let batch: Batch<Request> = requests.into_iter().collect();
        let replies = ServiceExt::<Batch<Request>>::oneshot(self.service.clone(), batch)
            .await
            .map_err(|e| MemcacheError::from_service(e.into()))?;
        replies
            .into_iter()
            .map(|reply| reply.map_err(|e| MemcacheError::from_service(e.into())))
            .collect()
    }

    /// The values of `keys`, in order, as one batch of `mg`s: over a
    /// sharded client, split per server and sent to all at once.
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, MemcacheError> {
        let asked: Vec<K> = keys.into_iter().collect();
        self.mg_batch(keys_of(&asked)?).await
    }

    async fn mg_batch(&self, keys: Vec<Key>) -> Result<Vec<Option<Bytes>>, MemcacheError> {
        let requests = keys.into_iter().map(|key| Request::Get { key });
        self.batch(requests)
            .await?
            .into_iter()
            .map(|reply| Ok(get_reply(server_error(reply)?)?.map(|item| item.value)))
            .collect()
    }

    /// Stores every pair (no TTL, flags 0) as one batch of `ms`; fails if
    /// any failed.
    pub async fn set_many<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), MemcacheError>
    where
        K: AsRef<[u8]>,
        V: Into<Bytes>,
    {
        let requests = pairs
            .into_iter()
            .map(|(key, value)| set_request(key, value, None, 0, None))
            .collect::<Result<Vec<_>, MemcacheError>>()?;
        for reply in self.batch(requests).await? {
            match server_error(reply)?.status {
                Status::Done => {}
                status => return Err(unexpected("ms", status)),
            }
        }
        Ok(())
    }
}

/// The [`Key`]s of a batch, copied into one buffer that they share (one
/// allocation for the batch, not one per key).
fn keys_of<K: AsRef<[u8]>>(asked: &[K]) -> Result<Vec<Key>, KeyError> {
    let mut buffer = BytesMut::with_capacity(asked.iter().map(|key| key.as_ref().len()).sum());
    for key in asked {
        buffer.extend_from_slice(key.as_ref());
    }
    let buffer = buffer.freeze();
    let mut at = 0;
    asked
        .iter()
        .map(|key| {
            let start = at;
            at += key.as_ref().len();
            Key::new(buffer.slice(start..at))
        })
        .collect()
}

/// The multi-key `get`, for a client of one server: over a [`Stack`] that
/// [`ClientBuilder`](crate::builder::ClientBuilder) connected. A
/// [sharded](MemcacheClient::sharded) client has none — its keys live on
/// several servers, and one `get` goes to one — and uses
/// [`get_many`](MemcacheClient::get_many), split per server:
///
/// ```compile_fail
/// # async fn sharded() -> Result<(), wirestack::memcache::MemcacheError> {
/// use wirestack::memcache::MemcacheClient;
/// let sharded = MemcacheClient::sharded(["127.0.0.1:11211", "127.0.0.1:11212"])?;
/// sharded.get_multi(["a", "b"]).await?; // no get_multi over several servers
/// # Ok(())
/// # }
/// ```
///
/// ```no_run
/// # async fn one() -> Result<(), wirestack::memcache::MemcacheError> {
/// use wirestack::memcache::MemcacheClient;
/// let one = MemcacheClient::connect("127.0.0.1:11211").await?;
/// let values = one.get_multi(["a", "b"]).await?;
/// # Ok(())
/// # }
/// ```
impl<T, E> MemcacheClient<Stack<T>>
where
    Stack<T>: Service<Request, Response = Reply>
        + Service<Batch<Request>, Response = BatchResponse<Reply, E>>
        + Clone,
    <Stack<T> as Service<Request>>::Error: Into<BoxError>,
    <Stack<T> as Service<Batch<Request>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    /// The values of `keys`, in order, with one multi-key `get` — one
    /// request and one answer, where [`get_many`](Self::get_many) sends a
    /// command per key: less work for the server and the client (see
    /// BENCHMARKS.md). Keys that are not plain ASCII (the text protocol's
    /// `get` has no base64) are sent as `get_many` sends them.
    pub async fn get_multi<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, MemcacheError> {
        let asked: Vec<K> = keys.into_iter().collect();
        let keys = keys_of(&asked)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if keys.iter().any(Key::is_base64) {
            return self.mg_batch(keys).await;
        }
        let reply = self.call(Request::GetMulti { keys }).await?;
        if reply.status != Status::Values {
            return Err(unexpected("get", reply.status));
        }
        // The server answers the keys it found, in the order asked.
        let mut found = reply.values.into_iter().peekable();
        let values = asked
            .iter()
            .map(|key| found.next_if(|(k, _)| k == key.as_ref()).map(|(_, value)| value))
            .collect();
        match found.next() {
            None => Ok(values),
            Some(_) => Err(unexpected("get", Status::Values)),
        }
    }
}
