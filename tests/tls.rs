//! The KV protocol over TLS, end to end: the server's acceptor, the
//! client's connector, certificate checks, mutual TLS, and the hostile
//! peers of the hardening suite, over TLS. Certificates are made in the
//! test (rcgen); every wait has a deadline; nothing asserts a speed.

mod pki;

use pki::{Identity, Pki};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{ClientCodec, KvClient, KvError, KvServer, KvServerConfig, Request};
use wirestack::pipeline::Pipeline;
use wirestack::server::ServeConfig;
use wirestack::tls::rustls::ClientConfig;
use wirestack::tls::{self, TlsConnector};

const SOON: Duration = Duration::from_secs(20);

async fn tls_server(identity: &Identity, client_ca: Option<&Pki>, serve: ServeConfig) -> KvServer {
    KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            tls: Some(Pki::server_config(identity, client_ca)),
            serve,
            ..KvServerConfig::default()
        },
    )
    .await
    .expect("a TLS server on a loopback port")
}

/// A client with the full default stack over TLS, checking "localhost".
async fn tls_client(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> Result<KvClient, KvError> {
    let session = wirestack::session::ClientSession::new();
    ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(5))
        .tls(config, tls::server_name("localhost").unwrap())
        .on_connect(wirestack::kv::Hello::new().with_session(session.clone()))
        .multiplex(wirestack::multiplex::Builder::new())
        .connect::<wirestack::session::Stamped<Request>>(addr)
        .await
        .map(|stack| KvClient::new(stack.layer(&wirestack::session::SessionLayer::new(session))))
        .map_err(|e| KvError::from_service(e.into()))
}

