//! The same client stack against a protocol we did not design: RESP2 against
//! a real `redis-server`, started by each test on a free loopback port.
//!
//! If `redis-server` is not installed these tests print a loud message and
//! pass without running — unless the `CI` environment variable is set, in
//! which case they fail: CI must run them. Set `REDIS_SERVER` to use a binary
//! that is not on the `PATH`.

use bytes::Bytes;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wirestack::builder::ClientBuilder;
use wirestack::resp::{RedisAuth, RedisClient, RedisError, RespCodec, Value};

#[cfg(feature = "tls")]
mod pki;

/// A `redis-server` child process with persistence off, killed on drop.
struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

/// How to tell that a starting redis-server is up.
#[derive(Clone, Copy)]
enum Ready {
    /// It answers PING with PONG.
    Pong,
    /// It answers PING, with PONG or NOAUTH (it has a password).
    Answers,
    /// It accepts TCP connections (a TLS-only port).
    Listens,
}

impl RedisServer {
    /// Starts one, or returns `None` (after saying so loudly) when
    /// `redis-server` is missing and `CI` is not set.
    fn start() -> Option<RedisServer> {
        Self::start_with(|port| vec!["--port".into(), port.to_string()], Ready::Pong)
    }

    /// Starts one with the arguments `args` makes for a free port (which
    /// must include where to listen), persistence off.
    fn start_with(args: impl Fn(u16) -> Vec<String>, ready: Ready) -> Option<RedisServer> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port();
            let spawned = Command::new(&binary)
                .args(args(port))
                .args(["--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return missing(&binary),
                Err(error) => panic!("could not start {binary}: {error}"),
            };
            let mut server = RedisServer {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match server.wait_until(ready) {
                Ok(()) => return Some(server),
                // Most likely the port was taken in between: try another.
                Err(error) => last_error = Some(error),
            }
        }
        panic!("redis-server did not come up: {last_error:?}");
    }

    fn wait_until_it_answers(&mut self) -> Result<(), String> {
        self.wait_until(Ready::Pong)
    }

    fn wait_until(&mut self, ready: Ready) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            let up = match ready {
                Ready::Pong => ping(self.addr).is_ok(),
                Ready::Answers => answers(self.addr),
                Ready::Listens => TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok(),
            };
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer within 10 s".into())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing(binary: &str) -> Option<RedisServer> {
    if std::env::var_os("CI").is_some() {
        panic!("`{binary}` not found, and CI is set: install the redis-server package so that the RESP tests run");
    }
    // Straight to the process's stderr: the test harness captures
    // `eprintln!` of passing tests, and this must be seen.
    let _ = writeln!(
        io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! `{binary}` not found: SKIPPING the RESP tests against redis-server.\n\
         !! Install it (Debian: apt-get install redis-server) to run them.\n\
         !! With CI set, this is a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    );
    None
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// `true` if a blocking `PING` gets `+PONG` or `-NOAUTH` (a server with a password).
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
}

/// A blocking `PING`, to wait for the server without the code under test.
fn ping(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::other("not PONG (still loading?)"))
    }
}

#[tokio::test]
async fn basic_operations() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();

    redis.ping().await.unwrap();
    assert_eq!(redis.get("missing").await.unwrap(), None);
    redis.set("greeting", "hello").await.unwrap();
    assert_eq!(
        redis.get("greeting").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    redis.set("greeting", "bonjour").await.unwrap();
    assert_eq!(
        redis.get("greeting").await.unwrap().as_deref(),
        Some(&b"bonjour"[..])
    );

    // Binary-safe keys and values, including CR LF and a large value.
    let value = Bytes::from((0..=255u8).cycle().take(1 << 20).collect::<Vec<_>>());
    redis.set(b"bin\r\nkey\0", &value).await.unwrap();
    assert_eq!(redis.get(b"bin\r\nkey\0").await.unwrap(), Some(value));

    redis.set("a", "1").await.unwrap();
    assert_eq!(redis.del(["a", "greeting", "never-set"]).await.unwrap(), 2);
    assert_eq!(redis.get("a").await.unwrap(), None);
    assert_eq!(redis.del(["a"]).await.unwrap(), 0);
}

#[tokio::test]
async fn expire_removes_the_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();

    assert!(!redis.expire("missing", Duration::from_secs(10)).await.unwrap());
    redis.set("short", "lived").await.unwrap();
    assert!(redis.expire("short", Duration::from_millis(50)).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis.get("short").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn error_replies_are_typed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();

    let reply = redis.command(["LPUSH", "list", "x"]).await.unwrap();
    assert_eq!(reply, Value::Integer(1));
    match redis.get("list").await {
        Err(RedisError::Server(message)) => assert!(message.starts_with("WRONGTYPE"), "{message}"),
        other => panic!("expected a WRONGTYPE error, got {other:?}"),
    }
    let reply = redis.command(["NOSUCHCOMMAND"]).await.unwrap();
    assert!(
        matches!(reply, Value::Error(ref e) if e.starts_with(b"ERR")),
        "{reply:?}"
    );
    // The connection is fine after error replies.
    redis.ping().await.unwrap();
    assert_eq!(redis.service().reconnect_stats().connects, 1);
}

