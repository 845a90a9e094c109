//! Tracing: at `debug`, one request can be followed through every layer of
//! the client stack. A test binary of its own: `tracing` caches whether a
//! callsite is enabled process-wide, so a subscriber set for one test's
//! thread must not race other tests' callsites.

use std::io::Write;
use wirestack::kv::KvClient;

/// A writer the tests' subscriber writes its lines into.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// At `debug`, one request can be followed through the stack: its
/// `request` span (deadline), one `attempt` span per attempt (retry), the
/// connection it was sent on (reconnect) and its answer (pipeline).
#[test]
fn a_request_is_traced_through_every_layer_at_debug() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use wirestack::kv::{Response, ServerCodec, Status};

    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(lines.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A 1.1 server (HELLO is an unknown command to it) that
            // refuses the first request BUSY, then answers.
            let calls = std::sync::Arc::new(AtomicU32::new(0));
            let service = tower::service_fn(move |incoming: wirestack::kv::Incoming| {
                let hello = matches!(
                    incoming,
                    wirestack::kv::Incoming::Request(wirestack::kv::Request::Hello { .. })
                );
                let call = if hello {
                    u32::MAX
                } else {
                    calls.fetch_add(1, Ordering::Relaxed)
                };
                let answer = match call {
                    u32::MAX => Response::error(Status::BadRequest, "unknown command byte 0x07"),
                    0 => Response::error(Status::Busy, "busy"),
                    _ => Response::ok_empty(),
                };
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(wirestack::server::Server::new(ServerCodec::new()).serve(
                listener,
                tower::make::Shared::new(service),
                std::future::pending(),
            ));
            let client = KvClient::connect(addr).await.unwrap();
            client.ping().await.unwrap();
        });
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("SHOW_TRACE").is_some() {
        eprintln!("{text}");
    }
    let within = |span: &str, message: &str| {
        text.lines()
            .any(|line| line.contains(span) && line.contains(message))
    };
    assert!(within("request{timeout_ms=", "attempt{n=1}"), "{text}");
    assert!(
        within("request{timeout_ms=5000}:attempt{n=1}", "sending connection=1"),
        "{text}"
    );
    assert!(
        within("request{timeout_ms=5000}:attempt{n=2}", "sending connection=1"),
        "{text}"
    );
    assert!(
        within("request{timeout_ms=5000}:attempt{n=2}", "answered"),
        "{text}"
    );
    assert!(within("request{timeout_ms=5000}", "retrying"), "{text}");
}
