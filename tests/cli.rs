//! The `kv` binary: serve, then ping/get/put/del with their exit codes.

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
