//! The server as a whole: shutdown and its deadline, with the clock paused.

use super::*;
use futures::SinkExt;
use std::convert::Infallible;
use tokio::time::Instant;
use tokio_util::codec::LinesCodec;

/// A line service that never answers "hang" and echoes everything else.
fn hang_or_echo() -> impl tower::Service<String, Response = String, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|line: String| async move {
        if line == "hang" {
            std::future::pending::<()>().await;
        }
        Ok::<_, Infallible>(line)
    })
}

/// Serves [`hang_or_echo`] with `config`; returns where, the stop switch,
/// and the task that reports how long (paused time) the shutdown took.
async fn serve(
    config: ServeConfig,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<(io::Result<()>, Duration)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = Server::new(LinesCodec::new()).with_config(config);
    let task = tokio::spawn(async move {
        let served = server.serve(
            listener,
            tower::make::Shared::new(hang_or_echo()),
            stopped.clone().cancelled_owned(),
        );
        tokio::pin!(served);
        tokio::select! {
            result = &mut served => return (result, Duration::ZERO),
            () = stopped.cancelled() => {}
        }
        let start = Instant::now();
        (served.await, start.elapsed())
    });
    (addr, stop, task)
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_cannot_finish_is_closed_at_the_shutdown_deadline() {
    let deadline = Duration::from_secs(7);
    let config = ServeConfig {
        shutdown_timeout: Some(deadline),
        ..ServeConfig::default()
    };
    let (addr, stop, task) = serve(config).await;
    let mut client = Framed::new(TcpStream::connect(addr).await.unwrap(), LinesCodec::new());
    client.send("hang").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    stop.cancel();
    let (result, took) = task.await.unwrap();
    result.unwrap();
    assert!(
        took >= deadline && took < deadline + Duration::from_millis(100),
        "{took:?}"
    );
    // The connection was closed, unanswered.
    use futures::StreamExt;
    assert!(matches!(client.next().await, None | Some(Err(_))));
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_shutdown_waits_for_every_answer() {
    let config = ServeConfig {
        shutdown_timeout: None,
        ..ServeConfig::default()
    };
    let (addr, stop, task) = serve(config).await;
    let mut client = Framed::new(TcpStream::connect(addr).await.unwrap(), LinesCodec::new());
    client.send("hang").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.cancel();
    // An hour later it is still draining.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_server_with_an_order_answers_by_tag_and_says_goaway_on_shutdown() {
    use super::tagged_lines::{Gates, TaggedLines};
    use futures::StreamExt;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (mut gates, service) = Gates::new();
    let config = ServeConfig {
        shutdown_timeout: None,
        ..ServeConfig::default()
    };
    let server = tokio::spawn(
        Server::new(LinesCodec::new())
            .with_config(config)
            .with_order(TaggedLines)
            .serve(
                listener,
                tower::make::Shared::new(service),
                stop.clone().cancelled_owned(),
            ),
    );
    let mut client = Framed::new(TcpStream::connect(addr).await.unwrap(), LinesCodec::new());
    client.send("1 hold:a").await.unwrap();
    client.send("2 now").await.unwrap();
    assert_eq!(client.next().await.transpose().unwrap().as_deref(), Some("2 now"));
    assert_eq!(gates.called().await, "1 hold:a");

    stop.cancel();
    assert_eq!(
        client.next().await.transpose().unwrap().as_deref(),
        Some("goaway: server shutting down")
    );
    gates.open("a");
    assert_eq!(
        client.next().await.transpose().unwrap().as_deref(),
        Some("1 hold:a")
    );
    assert!(
        client.next().await.is_none(),
        "closed once everything read is answered"
    );
    server.await.unwrap().unwrap();
}