#[tokio::test]
async fn a_batch_is_answered_in_order_with_error_replies_in_place() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();

    redis
        .set_many((0..500).map(|i| (format!("k{i}"), format!("v{i}"))))
        .await
        .unwrap();
    let keys: Vec<String> = (0..500)
        .map(|i| format!("k{i}"))
        .chain(["missing".into()])
        .collect();
    let values = redis.get_many(&keys).await.unwrap();
    assert_eq!(values.len(), 501);
    assert_eq!(values[321].as_deref(), Some(&b"v321"[..]));
    assert_eq!(values[500], None);

    let replies = redis
        .batch([
            Value::command(["INCR", "counter"]),
            Value::command(["NOSUCHCOMMAND"]),
            Value::command(["INCR", "counter"]),
        ])
        .await
        .unwrap();
    assert_eq!(replies[0], Value::Integer(1));
    assert!(
        matches!(&replies[1], Value::Error(e) if e.starts_with(b"ERR")),
        "{replies:?}"
    );
    assert_eq!(replies[2], Value::Integer(2), "applied once each, in order");
    assert!(redis.batch([]).await.unwrap().is_empty());
    // One request each for the retry budget: three batches, not 1,004 calls.
    assert_eq!(redis.service().retry_stats().requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_pipelined_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();

    let tasks = (0..16).map(|task| {
        let redis = redis.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("t{task}:k{i}");
                redis.set(&key, format!("v{i}")).await.unwrap();
                let got = redis.get(&key).await.unwrap();
                assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()));
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let reply = redis.command(["DBSIZE"]).await.unwrap();
    assert_eq!(reply, Value::Integer(16 * 200));
    assert_eq!(redis.service().reconnect_stats().connects, 1);
}

#[tokio::test]
async fn the_stack_reconnects_when_redis_drops_the_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::new(
        ClientBuilder::new(RespCodec::new())
            .timeout(Duration::from_secs(10))
            .connect::<Value>(server.addr)
            .await
            .unwrap(),
    );
    redis.set("k", "v").await.unwrap();

    // Redis closes every normal connection, ours included. CLIENT KILL is not
    // idempotent, so if its answer is lost it is not retried.
    match redis
        .command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])
        .await
    {
        Ok(_) | Err(RedisError::Connection(_)) => {}
        Err(other) => panic!("unexpected error: {other:?}"),
    }
    // The next commands run on a new connection.
    redis.ping().await.unwrap();
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let stats = redis.service().reconnect_stats();
    assert_eq!(stats.reconnects(), 1, "{stats:?}");
}

#[tokio::test]
async fn redis_gone_is_a_typed_error_and_its_return_is_noticed() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let addr = server.addr;
    let redis = RedisClient::new(
        ClientBuilder::new(RespCodec::new())
            .timeout(Duration::from_millis(500))
            .connect::<Value>(addr)
            .await
            .unwrap(),
    );
    redis.set("k", "v").await.unwrap();

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for _ in 0..5 {
        match redis.get("k").await {
            Err(RedisError::Disconnected(_) | RedisError::TimedOut | RedisError::Connection(_)) => {}
            other => panic!("expected a typed connection error, got {other:?}"),
        }
    }

    // A new redis-server on the same port; the client finds it by itself.
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    server.child = Command::new(binary)
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_until_it_answers().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match redis.ping().await {
            Ok(()) => break,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "never reconnected: {error}"
            ),
        }
    }
    // Persistence is off: the new server starts empty.
    assert_eq!(redis.get("k").await.unwrap(), None);
    assert!(redis.service().reconnect_stats().reconnects() >= 1);
}

