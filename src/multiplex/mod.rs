//! The tagged multiplexer: many callers, one connection, answers in any
//! order, matched by tag. (Being written: see issue 20.)

mod protocol;

pub use protocol::{Answers, Outgoing, Tag, Tagged};
