//! The tagged multiplexer: many callers, one connection, answers in any
//! order, matched by tag. (Design notes being written.)

mod client;
mod connect;
mod dispatch;
mod protocol;
mod tags;
mod written;

pub use crate::pipeline::Error;
pub use client::{BatchFuture, Builder, Multiplex, ResponseFuture};
pub use connect::{MakeFuture, MakeMultiplex};
pub use dispatch::Dispatch;
pub use protocol::{Answers, Outgoing, Tag, Tagged};

#[cfg(test)]
mod tests;