#[tokio::test]
async fn auth_with_requirepass_and_with_an_acl_user() {
    let Some(server) = RedisServer::start_with(
        |port| {
            vec![
                "--port".into(),
                port.to_string(),
                "--requirepass".into(),
                "s3cret".into(),
                "--user".into(),
                "app".into(),
                "on".into(),
                ">app-pass".into(),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
            ]
        },
        Ready::Answers,
    ) else {
        return;
    };
    let connect = |auth: Option<RedisAuth>| async move {
        let builder = ClientBuilder::new(RespCodec::new()).timeout(Duration::from_secs(5));
        let connected = match auth {
            Some(auth) => builder.on_connect(auth).connect::<Value>(server.addr).await,
            None => builder.connect::<Value>(server.addr).await,
        };
        connected
            .map(RedisClient::new)
            .map_err(|e| RedisError::from_service(e.into()))
    };

    // No AUTH: redis answers NOAUTH, an error reply like any other.
    let anonymous = connect(None).await.unwrap();
    match anonymous.set("k", "v").await {
        Err(RedisError::Server(message)) => assert!(message.starts_with("NOAUTH"), "{message}"),
        other => panic!("expected NOAUTH, got {other:?}"),
    }

    let password = connect(Some(RedisAuth::password("s3cret"))).await.unwrap();
    password.set("k", "v").await.unwrap();
    let user = connect(Some(RedisAuth::user("app", "app-pass"))).await.unwrap();
    assert_eq!(user.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let whoami = user.command(["ACL", "WHOAMI"]).await.unwrap();
    assert_eq!(whoami, Value::Bulk(bytes::Bytes::from_static(b"app")));

    // A wrong password is refused at connect, typed, and never retried.
    for wrong in [RedisAuth::password("guess"), RedisAuth::user("app", "guess")] {
        match connect(Some(wrong)).await {
            Err(RedisError::Auth(message)) => assert!(message.starts_with("WRONGPASS"), "{message}"),
            other => panic!("expected a refused AUTH, got {other:?}"),
        }
    }

    // The hook runs again on a reconnect: killed connections come back authenticated.
    let _ = password
        .command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])
        .await;
    password.ping().await.unwrap();
    assert_eq!(password.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(password.service().reconnect_stats().reconnects() >= 1);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn redis_over_tls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::Pki::new("redis test CA");
    let (ca, cert, key) = pki::write_pem(dir.path(), &pki, &pki.server());
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (path(&ca), path(&cert), path(&key));
    let Some(server) = RedisServer::start_with(
        |port| {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                cert.clone(),
                "--tls-key-file".into(),
                key.clone(),
                "--tls-ca-cert-file".into(),
                ca.clone(),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                "s3cret".into(),
            ]
        },
        Ready::Listens,
    ) else {
        return;
    };
    let name = || wirestack::tls::server_name("localhost").unwrap();
    let redis = RedisClient::new(
        ClientBuilder::new(RespCodec::new())
            .timeout(Duration::from_secs(5))
            .tls(pki.client_config(None), name())
            .on_connect(RedisAuth::password("s3cret"))
            .connect::<Value>(server.addr)
            .await
            .unwrap(),
    );
    redis.set("over", "tls").await.unwrap();
    assert_eq!(redis.get("over").await.unwrap().as_deref(), Some(&b"tls"[..]));
    // Pipelined, many tasks, one TLS connection.
    let tasks = (0..8).map(|task| {
        let redis = redis.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                redis.set(format!("t{task}:{i}"), "x").await.unwrap();
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    assert_eq!(redis.command(["DBSIZE"]).await.unwrap(), Value::Integer(401));

    // A client that trusts another CA refuses redis's certificate.
    let stranger = pki::Pki::new("another CA");
    let refused = ClientBuilder::new(RespCodec::new())
        .tls(stranger.client_config(None), name())
        .connect::<Value>(server.addr)
        .await
        .expect_err("an unknown issuer is refused");
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
}

/// Keepalive is on in `RedisClient::connect`: an `INCR` (not idempotent:
/// never sent twice) in flight when redis-server is frozen (SIGSTOP: its
/// socket open, nothing answering) fails "lost with the connection", found
/// by keepalive's ping — not at the stack's 5 s deadline, which would end
/// it `TimedOut`. The time it took is printed for the record, not asserted.
/// (A plain `SET` is idempotent: the retry layer would send it again on a
/// new connection to the same frozen server, until the deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_found_by_keepalive() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisClient::connect(server.addr).await.unwrap();
    redis.set("k", "before").await.unwrap();
    let pid = server.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {name} failed");
    };
    signal("-STOP");
    let started = Instant::now();
    let result = redis.command(["INCR", "counter"]).await;
    signal("-CONT");
    let error = result.expect_err("the server was stopped");
    eprintln!(
        "the frozen redis-server was found after {:?}: {error}",
        started.elapsed()
    );
    assert!(matches!(error, RedisError::Connection(_)), "{error:?}");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut unresponsive = false;
    while let Some(error) = source {
        unresponsive |= matches!(
            error.downcast_ref::<wirestack::pipeline::Error>(),
            Some(wirestack::pipeline::Error::Unresponsive(_))
        );
        source = error.source();
    }
    assert!(unresponsive, "not found by keepalive: {error:?}");
    // The server answers again: the client reconnects and goes on.
    redis.set("k", "after").await.unwrap();
}
