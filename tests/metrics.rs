//! Metrics: the README's table is the metrics the code defines (names,
//! types, labels), `kv serve --metrics-listen` serves them to a real
//! scraper in the Prometheus text format, and the client layers record
//! what they see — with a recorder installed (and metrics enabled) when
//! they were built, and nothing without one.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{ClientCodec, KvClient, KvError, KvServer, KvServerConfig, Request};
use wirestack::metrics::{Kind, Metric, Unit};
use wirestack::pool::PoolConfig;
use wirestack::reconnect::ReconnectConfig;
use wirestack::route::HealthConfig;

/// The README's metrics table: name -> (type, labels as written there).
fn readme_table() -> BTreeMap<String, (String, String)> {
    include_str!("../README.md")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`wirestack_")?.strip_suffix('`')?;
            let row = (cells.get(2)?.to_string(), cells.get(3)?.to_string());
            Some((format!("wirestack_{name}"), row))
        })
        .collect()
}

/// Every metric of the code's tables: the framework's and the KV store's.
fn code_table() -> impl Iterator<Item = &'static Metric> {
    wirestack::metrics::names::METRICS
        .iter()
        .chain(wirestack::kv::metrics::names::METRICS)
}

#[test]
fn the_readme_table_lists_exactly_the_metrics_in_the_code() {
    let code: BTreeMap<String, (String, String)> = code_table()
        .map(|metric| {
            let labels: Vec<String> = metric.labels.iter().map(|label| format!("`{label}`")).collect();
            let row = (metric.kind.as_str().to_string(), labels.join(", "));
            (metric.name.to_string(), row)
        })
        .collect();
    assert_eq!(readme_table(), code, "name -> (type, labels)");
    for metric in code_table() {
        let name = metric.name;
        assert_eq!(
            name.ends_with("_total"),
            metric.kind == Kind::Counter,
            "{name}: only counters end in _total"
        );
        let base = name.trim_end_matches("_total");
        assert_eq!(base.ends_with("_seconds"), metric.unit == Unit::Seconds, "{name}");
        assert_eq!(base.ends_with("_bytes"), metric.unit == Unit::Bytes, "{name}");
        assert!(metric.help.ends_with('.'), "{name}: a help text");
    }
    let names: Vec<&str> = code_table().map(|metric| metric.name).collect();
    let all: Vec<&str> = wirestack::metrics::names::ALL
        .iter()
        .chain(wirestack::kv::metrics::names::ALL)
        .copied()
        .collect();
    assert_eq!(names, all);
}

/// A `kv serve` with a metrics endpoint; killed when dropped.
struct Served {
    child: Child,
    addr: String,
    metrics: String,
    _dir: tempfile::TempDir,
    /// Kept open: the server writes to it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_with_metrics() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kv serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let addr = line()
        .strip_prefix("listening on ")
        .expect("the listening line")
        .to_string();
    let metrics = line()
        .strip_prefix("metrics on ")
        .expect("the metrics line")
        .to_string();
    assert!(
        metrics.starts_with("127.0.0.1:"),
        "a bare port is loopback: {metrics}"
    );
    Served {
        child,
        addr,
        metrics,
        _dir: dir,
        _stdout: stdout,
    }
}

/// One HTTP/1.1 exchange: status line and body.
fn http(addr: &str, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// A parsed exposition: the `# TYPE` of each family, and each sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut parsed = Exposition::default();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                parsed.types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
                let value = value.parse().unwrap_or_else(|_| panic!("a number in {line:?}"));
                assert!(
                    parsed.samples.insert(series.to_string(), value).is_none(),
                    "{line}"
                );
            }
        }
        parsed
    }

    fn value(&self, series: &str) -> f64 {
        self.samples[series]
    }
}

