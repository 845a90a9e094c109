//! Helpers shared by the integration tests that speak the KV protocol over a
//! raw socket.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a test waits for an answer before calling it a hang.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

/// Reads one KV response frame: (status byte, value).
pub async fn read_response(socket: &mut (impl AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    tokio::time::timeout(ANSWER_DEADLINE, socket.read_exact(&mut header))
        .await
        .expect("a response in time")
        .expect("a response header");
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut value = vec![0u8; len];
    socket.read_exact(&mut value).await.expect("a response value");
    (header[0], value)
}
