//! The `kv` binary: serve, then ping/get/put/del with their exit codes.

mod pki;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

struct Served {
    child: Child,
    addr: String,
    /// Each server has a data directory of its own: tests run concurrently.
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let dir = tempfile::tempdir().expect("a data directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kv serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_owned();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    Served {
        child,
        addr,
        _dir: dir,
    }
}

fn kv(served: &Served, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(args)
        .args(["--addr", &served.addr])
        .output()
        .expect("run kv")
}

#[test]
fn client_commands_and_their_exit_codes() {
    let served = serve(&[]);

    let ping = kv(&served, &["ping"]);
    assert_eq!(ping.status.code(), Some(0));

    let missing = kv(&served, &["get", "greeting"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());

    assert_eq!(
        kv(&served, &["put", "greeting", "hello world"]).status.code(),
        Some(0)
    );
    let found = kv(&served, &["get", "greeting"]);
    assert_eq!(found.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&found.stdout), "hello world\n");

    assert_eq!(
        kv(&served, &["put", "brief", "v", "--ttl", "60000"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(kv(&served, &["get", "brief"]).status.code(), Some(0));

    assert_eq!(kv(&served, &["del", "greeting"]).status.code(), Some(0));
    assert_eq!(kv(&served, &["del", "greeting"]).status.code(), Some(1));
    assert_eq!(kv(&served, &["get", "greeting"]).status.code(), Some(1));
}

#[test]
fn errors_exit_2_with_one_line_on_stderr() {
    let served = serve(&["--max-value-bytes", "4"]);
    let too_large = kv(&served, &["put", "k", "longer than four"]);
    assert_eq!(too_large.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&too_large.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains("TOO_LARGE"), "{stderr}");

    // Nothing listens on port 1 of loopback.
    let refused = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["ping", "--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully_with_status_0() {
    for signal in ["-TERM", "-INT"] {
        let mut served = serve(&[]);
        assert_eq!(kv(&served, &["put", "k", "v"]).status.code(), Some(0));
        let sent = Command::new("kill")
            .args([signal, &served.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = served.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "exit status after {signal}");
    }
}

#[test]
fn serve_limit_flags_reach_the_server() {
    use std::io::{Read, Write};
    let served = serve(&[
        "--max-connections",
        "1",
        "--max-in-flight",
        "8",
        "--idle-timeout-ms",
        "0",
        "--read-timeout-ms",
        "5000",
        "--write-timeout-ms",
        "5000",
        "--max-buffered-bytes",
        "1048576",
    ]);
    // Hold the one connection, answered so that the server counts it.
    let mut held = std::net::TcpStream::connect(&served.addr).unwrap();
    held.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    held.write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00").unwrap();
    let mut answer = [0u8; 5];
    held.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], 0x00);

    // A second connection's first request is answered BUSY (0x05).
    let mut refused = std::net::TcpStream::connect(&served.addr).unwrap();
    refused
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    refused
        .write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00")
        .unwrap();
    refused.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], 0x05);
}

/// The first `sent` bytes of a PUT of a 1-byte key and a `value_len`-byte
/// value, on a new connection to `addr`.
fn start_put(addr: &str, value_len: u32, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut put = vec![0x03, 1, 0, 0, 0];
    put.extend_from_slice(&value_len.to_le_bytes());
    put.push(b'k');
    put.resize(sent, 4);
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    socket.write_all(&put).unwrap();
    socket
}

/// The status byte and message of the next answer on `socket`.
fn answer(socket: &mut std::net::TcpStream) -> (u8, String) {
    use std::io::Read;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut header = [0u8; 5];
    socket.read_exact(&mut header).unwrap();
    let mut message = vec![0u8; u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize];
    socket.read_exact(&mut message).unwrap();
    (header[0], String::from_utf8_lossy(&message).into_owned())
}

#[test]
fn the_pool_waiter_and_before_auth_flags_reach_the_server() {
    // 256 KiB for 4 connections: shares of 32 KiB, a pool of 128 KiB, and
    // no connection may wait for it.
    let served = serve(&[
        "--max-connections",
        "4",
        "--max-buffered-bytes",
        "262144",
        "--max-pool-waiters",
        "0",
    ]);
    // Two 100 KiB uploads stall, each sending exactly its share (so that
    // nothing unread resets the connection): the first read takes most of
    // the pool, the other cannot wait for it and is answered BUSY.
    let mut uploads = [
        start_put(&served.addr, 100 << 10, 32 << 10),
        start_put(&served.addr, 100 << 10, 32 << 10),
    ];
    let refused = (0..400)
        .find_map(|round| {
            let socket = &mut uploads[round % 2];
            socket
                .set_read_timeout(Some(std::time::Duration::from_millis(50)))
                .unwrap();
            matches!(socket.peek(&mut [0u8; 1]), Ok(1)).then_some(round % 2)
        })
        .expect("one upload answered within 20 s");
    let (status, message) = answer(&mut uploads[refused]);
    assert_eq!(status, 0x05, "{message}");
    assert!(message.contains("too many requests wait"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a token long enough not to be warned about\n").unwrap();
    let served = serve(&[
        "--auth-token-file",
        token.to_str().unwrap(),
        "--max-unauthenticated-request-bytes",
        "700",
    ]);
    // 650 bytes before AUTH are read and answered "AUTH required"; 750
    // are refused as soon as the header is in.
    let mut small = start_put(&served.addr, 640, 650);
    assert_eq!(answer(&mut small).0, 0x07);
    let mut large = start_put(&served.addr, 740, 20);
    let (status, message) = answer(&mut large);
    assert_eq!(status, 0x07, "{message}");
    assert!(
        message.contains("AUTH first") && message.contains("700 bytes"),
        "{message}"
    );
}

#[test]
fn a_busy_server_is_reported_as_busy_at_once() {
    use std::io::{Read, Write};
    let served = serve(&["--max-connections", "1"]);
    // Hold the only connection slot.
    let mut held = std::net::TcpStream::connect(&served.addr).unwrap();
    held.write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00").unwrap();
    let mut answer = [0u8; 5];
    held.read_exact(&mut answer).unwrap();

    let ping = kv(&served, &["ping"]);
    assert_eq!(ping.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&ping.stderr);
    assert!(
        stderr.contains("BUSY"),
        "the refusal is named, not retried into a timeout: {stderr}"
    );
}

/// A stand-in server on a free loopback port that speaks the protocol to
/// one connection: PING echoes, HEALTH gets `health` (status, message).
fn stand_in(health: (u8, &'static str)) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut header = [0u8; 9];
        while socket.read_exact(&mut header).is_ok() {
            let key_len = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
            let value_len = u32::from_le_bytes(header[5..9].try_into().unwrap()) as usize;
            let mut body = vec![0u8; key_len + value_len];
            socket.read_exact(&mut body).unwrap();
            let (status, value) = match header[0] {
                0x01 => (0x00, body[key_len..].to_vec()),
                0x80 => (health.0, health.1.as_bytes().to_vec()),
                other => panic!("unexpected command {other:#x}"),
            };
            let mut answer = vec![status];
            answer.extend_from_slice(&(value.len() as u32).to_le_bytes());
            answer.extend_from_slice(&value);
            socket.write_all(&answer).unwrap();
        }
    });
    (addr, thread)
}

#[test]
fn ping_exits_3_while_the_server_refuses_writes() {
    // STORAGE to HEALTH: the log refuses writes. PONG, and exit 3.
    let (addr, server) = stand_in((0x06, "the log refuses writes until it recovers: disk full"));
    let ping = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["ping", "--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(ping.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&ping.stdout), "PONG\n");
    let stderr = String::from_utf8_lossy(&ping.stderr);
    assert!(stderr.contains("disk full"), "says why: {stderr}");
    server.join().unwrap();

    // A server older than HEALTH answers BAD_REQUEST: it answers, exit 0.
    let (addr, server) = stand_in((0x03, "unknown command byte 0x80"));
    let ping = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["ping", "--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(ping.status.code(), Some(0));
    server.join().unwrap();
}

fn kv_with(served: &Served, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command
        .args(args)
        .args(["--addr", &served.addr])
        .env_remove("KV_AUTH_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run kv")
}

fn stderr_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    stderr
}

#[test]
fn serving_every_interface_without_a_token_is_refused_with_the_fix() {
    let refused = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("KV_AUTH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = stderr_line(&refused);
    for fix in [
        "--auth-token-file",
        "KV_AUTH_TOKEN",
        "127.0.0.1",
        "--allow-unauthenticated",
    ] {
        assert!(stderr.contains(fix), "the message names {fix}: {stderr}");
    }
    assert!(refused.stdout.is_empty(), "nothing was announced");
}

#[test]
fn a_missing_or_empty_token_file_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("missing");
    for (file, says) in [(&empty, "is empty"), (&missing, "cannot read")] {
        let output = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["serve", "--listen", "127.0.0.1:0", "--auth-token-file"])
            .arg(file)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr_line(&output).contains(says), "{:?}", output.stderr);
    }
}

#[test]
fn tls_and_a_token_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::Pki::new("cli CA");
    let (ca, cert, key) = pki::write_pem(dir.path(), &pki, &pki.server());
    let token = dir.path().join("token");
    std::fs::write(&token, "cli-token\n").unwrap();
    let (ca, cert, key, token) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        token.to_str().unwrap(),
    );
    let served = serve(&["--tls-cert", cert, "--tls-key", key, "--auth-token-file", token]);

    let ok = kv_with(
        &served,
        &["put", "k", "v", "--tls-ca", ca, "--auth-token-file", token],
        &[],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let got = kv_with(
        &served,
        &["get", "k", "--tls", "--tls-ca", ca],
        &[("KV_AUTH_TOKEN", "cli-token")],
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v\n");

    let no_token = kv_with(&served, &["get", "k", "--tls-ca", ca], &[]);
    assert_eq!(no_token.status.code(), Some(2));
    let stderr = stderr_line(&no_token);
    assert!(
        stderr.contains("unauthenticated") && stderr.contains("--auth-token-file"),
        "{stderr}"
    );

    let wrong = kv_with(&served, &["ping", "--tls-ca", ca], &[("KV_AUTH_TOKEN", "guess")]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr_line(&wrong).contains("wrong token"));

    let plain = kv_with(&served, &["ping", "--auth-token-file", token], &[]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(stderr_line(&plain).contains("requires TLS"), "{:?}", plain.stderr);

    let other_name = kv_with(
        &served,
        &[
            "ping",
            "--tls-ca",
            ca,
            "--tls-server-name",
            "db.example",
            "--auth-token-file",
            token,
        ],
        &[],
    );
    assert_eq!(other_name.status.code(), Some(2));
    assert!(stderr_line(&other_name).contains("not valid for name"));

    let bench = kv_with(
        &served,
        &[
            "bench",
            "--ops",
            "2000",
            "--pipeline",
            "16",
            "--json",
            "--tls-ca",
            ca,
            "--auth-token-file",
            token,
        ],
        &[],
    );
    assert_eq!(
        bench.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(String::from_utf8_lossy(&bench.stdout).contains("\"errors\":0"));
}

fn kv_at(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(args)
        .args(["--addr", addr])
        .output()
        .expect("run kv")
}

/// Stops process `pid` with SIGSTOP and waits until it is stopped (state
/// `T` in `/proc/PID/stat`): `kill` returns once the signal is sent, and a
/// busy server could still answer a request before it stops. A hang guard
/// bounds the wait.
fn stop(pid: u32) {
    let pid_text = pid.to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid_text])
        .status()
        .unwrap()
        .success());
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..2_000 {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("T" | "t")) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("process {pid} did not stop");
}

