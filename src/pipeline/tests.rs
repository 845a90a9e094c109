//! The in-order pipeline against an in-memory peer: each test names the
//! behaviour it proves.

use super::fake::{pair, settle};
use super::{Builder, Error};
use std::time::Duration;
use tower::{Service, ServiceExt};

#[tokio::test(start_paused = true)]
async fn an_answer_read_before_a_broken_write_still_reaches_its_caller() {
    let (transport, mut peer) = pair::<String, String>(16);
    let mut pipeline = Builder::new().spawn(transport);
    ServiceExt::<String>::ready(&mut pipeline).await.expect("ready");
    let first = pipeline.call("PUT big".to_string());
    settle().await;
    assert_eq!(peer.read_all(), ["PUT big"]);
    // The peer refuses it and closes: its answer is in the socket, and the
    // next write breaks. The connection task sees both in the same pass.
    peer.send("BUSY".to_string());
    peer.stop_reading();
    ServiceExt::<String>::ready(&mut pipeline).await.expect("ready");
    let second = pipeline.call("GET a".to_string());
    let first = tokio::time::timeout(Duration::from_secs(60), first).await;
    assert_eq!(first.expect("in time").expect("answered"), "BUSY");
    let second = tokio::time::timeout(Duration::from_secs(60), second).await;
    assert!(
        matches!(second, Ok(Err(Error::Transport(_)))),
        "the request behind it fails with the broken write: {second:?}"
    );
}
