//! The multiplexer over a scripted in-memory transport: ordering, write
//! coalescing, backpressure and failure, without any protocol or socket.

use futures::{Sink, Stream};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tower::{Service, ServiceExt};
use wirestack::pipeline::{Builder, Error, Pipeline};

/// What the scripted peer has seen and will send.
#[derive(Default)]
struct Wire {
    written: Vec<u32>,
    flushes: usize,
    /// Responses the peer has "sent", ready to be read.
    inbound: VecDeque<Result<u32, std::io::Error>>,
    closed_by_peer: bool,
    reader: Option<Waker>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Mutex<Wire>>);

impl Mock {
    fn respond(&self, item: Result<u32, std::io::Error>) {
        let mut wire = self.0.lock().unwrap();
        wire.inbound.push_back(item);
        if let Some(waker) = wire.reader.take() {
            waker.wake();
        }
    }

    fn close(&self) {
        let mut wire = self.0.lock().unwrap();
        wire.closed_by_peer = true;
        if let Some(waker) = wire.reader.take() {
            waker.wake();
        }
    }

    /// Echoes every written request that has not been answered yet, times 10.
    fn echo_written(&self, answered: &mut usize) {
        let written: Vec<u32> = self.0.lock().unwrap().written[*answered..].to_vec();
        *answered += written.len();
        for request in written {
            self.respond(Ok(request * 10));
        }
    }
}