fn scrape(served: &Served) -> Exposition {
    let (status, body) = http(&served.metrics, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    Exposition::parse(&body)
}

#[test]
fn idle_sockets_do_not_delay_a_scrape() {
    let served = serve_with_metrics();
    // Three times the endpoint's scrape slots, connected and silent.
    let idle: Vec<TcpStream> = (0..48)
        .map(|_| TcpStream::connect(&served.metrics).unwrap())
        .collect();
    let mut scrape = TcpStream::connect(&served.metrics).unwrap();
    // A hang guard only.
    scrape.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    scrape.read_to_string(&mut response).expect("answered");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    // The property: it was answered while every idle socket was still open
    // and unanswered. An endpoint that takes slots before accepting answers
    // it only after shedding idle sockets to free one.
    let shed = idle
        .iter()
        .filter(|socket| {
            socket.set_nonblocking(true).unwrap();
            let still_open = matches!(
                (&mut &**socket).read(&mut [0; 64]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            !still_open
        })
        .count();
    assert_eq!(
        shed, 0,
        "{shed} idle sockets were shed before the scrape was answered"
    );
}

#[test]
fn kv_serve_exports_the_server_store_and_log_to_a_scraper() {
    let served = serve_with_metrics();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = KvClient::connect(served.addr.as_str()).await.unwrap();
        for i in 0..10 {
            client.put(format!("key{i}"), "value").await.unwrap();
        }
        client
            .put_with_ttl("brief", "x", Duration::from_millis(1))
            .await
            .unwrap();
        for i in 0..5 {
            client.get(format!("key{i}")).await.unwrap();
        }
    });

    // The store's and log's figures are published every 100 ms: wait for
    // the load to show, within a bound.
    let started = Instant::now();
    let exposition = loop {
        let exposition = scrape(&served);
        let done = exposition.samples.get("wirestack_kv_keys") == Some(&10.0)
            && exposition.samples.get("wirestack_kv_expired_keys_total") == Some(&1.0);
        if done || started.elapsed() > Duration::from_secs(10) {
            break exposition;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // Every server and store name of the README's table, with its type.
    for (name, (kind, _)) in readme_table() {
        if name.starts_with("wirestack_client_") {
            continue; // no client stack in a server
        }
        assert_eq!(exposition.types.get(&name), Some(&kind), "{name}");
    }
    // What the load moved.
    assert_eq!(exposition.value("wirestack_kv_keys"), 10.0);
    assert_eq!(exposition.value("wirestack_kv_expired_keys_total"), 1.0);
    assert_eq!(exposition.value("wirestack_kv_wal_records_total"), 11.0);
    assert!(exposition.value("wirestack_kv_wal_bytes_total") > 11.0 * 13.0);
    assert_eq!(exposition.value("wirestack_kv_storage_degraded"), 0.0);
    assert!(exposition.value("wirestack_kv_store_bytes") > 0.0);
    assert!(exposition.value("wirestack_kv_wal_recovery_seconds") > 0.0);
    assert_eq!(
        exposition.value("wirestack_server_connections_accepted_total"),
        1.0
    );
    assert_eq!(exposition.value("wirestack_server_connections_open"), 1.0);
    // The client's HELLO, then its 16 calls.
    assert_eq!(exposition.value("wirestack_server_requests_total"), 17.0);
    assert!(exposition.value("wirestack_server_received_bytes_total") > 17.0 * 9.0);
    assert!(exposition.value("wirestack_server_sent_bytes_total") >= 17.0 * 5.0);
    assert_eq!(
        exposition.value("wirestack_server_connections_closed_total{cause=\"peer_closed\"}"),
        0.0
    );

    // Not a scrape: answered, not served metrics.
    let (status, _) = http(
        &served.metrics,
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
}

/// Everything a [`DebuggingRecorder`] was given so far. Its snapshots
/// drain it (counters and gauges to zero, histograms emptied), so they are
/// added up here; the client's gauges only move up and down, so their sums
/// are their values.
struct Totals {
    snapshotter: Snapshotter,
    counters: BTreeMap<(String, Vec<(String, String)>), u64>,
    gauges: BTreeMap<String, f64>,
    histograms: BTreeMap<String, usize>,
}

impl Totals {
    fn new(snapshotter: Snapshotter) -> Self {
        Totals {
            snapshotter,
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
            histograms: BTreeMap::new(),
        }
    }

    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let name = key.name().to_string();
            let labels = key
                .labels()
                .map(|label| (label.key().to_string(), label.value().to_string()))
                .collect();
            match value {
                DebugValue::Counter(n) => *self.counters.entry((name, labels)).or_default() += n,
                DebugValue::Gauge(g) => *self.gauges.entry(name).or_default() += g.into_inner(),
                DebugValue::Histogram(values) => *self.histograms.entry(name).or_default() += values.len(),
            }
        }
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.refresh();
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.counters
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&mut self, name: &str) -> f64 {
        self.refresh();
        self.gauges.get(name).copied().unwrap_or(0.0)
    }

    fn histogram_len(&mut self, name: &str) -> usize {
        self.refresh();
        self.histograms.get(name).copied().unwrap_or(0)
    }
}

/// The client layers record into a recorder installed (for this thread),
/// and metrics enabled, before the stack was built: requests, latencies,
/// connection state, failures by kind, deadline expiries, failed-fast
/// requests.
#[tokio::test(flavor = "current_thread")]
async fn the_client_layers_record_what_they_see() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(recorder.snapshotter());
    let _installed = metrics::set_default_local_recorder(&recorder);
    wirestack::metrics::enable();
    use wirestack::metrics::names::*;

    let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    let reconnect = ReconnectConfig {
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        ..ReconnectConfig::default()
    };
    let stack = ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(2))
        .no_retry()
        .reconnect(reconnect)
        .connect::<Request>(addr)
        .await
        .unwrap();
    let client = KvClient::new(stack);
    for i in 0..20 {
        client.put(format!("k{i}"), "v").await.unwrap();
    }
    client.get_many((0..10).map(|i| format!("k{i}"))).await.unwrap();

    assert_eq!(totals.counter(CLIENT_REQUESTS, &[]), 30);
    assert_eq!(totals.histogram_len(CLIENT_REQUEST_DURATION), 30);
    assert_eq!(totals.counter(CLIENT_CONNECTS, &[]), 1);
    assert_eq!(totals.counter(CLIENT_CONNECT_ATTEMPTS, &[]), 1);
    assert_eq!(totals.gauge(CLIENT_CONNECTED), 1.0);
    assert_eq!(totals.gauge(CLIENT_IN_FLIGHT), 0.0);
    // The server in this process recorded into the same recorder.
    assert_eq!(totals.counter(SERVER_REQUESTS, &[]), 30);

    // The server goes away: the connection is found broken, reconnect
    // attempts fail, and calls fail fast meanwhile.
    server.shutdown().await.unwrap();
    let started = Instant::now();
    while totals.counter(CLIENT_FAILED_FAST, &[]) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no request failed fast"
        );
        match client.get("k1").await {
            Err(KvError::Disconnected(_) | KvError::Connection(_)) => {}
            other => panic!(
                "expected a connection error, got {other:?} after {:?}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(totals.counter(CLIENT_DISCONNECTS, &[]), 1);
    assert!(totals.counter(CLIENT_CONNECT_FAILURES, &[("failure", "other")]) >= 1);
    assert_eq!(totals.gauge(CLIENT_CONNECTED), 0.0);

    // A peer that never answers: the deadline ends the request, and the
    // pipeline counts it as timed out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let _connection = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_millis(50))
            .connect::<Request>(silent_addr)
            .await
            .unwrap(),
    );
    assert!(matches!(client.get("k").await, Err(KvError::TimedOut)));
    assert_eq!(totals.counter(CLIENT_DEADLINE_EXPIRED, &[]), 1);
    assert_eq!(totals.counter(CLIENT_FAILURES, &[("failure", "timed_out")]), 1);
    hold.abort();
}

