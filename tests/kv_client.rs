//! `KvClient` against a real KV server on 127.0.0.1:0: every command, every
//! status, many tasks sharing one client, and a shutdown mid-flight.

use bytes::Bytes;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wirestack::kv::{self, KvClient, KvError, KvServer, KvServerConfig, Limits, Request, Status};

async fn server() -> kv::KvServer {
    KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .expect("bind a loopback port")
}

#[tokio::test]
async fn every_command_through_the_client() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();

    client.ping().await.unwrap();
    assert_eq!(&client.ping_with("echo").await.unwrap()[..], b"echo");

    assert_eq!(client.get("k").await.unwrap(), None);
    client.put("k", "v1").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    client.put("k", "v2").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(client.delete("k").await.unwrap());
    assert!(!client.delete("k").await.unwrap());
    assert_eq!(client.get("k").await.unwrap(), None);

    // The empty key is a key.
    client.put("", "empty").await.unwrap();
    assert_eq!(client.get("").await.unwrap().as_deref(), Some(&b"empty"[..]));

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn put_with_ttl_expires_and_put_clears_the_ttl() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();

    client
        .put_with_ttl("short", "v", Duration::from_millis(50))
        .await
        .unwrap();
    client
        .put_with_ttl("cleared", "v", Duration::from_millis(50))
        .await
        .unwrap();
    client.put("cleared", "forever").await.unwrap();
    assert!(client.get("short").await.unwrap().is_some());

    // Poll with a bounded deadline rather than assuming a sleep was enough.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while client.get("short").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "key never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.get("cleared").await.unwrap().as_deref(),
        Some(&b"forever"[..])
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_request_status_for_a_zero_ttl() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    let response = client
        .call(Request::PutTtl {
            key: "k".into(),
            ttl_ms: 0,
            value: "v".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.status, Status::BadRequest);
    // The connection goes on.
    client.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_large_status_then_the_connection_closes() {
    let config = KvServerConfig {
        limits: Limits {
            max_key_bytes: 8,
            max_value_bytes: 16,
        },
        ..KvServerConfig::default()
    };
    let server = KvServer::start("127.0.0.1:0", config).await.unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    match client.put("k", vec![0u8; 17]).await {
        Err(KvError::Server {
            status: Status::TooLarge,
            message,
        }) => assert!(message.contains("17")),
        other => panic!("expected TOO_LARGE, got {other:?}"),
    }
    // That connection is gone: the client's stack replaces it.
    client.ping().await.unwrap();
    let stats = client.service().reconnect_stats();
    assert_eq!((stats.disconnects, stats.reconnects()), (1, 1), "{stats:?}");
    let fresh = KvClient::connect(server.local_addr()).await.unwrap();
    fresh.put("k", vec![0u8; 16]).await.unwrap();
    server.shutdown().await.unwrap();
}

/// A scripted 1.1 peer that answers every request with `status` and a
/// message — for the statuses our own server has no reason to send here —
/// except HELLO, which it does not know (`BAD_REQUEST`, as a 1.1 server
/// answers an unknown command): the client goes on in 1.1.
async fn scripted_server(status: Status) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 9];
        while socket.read_exact(&mut header).await.is_ok() {
            let key_len = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
            let value_len = u32::from_le_bytes(header[5..9].try_into().unwrap()) as usize;
            let mut body = vec![0u8; key_len + value_len];
            socket.read_exact(&mut body).await.unwrap();
            let message = b"scripted";
            let status = match header[0] {
                0x07 => Status::BadRequest,
                _ => status,
            };
            let mut frame = vec![status as u8];
            frame.extend_from_slice(&(message.len() as u32).to_le_bytes());
            frame.extend_from_slice(message);
            socket.write_all(&frame).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn error_busy_and_storage_statuses_are_typed_errors() {
    for status in [Status::Error, Status::Busy, Status::Storage, Status::BadRequest] {
        let client = KvClient::connect(scripted_server(status).await).await.unwrap();
        let result = client.put("k", "v").await;
        match &result {
            // A refusal that outlasts the retries is reported as itself.
            Err(KvError::Busy { message }) if status == Status::Busy => assert_eq!(message, "scripted"),
            Err(KvError::Server { status: got, message }) => {
                assert_eq!(*got, status);
                assert_eq!(message, "scripted");
            }
            other => panic!("expected {status}, got {other:?}"),
        }
        assert_eq!(result.unwrap_err().is_busy(), status == Status::Busy);
        let typed = |result: Result<(), KvError>| {
            matches!(result, Err(KvError::Server { .. } | KvError::Busy { .. }))
        };
        assert!(typed(client.get("k").await.map(drop)));
        assert!(typed(client.delete("k").await.map(drop)));
    }
}

#[tokio::test]
async fn not_found_to_a_put_is_an_unexpected_status() {
    let client = KvClient::connect(scripted_server(Status::NotFound).await)
        .await
        .unwrap();
    assert!(matches!(
        client.put("k", "v").await,
        Err(KvError::UnexpectedStatus {
            status: Status::NotFound,
            command: "PUT"
        })
    ));
    assert_eq!(client.get("k").await.unwrap(), None);
    assert!(!client.delete("k").await.unwrap());
}

#[tokio::test]
async fn batches_pipeline_and_keep_their_order() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    client
        .put_many((0..2_000).map(|i| (format!("k{i}"), format!("v{i}"))))
        .await
        .unwrap();
    let keys: Vec<String> = (0..2_000)
        .map(|i| format!("k{i}"))
        .chain(["missing".to_owned()])
        .collect();
    let values = client.get_many(keys).await.unwrap();
    assert_eq!(values.len(), 2_001);
    for (i, value) in values[..2_000].iter().enumerate() {
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    assert_eq!(values[2_000], None);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_from_32_tasks_share_one_client() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..(10_000 / 32 + 1) {
                    let key = format!("task{task}:key{i}");
                    let value = Bytes::from(format!("task{task}:value{i}"));
                    if i % 2 == 0 {
                        client.put(key.clone(), value.clone()).await.unwrap();
                        assert_eq!(client.get(key).await.unwrap(), Some(value));
                    } else {
                        let echo = client.ping_with(value.clone()).await.unwrap();
                        assert_eq!(echo, value, "task {task} got another task's answer");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no task hangs")
            .unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_requests_in_flight_ends_every_caller() {
    let server = server().await;
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    let (ok, failed) = (
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                for i in 0..5_000 {
                    match client.put(format!("{task}:{i}"), "v").await {
                        Ok(()) => ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        // Lost with the connection, or not sent because
                        // the server is gone (after retries, within the
                        // client's deadline).
                        Err(KvError::Connection(_) | KvError::Disconnected(_) | KvError::TimedOut) => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                        Err(other) => panic!("unexpected error kind: {other:?}"),
                    };
                }
            })
        })
        .collect();
    // Shut down once the load is certainly under way.
    while ok.load(std::sync::atomic::Ordering::Relaxed) < 1_000 {
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown finishes")
        .unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("every caller returns")
            .unwrap();
    }
    assert!(
        failed.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "shutdown interrupted the load"
    );
    // With the server gone, the client says so within its deadline.
    assert!(matches!(
        client.ping().await,
        Err(KvError::Disconnected(_) | KvError::TimedOut)
    ));
}
