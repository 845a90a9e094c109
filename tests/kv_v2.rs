//! Version 2 end to end through the library's own pieces: the `Hello`
//! handshake on a real connection, then the client codec's `Outgoing`
//! frames against a real `KvServer` (or a 1.1 one), answers matched by id
//! as the tagged multiplexer matches them. Holds whether the server lets
//! answers leave as they complete or in order.

use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tower::ServiceExt;
use wirestack::kv::{
    AuthHandshake, AuthToken, ClientCodec, Hello, Incoming, KvServer, KvServerConfig, KvService, Negotiated,
    Request, Response, ServerCodec, Status, Store,
};
use wirestack::multiplex::{Answers, Outgoing, Tagged};
use wirestack::server::Server;
use wirestack::transport::{HandshakeError, OnConnect, TcpConnector};

type Transport = Framed<TcpStream, ClientCodec>;

async fn connect(addr: std::net::SocketAddr, hello: Hello) -> Result<Transport, wirestack::BoxError> {
    OnConnect::new(TcpConnector::new(ClientCodec::new()), hello)
        .oneshot(addr)
        .await
}

fn put(tag: u32, key: &'static str, value: &'static str) -> Outgoing<Request> {
    Outgoing::Request {
        tag,
        budget: Some(Duration::from_secs(60)),
        request: Request::Put {
            key: key.into(),
            value: value.into(),
        },
    }
}

fn get(tag: u32, key: &'static str) -> Outgoing<Request> {
    Outgoing::Request {
        tag,
        budget: None,
        request: Request::Get { key: key.into() },
    }
}

/// `n` answers, by the tag they answer.
async fn answers(transport: &mut Transport, n: usize) -> HashMap<u32, Response> {
    let mut answers = HashMap::new();
    while answers.len() < n {
        let response = tokio::time::timeout(Duration::from_secs(10), transport.next())
            .await
            .expect("an answer in time")
            .expect("the connection stays open")
            .expect("a well-formed answer");
        match response.answers() {
            Answers::Request(tag) => assert!(answers.insert(tag, response).is_none(), "tag {tag} twice"),
            other => panic!("expected an answer, got {other:?}: {response:?}"),
        }
    }
    answers
}

#[tokio::test]
async fn hello_switches_to_version_2_and_outgoing_messages_are_answered_by_tag() {
    let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let mut transport = connect(server.local_addr(), Hello::new()).await.unwrap();
    assert_eq!(
        transport.codec().negotiated(),
        Some(Negotiated {
            version: 2,
            max_in_flight: 128,
            session_window: wirestack::kv::SessionConfig::default().window
        })
    );
    transport.feed(put(1, "k", "v")).await.unwrap();
    transport.feed(get(2, "k")).await.unwrap();
    transport.feed(Outgoing::<Request>::Cancel(77)).await.unwrap();
    transport.send(Outgoing::<Request>::Ping(3)).await.unwrap();
    let answers = answers(&mut transport, 3).await;
    assert_eq!(answers[&1].status, Status::Ok);
    assert_eq!(answers[&2], Response::ok("v".into()).with_id(2));
    assert_eq!(answers[&3].status, Status::Ok);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_a_token_hello_comes_after_auth_and_alone_it_is_refused() {
    let token = AuthToken::new("a token of some length").unwrap();
    let server = KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            auth: Some(token.clone()),
            ..KvServerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut transport = connect(server.local_addr(), Hello::after(AuthHandshake::new(token)))
        .await
        .unwrap();
    assert_eq!(transport.codec().negotiated().map(|n| n.version), Some(2));
    transport.send(put(1, "k", "v")).await.unwrap();
    assert_eq!(answers(&mut transport, 1).await[&1].status, Status::Ok);

    let refused = connect(server.local_addr(), Hello::new()).await.unwrap_err();
    let refused = refused.downcast::<HandshakeError>().unwrap();
    assert!(matches!(*refused, HandshakeError::Rejected(_)), "{refused:?}");
    server.shutdown().await.unwrap();
}

/// A 1.1 server: HELLO is an unknown command to it.
async fn old_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = KvService::new(Store::new());
    let service = tower::service_fn(move |incoming: Incoming| {
        let store = store.clone();
        async move {
            match incoming {
                Incoming::Request(Request::Hello { .. }) => {
                    Ok::<_, Infallible>(Response::error(Status::BadRequest, "unknown command byte 0x07"))
                }
                other => store.oneshot(other).await,
            }
        }
    });
    tokio::spawn(Server::new(ServerCodec::new()).serve(
        listener,
        tower::make::Shared::new(service),
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn against_a_1_1_server_the_codec_stays_1_1_and_tags_answers_in_order() {
    let addr = old_server().await;
    let mut transport = connect(addr, Hello::new()).await.unwrap();
    assert_eq!(transport.codec().negotiated(), None);
    transport.feed(put(10, "k", "v")).await.unwrap();
    // Nothing is written for a cancel on 1.1: the write is answered as usual.
    transport.feed(Outgoing::<Request>::Cancel(10)).await.unwrap();
    transport.feed(get(4, "k")).await.unwrap();
    transport.send(Outgoing::<Request>::Ping(7)).await.unwrap();
    let answers = answers(&mut transport, 3).await;
    assert_eq!(answers[&10], Response::ok_empty().with_id(10));
    assert_eq!(answers[&4], Response::ok("v".into()).with_id(4));
    assert_eq!(answers[&7].status, Status::Ok);
}