/// A stack built while no recorder was installed holds the facade's no-op
/// handles: it records nothing, even once a recorder is installed.
#[tokio::test(flavor = "current_thread")]
async fn a_stack_built_without_a_recorder_records_nothing() {
    let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    client.put("k", "v").await.unwrap();

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _installed = metrics::set_default_local_recorder(&recorder);
    for _ in 0..10 {
        client.get("k").await.unwrap();
    }
    let recorded: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, ..)| key.key().name().to_string())
        .collect();
    assert!(recorded.is_empty(), "recorded {recorded:?}");
    server.shutdown().await.unwrap();
}

/// The router counts ejections and the calls they fail at once, and holds
/// the number of endpoints out; pools hold the number of connections.
#[tokio::test(flavor = "current_thread")]
async fn the_router_and_its_pools_record_ejections_and_connections() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(recorder.snapshotter());
    let _installed = metrics::set_default_local_recorder(&recorder);
    wirestack::metrics::enable();
    use wirestack::metrics::names::*;

    let start = || KvServer::start("127.0.0.1:0", KvServerConfig::default());
    let (up, down) = (start().await.unwrap(), start().await.unwrap());
    let down_addr = down.local_addr();
    let router = ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(2))
        .no_retry()
        .pool(PoolConfig {
            max_connections: 3,
            grow_at: 1,
        })
        .health(HealthConfig {
            failures: 2,
            window: Duration::from_secs(30),
            probe_backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
            probe_timeout: Duration::from_millis(500),
        })
        .route::<Request, _>([up.local_addr(), down_addr])
        .unwrap();
    let client = KvClient::new(router.clone());
    let keys: Vec<String> = (0..200).map(|i| format!("key:{i}")).collect();
    let (down_keys, up_keys): (Vec<String>, Vec<String>) = keys
        .iter()
        .cloned()
        .partition(|key| router.endpoint_of(key.as_bytes()) == down_addr.to_string());
    assert!(!down_keys.is_empty() && !up_keys.is_empty());
    // Many calls at once: the pools grow past their first connection.
    client
        .put_many(keys.iter().map(|k| (k.clone(), "v")))
        .await
        .unwrap();
    futures::future::try_join_all(keys.iter().map(|k| client.get(k.clone())))
        .await
        .unwrap();
    let connections = totals.gauge(CLIENT_POOL_CONNECTIONS);
    assert!((3.0..=6.0).contains(&connections), "{connections}");
    assert_eq!(totals.gauge(CLIENT_ENDPOINTS_EJECTED), 0.0);

    // One server goes away: its calls fail until it is ejected, then fail
    // at once; the other's keys are served throughout.
    down.shutdown().await.unwrap();
    let started = Instant::now();
    while totals.counter(CLIENT_ENDPOINT_EJECTIONS, &[]) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "never ejected");
        assert!(client.get(down_keys[0].clone()).await.is_err());
        assert!(client.get(up_keys[0].clone()).await.is_ok());
    }
    assert_eq!(totals.gauge(CLIENT_ENDPOINTS_EJECTED), 1.0);
    let before = totals.counter(CLIENT_REQUESTS_EJECTED, &[]);
    assert!(client.get(down_keys[0].clone()).await.is_err());
    assert!(client.get_many(keys.iter().cloned()).await.is_err());
    assert_eq!(
        totals.counter(CLIENT_REQUESTS_EJECTED, &[]),
        before + 1 + down_keys.len() as u64,
        "one call, then each request of the batch routed there"
    );

    // Back on its address: a probe brings it back, and the gauge says so.
    let again = KvServer::start(down_addr, KvServerConfig::default())
        .await
        .unwrap();
    let started = Instant::now();
    while totals.gauge(CLIENT_ENDPOINTS_EJECTED) != 0.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "never probed back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(totals.counter(CLIENT_ENDPOINT_EJECTIONS, &[]), 1);

    // The router gone, its pools' connections are no longer counted.
    drop((client, router));
    assert_eq!(totals.gauge(CLIENT_POOL_CONNECTIONS), 0.0);
    up.shutdown().await.unwrap();
    again.shutdown().await.unwrap();
}
