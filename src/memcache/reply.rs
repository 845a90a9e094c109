//! [`Reply`]: what memcached answers to a meta command.

use bytes::Bytes;

/// The kind of answer: the meta protocol's two-letter code, or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// `VA`: a value follows (a hit of `mg ... v`, the result of `ma ... v`).
    Value,
    /// `HD`: done, or a hit without a value (stored, deleted, touched).
    Done,
    /// `EN`: `mg` missed.
    Miss,
    /// `NS`: not stored (`ms` in add or replace mode, `ma` on a miss).
    NotStored,
    /// `EX`: the CAS token did not match: someone else changed the item.
    Exists,
    /// `NF`: not found (`md`, `ma`, `ms` with a CAS token).
    NotFound,
    /// `MN`: the answer to `mn`.
    NoOp,
    /// `VALUE` blocks then `END`: the answer to a multi-key `get`
    /// ([`Reply::values`]).
    Values,
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR <message>`: the server refused the request as malformed.
    ClientError(String),
    /// `SERVER_ERROR <message>`: the server could not do it (`object too
    /// large for cache`, `out of memory storing object`).
    ServerError(String),
}

/// One answer to a meta command, with the return flags this client asks
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What kind of answer it is.
    pub status: Status,
    /// The data block of a `VA` answer.
    pub value: Option<Bytes>,
    /// The item's CAS token (`c`).
    pub cas: Option<u64>,
    /// The item's client flags (`f`).
    pub flags: Option<u32>,
    /// The opaque token echoed (`O`).
    pub opaque: Option<u32>,
    /// The keys found by a multi-key `get` and their values, in the order
    /// asked (keys as sent: plain).
    pub values: Vec<(Bytes, Bytes)>,
}

impl Reply {
    /// An answer of `status` with no data and no flags.
    pub fn new(status: Status) -> Reply {
        Reply {
            status,
            value: None,
            cas: None,
            flags: None,
            opaque: None,
            values: Vec::new(),
        }
    }

    /// `true` for `ERROR`, `CLIENT_ERROR` and `SERVER_ERROR`.
    pub fn is_error(&self) -> bool {
        matches!(
            self.status,
            Status::Error | Status::ClientError(_) | Status::ServerError(_)
        )
    }
}