impl Sink<u32> for Mock {
    type Error = std::io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: u32) -> Result<(), Self::Error> {
        self.0.lock().unwrap().written.push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.lock().unwrap().flushes += 1;
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Mock {
    type Item = Result<u32, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut wire = self.0.lock().unwrap();
        match wire.inbound.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if wire.closed_by_peer => Poll::Ready(None),
            None => {
                wire.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

async fn wait_for_writes(mock: &Mock, count: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while mock.0.lock().unwrap().written.len() < count {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("requests written");
}

#[tokio::test]
async fn queued_requests_are_written_together_and_flushed_once() {
    let mock = Mock::default();
    let (pipeline, dispatch) = Builder::new().build::<_, u32>(mock.clone());

    // Queue 100 requests before the connection task first runs.
    let mut responses = Vec::new();
    for i in 0..100u32 {
        let mut handle = pipeline.clone();
        ServiceExt::<u32>::ready(&mut handle).await.unwrap();
        responses.push(handle.call(i));
    }
    tokio::spawn(dispatch);
    wait_for_writes(&mock, 100).await;
    assert_eq!(mock.0.lock().unwrap().flushes, 1, "one flush for the whole batch");
    assert_eq!(
        mock.0.lock().unwrap().written,
        (0..100).collect::<Vec<_>>(),
        "written in call order"
    );

    mock.echo_written(&mut 0);
    for (i, response) in responses.into_iter().enumerate() {
        assert_eq!(response.await.unwrap(), i as u32 * 10, "matched in order");
    }
}

#[tokio::test]
async fn poll_ready_waits_at_max_in_flight() {
    let mock = Mock::default();
    let pipeline = Builder::new().max_in_flight(2).spawn::<_, u32>(mock.clone());
    let first = pipeline.clone().oneshot(1);
    let second = pipeline.clone().oneshot(2);
    let first = tokio::spawn(first);
    let second = tokio::spawn(second);
    wait_for_writes(&mock, 2).await;

    let mut third = pipeline.clone();
    let blocked = tokio::time::timeout(Duration::from_millis(50), ServiceExt::<u32>::ready(&mut third)).await;
    assert!(blocked.is_err(), "a third request waits for capacity");

    mock.respond(Ok(10));
    assert_eq!(first.await.unwrap().unwrap(), 10);
    let ready = tokio::time::timeout(Duration::from_secs(10), ServiceExt::<u32>::ready(&mut third)).await;
    assert!(ready.expect("capacity freed").is_ok());
    mock.respond(Ok(20));
    assert_eq!(second.await.unwrap().unwrap(), 20);
}

#[tokio::test]
async fn a_transport_error_fails_every_waiting_caller_and_breaks_the_service() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    let callers: Vec<_> = (0..10)
        .map(|i| tokio::spawn(pipeline.clone().oneshot(i)))
        .collect();
    wait_for_writes(&mock, 10).await;
    mock.respond(Ok(0));
    mock.respond(Err(std::io::Error::other("boom")));

    let mut results = Vec::new();
    for caller in callers {
        let result = tokio::time::timeout(Duration::from_secs(10), caller)
            .await
            .expect("no caller hangs");
        results.push(result.unwrap());
    }
    assert_eq!(results[0].as_ref().unwrap(), &0);
    for result in &results[1..] {
        assert!(matches!(result, Err(Error::Transport(source)) if source.to_string() == "boom"));
    }
    assert!(pipeline.broken().is_some());
    assert!(matches!(
        ServiceExt::<u32>::ready(&mut pipeline.clone()).await,
        Err(Error::Transport(_))
    ));
}

#[tokio::test]
async fn the_peer_closing_fails_waiting_callers_with_closed() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    let caller = tokio::spawn(pipeline.clone().oneshot(7));
    wait_for_writes(&mock, 1).await;
    mock.close();
    assert!(matches!(caller.await.unwrap(), Err(Error::Closed)));
    assert!(matches!(pipeline.clone().oneshot(8).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_response_nobody_asked_for_breaks_the_connection() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    mock.respond(Ok(99));
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(error) = pipeline.broken() {
                return error;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(matches!(result, Error::UnexpectedResponse));
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_disturb_the_order() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    let abandoned = pipeline.clone().oneshot(1);
    let kept = tokio::spawn(pipeline.clone().oneshot(2));
    // Drop the first caller's future after it was queued.
    let abandoned = tokio::spawn(abandoned);
    abandoned.abort();
    let _ = abandoned.await;
    let mut answered = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !kept.is_finished() {
            mock.echo_written(&mut answered);
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the kept request is answered");
    assert_eq!(kept.await.unwrap().unwrap(), 20);
}

#[tokio::test]
async fn requests_still_queued_when_the_connection_fails_are_not_sent() {
    let mock = Mock::default();
    // The peer's error is waiting before anything is written.
    mock.respond(Err(std::io::Error::other("reset")));
    let (pipeline, dispatch) = Builder::new().max_batch(1).build::<_, u32>(mock.clone());
    let mut responses = Vec::new();
    for i in 0..10u32 {
        let mut handle = pipeline.clone();
        ServiceExt::<u32>::ready(&mut handle).await.unwrap();
        responses.push(handle.call(i));
    }
    // One pass writes one request (max_batch 1), then reads the error.
    tokio::spawn(dispatch);
    let mut results = Vec::new();
    for response in responses {
        let result = tokio::time::timeout(Duration::from_secs(10), response).await;
        results.push(result.expect("no caller hangs"));
    }
    assert_eq!(
        mock.0.lock().unwrap().written,
        vec![0],
        "only the first was written"
    );
    assert!(
        matches!(&results[0], Err(Error::Transport(_))),
        "{:?}",
        results[0]
    );
    for result in &results[1..] {
        assert!(
            matches!(result, Err(Error::NotSent(cause)) if matches!(**cause, Error::Transport(_))),
            "{result:?}"
        );
    }
    // A call on the broken pipeline is not sent either.
    let mut handle = pipeline.clone();
    let late = match ServiceExt::<u32>::ready(&mut handle).await {
        Err(error) => error,
        Ok(ready) => ready.call(99).await.unwrap_err(),
    };
    assert!(
        matches!(late, Error::Transport(_) | Error::NotSent(_)),
        "{late:?}"
    );
}

// ---------------------------------------------------------------------------
// Batches and deadlines.

use wirestack::batch::Batch;
use wirestack::deadline::{Deadline, Elapsed};

#[tokio::test]
async fn a_batch_is_written_back_to_back_and_answered_at_once() {
    let mock = Mock::default();
    let (pipeline, dispatch) = Builder::new().max_batch(2).build::<_, u32>(mock.clone());
    // A single call, a batch, another single call, all queued before the
    // connection task runs; max_batch 2 cuts the batch over several passes.
    let mut handle = pipeline.clone();
    ServiceExt::<u32>::ready(&mut handle).await.unwrap();
    let first = handle.call(1);
    let mut handle = pipeline.clone();
    ServiceExt::<Batch<u32>>::ready(&mut handle).await.unwrap();
    let batch = handle.call(Batch::new(vec![2, 3, 4, 5]));
    let last = tokio::spawn(pipeline.clone().oneshot(6));
    tokio::spawn(dispatch);
    wait_for_writes(&mock, 6).await;
    assert_eq!(mock.0.lock().unwrap().written, vec![1, 2, 3, 4, 5, 6]);

    let mut answered = 0;
    mock.echo_written(&mut answered);
    assert_eq!(first.await.unwrap(), 10);
    let answers: Vec<u32> = batch.await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, vec![20, 30, 40, 50]);
    assert_eq!(last.await.unwrap().unwrap(), 60);
}

#[tokio::test]
async fn a_batch_is_charged_its_length_against_max_in_flight() {
    let mock = Mock::default();
    let pipeline = Builder::new().max_in_flight(4).spawn::<_, u32>(mock.clone());
    let batch = tokio::spawn(pipeline.clone().oneshot(Batch::new(vec![1, 2, 3])));
    wait_for_writes(&mock, 3).await;
    let single = tokio::spawn(pipeline.clone().oneshot(4));
    wait_for_writes(&mock, 4).await;
    let mut fifth = pipeline.clone();
    let blocked = tokio::time::timeout(Duration::from_millis(50), ServiceExt::<u32>::ready(&mut fifth)).await;
    assert!(blocked.is_err(), "3 + 1 of 4 slots are taken");

    // A batch larger than the free room waits for it, then goes whole.
    let big = tokio::spawn(pipeline.clone().oneshot(Batch::new(vec![7, 8])));
    mock.echo_written(&mut 0);
    assert_eq!(batch.await.unwrap().unwrap().len(), 3);
    assert_eq!(single.await.unwrap().unwrap(), 40);
    wait_for_writes(&mock, 6).await;
    mock.echo_written(&mut 4);
    let answers: Vec<u32> = big
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers, vec![70, 80]);
}

#[tokio::test]
async fn a_connection_lost_mid_batch_says_per_request_what_was_sent() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    let batch = tokio::spawn(pipeline.clone().oneshot(Batch::new(vec![1, 2, 3])));
    wait_for_writes(&mock, 3).await;
    mock.respond(Ok(10));
    mock.close();
    let answers = batch.await.unwrap().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].as_ref().unwrap(), &10);
    assert!(
        matches!(answers[1], Err(Error::Closed)),
        "written, unanswered: {:?}",
        answers[1]
    );
    assert!(matches!(answers[2], Err(Error::Closed)));
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_keeps_the_deadline_and_the_connection_goes_on() {
    let mock = Mock::default();
    let pipeline = Pipeline::new::<Mock>(mock.clone());
    let client = Deadline::new(pipeline.clone(), Duration::from_secs(2));

    // The peer is slow: the deadline passes with the request unanswered.
    let started = tokio::time::Instant::now();
    let error = client.clone().oneshot(1).await.unwrap_err();
    assert!(error.is::<Elapsed>(), "{error}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        pipeline.broken().is_none(),
        "a deadline does not break the connection"
    );

    // Its late answer is read in its place and dropped; the next caller
    // gets its own.
    let next = tokio::spawn(client.clone().oneshot(2));
    wait_for_writes(&mock, 2).await;
    mock.echo_written(&mut 0);
    assert_eq!(next.await.unwrap().unwrap(), 20);

    // A batch has one deadline.
    let error = client.clone().oneshot(Batch::new(vec![3, 4])).await.unwrap_err();
    assert!(error.is::<Elapsed>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_request_stuck_behind_a_peer_that_reads_nothing_times_out_unsent() {
    let mock = Mock::default();
    mock.0.lock().unwrap().written.clear();
    let (pipeline, dispatch) = Builder::new().build::<_, u32>(Blocked(mock.clone()));
    tokio::spawn(dispatch);
    let client = Deadline::new(pipeline.clone(), Duration::from_millis(500));
    let error = client.oneshot(1).await.unwrap_err();
    assert!(error.is::<Elapsed>(), "{error}");
    assert!(mock.0.lock().unwrap().written.is_empty(), "never written");
}

/// A transport whose peer never takes a byte: it is never ready to send.
struct Blocked(Mock);

impl Sink<u32> for Blocked {
    type Error = std::io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }
    fn start_send(self: Pin<&mut Self>, item: u32) -> Result<(), Self::Error> {
        self.0 .0.lock().unwrap().written.push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Blocked {
    type Item = Result<u32, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().0).poll_next(cx)
    }
}

#[tokio::test]
async fn a_caller_that_waited_for_room_loses_no_permit() {
    let mock = Mock::default();
    let pipeline = Builder::new().max_in_flight(2).spawn::<_, u32>(mock.clone());
    let first = tokio::spawn(pipeline.clone().oneshot(1));
    let second = tokio::spawn(pipeline.clone().oneshot(2));
    wait_for_writes(&mock, 2).await;

    // A third caller queues for room...
    let mut third = pipeline.clone();
    let mut ready = ServiceExt::<u32>::ready(&mut third);
    assert!(futures::poll!(&mut ready).is_pending());
    // ...and both slots free at once: one is handed to it while it waits.
    mock.respond(Ok(10));
    mock.respond(Ok(20));
    assert_eq!(first.await.unwrap().unwrap(), 10);
    assert_eq!(second.await.unwrap().unwrap(), 20);
    ready.await.unwrap();
    let call = tokio::spawn(third.call(3));
    wait_for_writes(&mock, 3).await;
    mock.respond(Ok(30));
    assert_eq!(call.await.unwrap().unwrap(), 30);

    // Both slots are free again: two batches that each need both, from two
    // callers, go one after the other.
    let a = tokio::spawn(pipeline.clone().oneshot(Batch::new(vec![4, 5])));
    let b = tokio::spawn(pipeline.clone().oneshot(Batch::new(vec![6, 7])));
    let mut answered = 3;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(a.is_finished() && b.is_finished()) {
            mock.echo_written(&mut answered);
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("no permit was lost");
    assert_eq!(a.await.unwrap().unwrap().len(), 2);
    assert_eq!(b.await.unwrap().unwrap().len(), 2);
}