fn wait_with_hang_guard(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > guard {
            let _ = child.kill();
            panic!("{what} never ended");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn get_put_and_del_accept_a_trailing_comma_in_addr_as_ping_does() {
    let served = serve(&[]);
    let addr = format!("{},", served.addr);
    let put = kv_at(&addr, &["put", "k", "v"]);
    assert_eq!(
        put.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = kv_at(&addr, &["get", "k"]);
    assert_eq!(
        get.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout), "v\n");
    assert_eq!(kv_at(&addr, &["del", "k"]).status.code(), Some(0));
    assert_eq!(kv_at(&addr, &["ping"]).status.code(), Some(0));
    // A list that names no server is an error, not a silent success.
    let none = kv_at(" , ", &["ping"]);
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn a_put_that_timed_out_says_it_may_have_been_applied() {
    use std::io::Read;
    // A server that reads every request and answers none.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            std::thread::spawn(move || {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    let mut put = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["put", "k", "v", "--addr", &addr])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_hang_guard(&mut put, "kv put");
    let mut stderr = String::new();
    put.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("may have been applied"), "{stderr}");
}

#[test]
fn bench_against_a_stopped_server_ends_and_reports_what_was_cut_off() {
    use std::io::Read;
    let served = serve(&[]);
    let mut bench = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["bench", "--addr", &served.addr, "--workload", "fill"])
        .args(["--key-space", "2000000", "--duration", "3", "--pipeline", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Fill writes key 0 first: once it is there, the load is running.
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while kv(&served, &["get", "key:000000000000"]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < guard, "the bench never wrote");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = served.child.id().to_string();
    stop(served.child.id());
    let status = wait_with_hang_guard(&mut bench, "kv bench against a stopped server");
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    bench.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    bench.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    // "N ops in S s: R ops/s, E errors": what was cut off is counted.
    let errors: u64 = stdout
        .split(" errors")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a report: {stdout}"));
    assert!(errors > 0, "{stdout}");
}

#[test]
fn two_names_for_one_server_draw_a_warning() {
    let served = serve(&[]);
    let port = served.addr.rsplit(':').next().unwrap();
    let list = format!("localhost:{port},127.0.0.1:{port}");
    let put = kv_at(&list, &["put", "k", "v"]);
    let stderr = String::from_utf8_lossy(&put.stderr);
    assert!(stderr.contains("resolve to the same server"), "{stderr}");
}

#[test]
fn named_endpoints_place_keys_by_name_not_by_address() {
    let (a, b) = (serve(&[]), serve(&[]));
    let named = format!("one={},two={}", a.addr, b.addr);
    let keys: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
    for key in &keys {
        assert_eq!(kv_at(&named, &["put", key, "v"]).status.code(), Some(0));
    }
    // The same names in another order and spelling: every key is found.
    let reordered = format!("two = {}, one = {}", b.addr, a.addr);
    for key in &keys {
        assert_eq!(kv_at(&reordered, &["get", key]).status.code(), Some(0), "{key}");
    }
    // The names swapped over the addresses: keys are looked for elsewhere.
    let swapped = format!("one={},two={}", b.addr, a.addr);
    let missing = keys
        .iter()
        .filter(|key| kv_at(&swapped, &["get", key]).status.code() == Some(1))
        .count();
    assert!(missing > 0, "placement ignored the names");
}

#[test]
fn bench_against_a_server_stopped_before_it_starts_ends_with_a_message() {
    use std::io::Read;
    let served = serve(&[]);
    let pid = served.child.id().to_string();
    stop(served.child.id());
    let mut bench = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["bench", "--addr", &served.addr, "--duration", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_hang_guard(&mut bench, "kv bench against a stopped server");
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let mut stderr = String::new();
    bench.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");
}

/// Runs `kv` to its end, or fails the test after a generous bound.
fn finishes(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kv");
    for _ in 0..600 {
        if child.try_wait().expect("wait for kv").is_some() {
            return child.wait_with_output().expect("kv's output");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("kv did not finish: {command:?}");
}

#[cfg(unix)]
#[test]
fn an_endless_token_file_fails_at_once_with_what_is_wrong() {
    let output = finishes(
        Command::new(env!("CARGO_BIN_EXE_kv"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--auth-token-file",
                "/dev/zero",
            ])
            .env_remove("KV_AUTH_TOKEN"),
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_line(&output);
    assert!(
        stderr.contains("/dev/zero") && stderr.contains("larger than"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing was announced");
}

#[cfg(unix)]
#[test]
fn a_weak_token_is_warned_about_and_the_environment_token_is_trimmed() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "short\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--listen", "127.0.0.1:0", "--auth-token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child);
    // A client's KV_AUTH_TOKEN with a line break, as `export KV_AUTH_TOKEN=$(cat token)`
    // in some shells leaves it, is the same token.
    let ping = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["ping", "--addr", &addr])
        .env("KV_AUTH_TOKEN", "short\r\n")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        ping.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        stderr.contains("warning: the token file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(stderr.contains("warning: the token is 5 bytes"), "{stderr}");
}

/// The address of the `listening on` line of a `kv serve` started with
/// its stdout piped.
fn listening_on(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_owned()
}

/// What `kv serve` with `args` writes on stderr before it is stopped,
/// once it is listening.
fn start_stderr(args: &[&str]) -> String {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("serve")
        .args(args)
        .env_remove("KV_AUTH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    listening_on(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    stderr
}

#[test]
fn risky_settings_are_warned_about_at_start() {
    let open = start_stderr(&[
        "--listen",
        "0.0.0.0:0",
        "--allow-unauthenticated",
        "--metrics-listen",
        "0.0.0.0:0",
    ]);
    assert!(open.contains("warning: --allow-unauthenticated"), "{open}");
    assert!(open.contains("warning: --metrics-listen 0.0.0.0:0"), "{open}");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a token long enough not to be warned about\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let clear = start_stderr(&[
        "--listen",
        "0.0.0.0:0",
        "--auth-token-file",
        token.to_str().unwrap(),
    ]);
    assert!(
        clear.contains("warning: the token crosses the network"),
        "{clear}"
    );
    assert!(!clear.contains("warning: the token file"), "{clear}");
    // On loopback with a good token file: nothing to say.
    let quiet = start_stderr(&[
        "--listen",
        "127.0.0.1:0",
        "--auth-token-file",
        token.to_str().unwrap(),
    ]);
    assert!(!quiet.contains("warning"), "{quiet}");
}

/// Serves mutual TLS from the PEM files `kv cert` names in `dir`, and puts
/// a key with the client certificate there: the server and the output.
fn put_over_mutual_tls(dir: &std::path::Path) -> (Served, Output) {
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let served = serve(&[
        "--tls-cert",
        &file("server.pem"),
        "--tls-key",
        &file("server-key.pem"),
        "--tls-client-ca",
        &file("ca.pem"),
    ]);
    let put = kv_with(
        &served,
        &[
            "put",
            "k",
            "v",
            "--tls-ca",
            &file("ca.pem"),
            "--tls-client-cert",
            &file("client.pem"),
            "--tls-client-key",
            &file("client-key.pem"),
        ],
        &[],
    );
    (served, put)
}

#[test]
fn client_commands_present_a_client_certificate_to_a_mutual_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::Pki::new("mtls CA");
    let (server, client) = (pki.server(), pki.client());
    for (name, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("server.pem", &server.cert_pem),
        ("server-key.pem", &server.key_pem),
        ("client.pem", &client.cert_pem),
        ("client-key.pem", &client.key_pem),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let (served, put) = put_over_mutual_tls(dir.path());
    assert_eq!(
        put.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );

    // Without one: refused, with what to give.
    let ca = dir.path().join("ca.pem");
    let refused = kv_with(&served, &["get", "k", "--tls-ca", ca.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kv: ") && last.contains("--tls-client-cert"),
        "{stderr}"
    );
}

#[test]
fn kv_cert_makes_what_serve_and_the_clients_need_with_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let made = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args([
            "cert",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
            "--days",
            "30",
            "--dir",
        ])
        .arg(&tls)
        .output()
        .unwrap();
    assert_eq!(
        made.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).contains("kv serve --tls-cert"));
    let written: Vec<_> = std::fs::read_dir(&tls)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        written.len(),
        6,
        "a CA, a server and a client, each a certificate and a key"
    );
    #[cfg(unix)]
    for path in &written {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    // Mutual TLS with nothing but what `kv cert` wrote.
    let (_served, put) = put_over_mutual_tls(&tls);
    assert_eq!(
        put.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    // Existing files are not replaced without --force.
    let again = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["cert", "--dir"])
        .arg(&tls)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr_line(&again).contains("--force"), "{:?}", again.stderr);
}

#[test]
fn an_expired_server_certificate_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::Pki::new("old CA");
    let start_with = |server: &pki::Identity| {
        let (_ca, cert, key) = pki::write_pem(dir.path(), &pki, server);
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        start_stderr(&["--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key])
    };
    let stderr = start_with(&pki.expired_server());
    assert!(
        stderr.contains("warning: the certificate") && stderr.contains("expired on"),
        "{stderr}"
    );
    let fresh = start_with(&pki.server());
    assert!(!fresh.contains("warning"), "{fresh}");
}

/// `kv bench --threads`: the load thread per core, every operation counted
/// once, the keys preloaded through one connection.
#[test]
fn bench_on_threads_counts_every_operation() {
    let served = serve(&[]);
    let bench = kv(
        &served,
        &[
            "bench",
            "--threads",
            "2",
            "--connections",
            "3",
            "--depth",
            "8",
            "--workload",
            "get",
            "--key-space",
            "100",
            "--ops",
            "3000",
            "--json",
        ],
    );
    let stdout = String::from_utf8_lossy(&bench.stdout);
    assert_eq!(
        bench.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(stdout.contains("\"ops\":3000,"), "{stdout}");
    assert!(stdout.contains("\"errors\":0"), "{stdout}");
}
