//! A local Redis Cluster for the cluster comparison: three primaries on
//! free loopback ports, each in a temporary directory of its own, no
//! persistence, joined with `redis-cli --cluster create`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The cluster's nodes, stopped (and their directories removed) on drop.
pub struct LocalCluster {
    nodes: Vec<(Child, u16, std::path::PathBuf)>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (child, _, dir) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(args: &[String]) -> String {
    let output = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (Debian: apt-get install redis-server)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl LocalCluster {
    /// Starts three primaries and joins them; returns once every node sees
    /// the cluster ok.
    pub fn start() -> LocalCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("clients-bench-cluster-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a node directory");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (Debian: apt-get install redis-server)");
            nodes.push((child, port, dir));
        }
        let cluster = LocalCluster { nodes };
        for port in cluster.ports() {
            cluster.wait(|| cli(&["-p".into(), port.to_string(), "PING".into()]).trim() == "PONG");
        }
        let mut create = vec!["--cluster".to_string(), "create".to_string()];
        create.extend(cluster.seeds());
        create.push("--cluster-yes".into());
        cli(&create);
        for port in cluster.ports() {
            let info = ["-p".into(), port.to_string(), "CLUSTER".into(), "INFO".into()];
            cluster.wait(|| cli(&info).contains("cluster_state:ok"));
        }
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(_, port, _)| *port).collect()
    }

    /// `127.0.0.1:port` of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect()
    }

    fn wait(&self, mut done: impl FnMut() -> bool) {
        for _ in 0..600 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the local cluster did not come up");
    }
}
