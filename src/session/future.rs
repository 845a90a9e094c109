//! [`ResponseFuture`]: a call through [`Session`](super::Session), holding
//! its numbers until it ends.

use super::{Outstanding, SessionAnswer};
use pin_project::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The answer of one call through [`Session`](super::Session); its number counts answered
/// when this completes or is dropped.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    /// The numbers of its request(s).
    outstanding: Held,
}

/// The numbers a call holds: a single call's (no allocation), or a batch's.
#[derive(Debug)]
pub(super) enum Held {
    One(Option<Outstanding>),
    Many(Vec<Outstanding>),
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, outstanding: Held) -> Self {
        ResponseFuture { inner, outstanding }
    }
}

impl Held {
    fn first(&self) -> Option<&Outstanding> {
        match self {
            Held::One(one) => one.as_ref(),
            Held::Many(many) => many.first(),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    T: Answers,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = futures::ready!(this.inner.poll(cx));
        if let (Ok(answer), Some(first)) = (&output, this.outstanding.first()) {
            if answer.any_session_expired() {
                first.session.renew(first.stamp.session);
            }
        }
        *this.outstanding = Held::One(None);
        Poll::Ready(output)
    }
}

/// A call's answer as [`ResponseFuture`] reads it: one response, or a
/// batch's.
pub trait Answers {
    /// `true` if any response says the session expired.
    fn any_session_expired(&self) -> bool;
}

impl<T: SessionAnswer> Answers for T {
    fn any_session_expired(&self) -> bool {
        self.is_session_expired()
    }
}

impl<T: SessionAnswer, E> Answers for Vec<Result<T, E>> {
    fn any_session_expired(&self) -> bool {
        self.iter().flatten().any(SessionAnswer::is_session_expired)
    }
}
