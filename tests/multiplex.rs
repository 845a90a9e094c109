//! The tagged multiplexer over real loopback sockets, made by its connector
//! under the reconnect layer: answers out of order reach their callers, and
//! a server's GOAWAY hands the next call to a new connection.

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};
use tower::{Layer, Service, ServiceExt};
use wirestack::multiplex::{self, Answers, MakeMultiplex, Outgoing, Tag, Tagged};
use wirestack::reconnect::ReconnectLayer;
use wirestack::transport::TcpConnector;

/// An answer: `"<tag> <text>"`; tag 0 is the server's GOAWAY.
#[derive(Debug)]
struct Answer {
    tag: Tag,
    text: String,
}

impl Tagged for Answer {
    fn answers(&self) -> Answers {
        match self.tag {
            0 => Answers::GoAway,
            tag => Answers::Request(tag),
        }
    }
}

/// Requests go out as `"<tag> <text>"`, cancels as `"<tag> cancel"`.
#[derive(Clone)]
struct TaggedLines(LinesCodec);

impl Encoder<Outgoing<String>> for TaggedLines {
    type Error = LinesCodecError;

    fn encode(&mut self, message: Outgoing<String>, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let line = match message {
            Outgoing::Request { tag, request, .. } => format!("{tag} {request}"),
            Outgoing::Cancel(tag) => format!("{tag} cancel"),
            Outgoing::Ping(tag) => format!("{tag} ping"),
            _ => return Ok(()),
        };
        self.0.encode(line, dst)
    }
}

impl Decoder for TaggedLines {
    type Item = Answer;
    type Error = LinesCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Answer>, Self::Error> {
        let Some(line) = self.0.decode(src)? else {
            return Ok(None);
        };
        let (tag, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let tag = tag
            .parse()
            .map_err(|_| LinesCodecError::Io(std::io::Error::other("a tag must be a number")))?;
        Ok(Some(Answer {
            tag,
            text: text.to_string(),
        }))
    }
}

fn split(line: &str) -> (&str, &str) {
    line.split_once(' ').unwrap_or((line, ""))
}

/// Serves each connection with `serve`, one task a connection; returns the
/// address.
async fn server<F, Fut>(serve: F) -> std::net::SocketAddr
where
    F: Fn(usize, Framed<TcpStream, LinesCodec>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(connections, Framed::new(stream, LinesCodec::new())));
            connections += 1;
        }
    });
    addr
}

fn connector() -> MakeMultiplex<TcpConnector<TaggedLines>, String> {
    MakeMultiplex::new(
        TcpConnector::new(TaggedLines(LinesCodec::new())),
        multiplex::Builder::new(),
    )
}

#[tokio::test]
async fn answers_in_reverse_order_over_a_socket_reach_their_callers() {
    // Reads four requests, then answers them last first, upper-cased.
    let addr = server(|_, mut lines| async move {
        let mut read = Vec::new();
        while read.len() < 4 {
            match lines.next().await {
                Some(Ok(line)) => read.push(line),
                _ => return,
            }
        }
        for line in read.into_iter().rev() {
            let (tag, text) = split(&line);
            let _ = lines.send(format!("{tag} {}", text.to_uppercase())).await;
        }
    })
    .await;
    let service = ReconnectLayer::new(addr).layer(connector());
    let calls = ["a", "b", "c", "d"].map(|text| service.clone().oneshot(text.to_string()));
    let answers = futures::future::try_join_all(calls).await.expect("answered");
    let texts: Vec<&str> = answers.iter().map(|answer| answer.text.as_str()).collect();
    assert_eq!(texts, ["A", "B", "C", "D"]);
}

#[tokio::test]
async fn after_a_goaway_the_next_call_goes_to_a_new_connection() {
    // Every connection answers each request with its number; the first
    // says GOAWAY after its first answer but stays open and would go on
    // answering: only the client's GOAWAY handling keeps calls off it.
    let addr = server(|n, mut lines| async move {
        let mut answered = 0;
        while let Some(Ok(line)) = lines.next().await {
            let (tag, _) = split(&line);
            let _ = lines.send(format!("{tag} connection {n}")).await;
            answered += 1;
            if n == 0 && answered == 1 {
                let _ = lines.send("0 goaway".to_string()).await;
            }
        }
    })
    .await;
    let mut service = ReconnectLayer::new(addr).layer(connector());
    let first = ServiceExt::<String>::ready(&mut service).await.expect("ready");
    let answer = first.call("x".to_string()).await.expect("answered");
    assert_eq!(answer.text, "connection 0");
    // The reconnect layer sees the multiplexer refuse new work and opens
    // another connection; calls in between may fail fast, as not sent.
    for _ in 0..200 {
        let ready = ServiceExt::<String>::ready(&mut service).await.expect("ready");
        match ready.call("y".to_string()).await {
            Ok(answer) => {
                assert_eq!(answer.text, "connection 1");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("no call reached a new connection");
}
