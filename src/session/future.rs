//! [`ResponseFuture`]: a call through [`Session`](super::Session), holding
//! its numbers until it ends.

use super::{ClientSession, NoRoom, Numbering, Outstanding, SessionAnswer, Stamped, Waiter};
use pin_project::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tower::Service;

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

/// The answer of one call through [`Session`](super::Session): its call
/// below, or — while no session number is free — the wait for one.
#[pin_project(project = CallProj)]
pub struct CallFuture<S, R>
where
    S: Service<Stamped<R>>,
{
    #[pin]
    state: CallState<S, R>,
}

#[pin_project(project = CallStateProj)]
enum CallState<S, R>
where
    S: Service<Stamped<R>>,
{
    Called(#[pin] ResponseFuture<S::Future>),
    /// Boxed: the rare path keeps the common future small.
    Waiting(Box<Waiting<S, R>>),
}

struct Waiting<S, R> {
    /// The readied service the call goes to.
    service: Option<S>,
    request: Option<R>,
    /// Counts this call waiting while it does.
    waiter: Waiter,
    /// Enabled before each look at the numbers, so no wake is missed.
    room: Pin<Box<OwnedNotified>>,
    give_up: Pin<Box<Sleep>>,
    max_wait: Duration,
}

impl<S, R> std::fmt::Debug for CallFuture<S, R>
where
    S: Service<Stamped<R>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            CallState::Called(_) => "called",
            CallState::Waiting(_) => "waiting for a session number",
        };
        f.debug_struct("CallFuture").field("state", &state).finish()
    }
}

impl<S, R> CallFuture<S, R>
where
    S: Service<Stamped<R>>,
{
    pub(super) fn called(future: ResponseFuture<S::Future>) -> Self {
        CallFuture {
            state: CallState::Called(future),
        }
    }

    pub(super) fn waiting(service: S, request: R, session: ClientSession, max_wait: Duration) -> Self {
        let waiter = session.waiter();
        let room = Box::pin(session.room().notified_owned());
        CallFuture {
            state: CallState::Waiting(Box::new(Waiting {
                service: Some(service),
                request: Some(request),
                waiter,
                room,
                give_up: Box::pin(tokio::time::sleep(max_wait)),
                max_wait,
            })),
        }
    }
}

impl<S, R> Future for CallFuture<S, R>
where
    S: Service<Stamped<R>>,
    S::Response: Answers,
    S::Error: From<NoRoom>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let waiting = match state.as_mut().project() {
                CallStateProj::Called(future) => return future.poll(cx),
                CallStateProj::Waiting(waiting) => waiting,
            };
            waiting.room.as_mut().enable();
            let (stamp, outstanding) = match waiting.waiter.session().number() {
                Numbering::Given(outstanding) => (Some(outstanding.stamp()), Some(outstanding)),
                Numbering::Plain => (None, None),
                Numbering::Wait => {
                    if waiting.room.as_mut().poll(cx).is_ready() {
                        // Woken: look again, waiting on a fresh notification.
                        waiting.room = Box::pin(waiting.waiter.session().room().notified_owned());
                        continue;
                    }
                    if waiting.give_up.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(NoRoom {
                            waited: waiting.max_wait,
                        }
                        .into()));
                    }
                    return Poll::Pending;
                }
            };
            let (Some(mut service), Some(request)) = (waiting.service.take(), waiting.request.take()) else {
                // Taken only here, right before the state changes.
                unreachable!("a waiting call is called once");
            };
            let future = service.call(Stamped { request, stamp });
            state.set(CallState::Called(ResponseFuture::new(
                future,
                Held::One(outstanding),
            )));
        }
    }
}