/// One bare TLS connection, no retry or reconnect: what the server did, as it did it.
async fn bare_tls(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<KvClient<Pipeline<Request, wirestack::kv::Response>>> {
    use tower::ServiceExt;
    let connector = TlsConnector::new(config, tls::server_name("localhost").unwrap(), ClientCodec::new());
    let transport = connector.oneshot(addr).await?;
    Ok(KvClient::new(Pipeline::new(transport)))
}

async fn assert_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = timeout(SOON, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // a TLS alert, say
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection in time");
}

#[tokio::test]
async fn the_full_client_stack_runs_over_tls() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.server(), None, ServeConfig::default()).await;
    let client = tls_client(server.local_addr(), pki.client_config(None))
        .await
        .unwrap();
    client.put("k", "over tls").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"over tls"[..]));
    let batch = client
        .get_many((0..100).map(|i| format!("missing{i}")))
        .await
        .unwrap();
    assert!(batch.iter().all(Option::is_none));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plaintext_client_against_a_tls_port_fails_clearly_and_at_once() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.server(), None, ServeConfig::default()).await;
    let transport = wirestack::transport::connect(server.local_addr(), ClientCodec::new())
        .await
        .unwrap();
    let plain = KvClient::new(Pipeline::<Request, _>::new(transport));
    let error = timeout(SOON, plain.ping())
        .await
        .expect("an answer, not a hang")
        .expect_err("plain text is not served on a TLS port");
    assert!(
        error.to_string().contains("requires TLS"),
        "the error says what is wrong: {error}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.expired_server(), None, ServeConfig::default()).await;
    let error = timeout(SOON, bare_tls(server.local_addr(), pki.client_config(None)))
        .await
        .expect("no hang")
        .expect_err("an expired certificate is refused");
    assert!(error.to_string().contains("expired"), "{error}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.other_name_server(), None, ServeConfig::default()).await;
    let error = timeout(SOON, bare_tls(server.local_addr(), pki.client_config(None)))
        .await
        .expect("no hang")
        .expect_err("a certificate for db.example does not do for localhost");
    assert!(error.to_string().contains("not valid for name"), "{error}");
    // The full stack reports it as a failed connect, with the reason.
    let error = tls_client(server.local_addr(), pki.client_config(None))
        .await
        .expect_err("refused");
    assert!(matches!(error, KvError::Disconnected(_)), "{error:?}");
    assert!(format!("{error}").contains("not valid for name"), "{error}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_ca_certificate_used_as_the_servers_own_is_explained_with_what_to_run() {
    let (identity, client) = pki::self_signed_ca_for_localhost();
    let server = tls_server(&identity, None, ServeConfig::default()).await;
    let error = timeout(SOON, bare_tls(server.local_addr(), client))
        .await
        .expect("no hang")
        .expect_err("rustls refuses a CA certificate as a server's");
    let said = error.to_string();
    assert!(
        said.contains("this certificate is a CA certificate") && said.contains("`kv cert`"),
        "{said}"
    );
    let sentence = tls::explain(&error).expect("explained");
    assert!(said.starts_with(&sentence), "{said}");
    assert!(
        said.contains("CaUsedAsEndEntity"),
        "rustls' words are kept: {said}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let (pki, stranger) = (Pki::new("test CA"), Pki::new("another CA"));
    let server = tls_server(&stranger.server(), None, ServeConfig::default()).await;
    let error = bare_tls(server.local_addr(), pki.client_config(None))
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_serves_a_client_certificate_and_refuses_a_client_without_one() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.server(), Some(&pki), ServeConfig::default()).await;
    let addr = server.local_addr();

    let with_cert = tls_client(addr, pki.client_config(Some(&pki.client())))
        .await
        .unwrap();
    with_cert.put("k", "v").await.unwrap();

    // TLS 1.3: the client finishes its handshake before the server has
    // checked it, so the refusal comes as an alert on the first exchange.
    let refused = async {
        let client = bare_tls(addr, pki.client_config(None)).await?;
        client.ping().await.map_err(std::io::Error::other)
    };
    let error = timeout(SOON, refused)
        .await
        .expect("no hang")
        .expect_err("no certificate, no service");
    assert!(error.to_string().contains("CertificateRequired"), "{error}");

    // A certificate from another CA is refused too.
    let stranger = Pki::new("another CA");
    let refused = async {
        let client = bare_tls(addr, pki.client_config(Some(&stranger.client()))).await?;
        client.ping().await.map_err(std::io::Error::other)
    };
    let error = timeout(SOON, refused)
        .await
        .expect("no hang")
        .expect_err("an unknown client CA");
    assert!(
        error.to_string().contains("UnknownCA") || error.to_string().contains("BadCertificate"),
        "{error}"
    );

    with_cert.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn handshake_garbage_from_100_connections_leaves_the_server_serving() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.server(), None, ServeConfig::default()).await;
    let addr = server.local_addr();
    let mut peers = tokio::task::JoinSet::new();
    for seed in 0..100u64 {
        peers.spawn(async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            // A TLS handshake record header, then bytes that are not a ClientHello.
            let mut garbage = vec![0x16, 0x03, 0x01, 0x01, 0x00];
            garbage.extend((0..256u64).map(|i| (i.wrapping_mul(seed + 7) >> 1) as u8));
            let _ = socket.write_all(&garbage).await;
            assert_closed(&mut socket).await;
        });
    }
    timeout(SOON, async {
        while let Some(peer) = peers.join_next().await {
            peer.expect("a garbage peer is closed");
        }
    })
    .await
    .expect("every garbage peer closed in time");
    let client = tls_client(addr, pki.client_config(None)).await.unwrap();
    client.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handshake_is_bounded_even_with_the_read_timeout_off() {
    let pki = Pki::new("test CA");
    let server = tls_server(
        &pki.server(),
        None,
        ServeConfig {
            read_timeout: None,
            idle_timeout: None,
            handshake_timeout: Some(Duration::from_millis(300)),
            ..ServeConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    // Half a ClientHello, then nothing: closed by the handshake's own bound.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert_closed(&mut stalled).await;
    let client = tls_client(addr, pki.client_config(None)).await.unwrap();
    client.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_that_stalls_mid_handshake_is_closed_by_the_read_timeout() {
    let pki = Pki::new("test CA");
    let read_timeout = Duration::from_millis(500);
    let server = tls_server(
        &pki.server(),
        None,
        ServeConfig {
            read_timeout: Some(read_timeout),
            idle_timeout: None,
            ..ServeConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();

    // A bystander that finished its handshake, idle meanwhile.
    let bystander = tls_client(addr, pki.client_config(None)).await.unwrap();
    bystander.ping().await.unwrap();

    // Half a ClientHello record header; and a peer that says nothing at all.
    // (Taken before connecting: the server's clock starts at its accept.)
    let started = tokio::time::Instant::now();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut stalled).await;
    assert_closed(&mut silent).await;
    // Not before its time: the timeout, not a parse error, closed them.
    assert!(
        started.elapsed() >= read_timeout,
        "closed after {:?}",
        started.elapsed()
    );

    bystander.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_frames_inside_tls_are_answered_as_in_plain_text() {
    let pki = Pki::new("test CA");
    let server = tls_server(&pki.server(), None, ServeConfig::default()).await;
    let addr = server.local_addr();
    // A TLS connection whose frames are garbage: a header claiming 4 GiB.
    let connector = TlsConnector::new(
        pki.client_config(None),
        tls::server_name("localhost").unwrap(),
        tokio_util::codec::BytesCodec::new(),
    );
    let mut stream = tower::ServiceExt::oneshot(connector, addr)
        .await
        .unwrap()
        .into_inner();
    stream
        .write_all(&[0x03, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut header = [0u8; 5];
    timeout(SOON, stream.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header[0], wirestack::kv::Status::TooLarge as u8);
    // ... then the connection is closed, and the server goes on.
    let mut rest = Vec::new();
    timeout(SOON, stream.read_to_end(&mut rest)).await.unwrap().ok();
    let client = tls_client(addr, pki.client_config(None)).await.unwrap();
    client.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_connection_past_the_cap_is_answered_busy_over_tls() {
    let pki = Pki::new("test CA");
    let server = tls_server(
        &pki.server(),
        None,
        ServeConfig {
            max_connections: 1,
            ..ServeConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let admitted = bare_tls(addr, pki.client_config(None)).await.unwrap();
    admitted.ping().await.unwrap();
    // The refusal is a TLS handshake too, then BUSY in its place.
    let refused = bare_tls(addr, pki.client_config(None)).await.unwrap();
    let error = timeout(SOON, refused.ping())
        .await
        .expect("no hang")
        .expect_err("past the cap");
    assert!(error.is_busy(), "{error}");
    admitted.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_platform_roots_are_where_the_platform_says() {
    // rustls-native-certs honours SSL_CERT_FILE, as OpenSSL does: point it
    // at this test's CA, the only test here that reads the platform's roots.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("platform CA");
    let (ca, _, _) = pki::write_pem(dir.path(), &pki, &pki.server());
    std::env::set_var("SSL_CERT_FILE", &ca);
    std::env::remove_var("SSL_CERT_DIR");
    let roots = tls::platform_roots().expect("the CA file is read");
    assert_eq!(roots.len(), 1);
    let server = tls_server(&pki.server(), None, ServeConfig::default()).await;
    let client = tls_client(server.local_addr(), tls::client_config(roots, None).unwrap())
        .await
        .unwrap();
    client.ping().await.unwrap();
    server.shutdown().await.unwrap();
}
