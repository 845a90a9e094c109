//! [`ClusterError`]: what only a cluster can get wrong.

/// A Redis Cluster failure that is not a connection's or a server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The keys of one command are in different hash slots, which a
    /// cluster cannot serve together: give them a common `{hash tag}`
    /// (`{user1}:a`, `{user1}:b`). Nothing was sent.
    #[error("the keys of one command hash to different slots ({first} and {other}); give them a common {{hash tag}}")]
    CrossSlot {
        /// The first key's slot.
        first: u16,
        /// The slot of a key that differs.
        other: u16,
    },
    /// A `CLUSTER SLOTS` reply was not what the command returns.
    #[error("malformed CLUSTER SLOTS reply: {0}")]
    BadSlotMap(String),
    /// No node of the slot map serves this slot (the cluster is not fully
    /// covered, or is being reconfigured).
    #[error("no node serves slot {0}")]
    Uncovered(u16),
    /// None of the nodes tried answered `CLUSTER SLOTS`.
    #[error("no node answered CLUSTER SLOTS (last: {0})")]
    NoSlotMap(String),
    /// A command was redirected (`MOVED`, `ASK`) or told to try again more
    /// times than the client follows; the last reply.
    #[error("gave up after {attempts} redirects or retries; last reply: {last}")]
    TooManyRedirects {
        /// Attempts made.
        attempts: u32,
        /// The last error reply.
        last: String,
    },
}
