//! A deterministic simulator of the whole KV path — clients, network,
//! server, log — driven by one seed, with the linearizability checker as
//! its oracle (issue 24).
//!
//! # What runs
//!
//! * **Clients**: client tasks making single calls and batches, each
//!   through a `KvClient` of its own over either the stack
//!   `KvClient::connect` builds (HELLO with a session, a `Multiplex` with
//!   keepalive, reconnect, retry, deadline, the session layer) or
//!   `ClientBuilder`'s 1.1 default (a `Pipeline`, no session) — both made
//!   with `ClientBuilder` over the simulator's connector. A third of
//!   these tasks call with a short deadline (5–300 ms), so that calls time
//!   out with their requests written: the multiplexer sends CANCEL, and
//!   the server answers CANCELLED what its log had not taken. In half the
//!   seeds there are two servers, and 1–3 more tasks go through
//!   `ClientBuilder::route` over both (`KvClient::sharded`'s stack: a
//!   `Router` with health checks over a pool and a 2.0 stack per server),
//!   on keys of their own. Beside them,
//!   *raw* connections write pipelined requests straight through the
//!   codec (1.1, or 2.0 after HELLO), so that a connection's own order is
//!   checked too; on 2.0 they CANCEL a quarter of their requests right
//!   behind them, so that the server's cancel path is checked where its
//!   answers are seen.
//! * **Network**: every connection is an in-memory link of the
//!   simulator's own, plugged in through the connector seam
//!   (`ClientBuilder::connector`). Each direction is a queue of timed
//!   chunks: a link has a latency (so links reorder against each other),
//!   and the fault schedule can partition it (nothing arrives until it
//!   heals), reset it, make it half-open (the server end is gone, the
//!   client's writes vanish), or throttle it; a blackout resets every
//!   link and refuses connection attempts for a while. Connection
//!   attempts are refused while the server is down.
//! * **Servers**: each the real `KvService` over a real `Store` and `Wal`
//!   (`fsync = always`), behind a small connection loop of the simulator's
//!   (the crate's `Server` needs a TCP listener): requests are called in
//!   the order read, 1.1 answers leave in order, 2.0 answers as they come.
//!   A GOAWAY fault tells one connection to go away, as the real server's
//!   connection does on shutdown: it writes GOAWAY (2.0; 1.1 has none),
//!   reads no more requests, answers those it read, closes its side and
//!   lingers, dropping whatever still comes; the client stack resends
//!   what was never read (`NotSent(GoingAway)`) on a new connection. In
//!   half the seeds the session table is tiny (1–4 sessions, idle for
//!   50 ms–1.5 s at most), so sessions are evicted and expire under load
//!   and sequenced writes are answered SESSION_EXPIRED; the client then
//!   starts a new session.
//!   The log's writer runs inline (`wal::sim`, `Wal::open_inline`): the
//!   simulator steps it at seeded instants, so its batches are seeded too,
//!   and its file is the simulator's (`SimLogFile`): writes and fsyncs
//!   can be delayed (a slow disk: the writer takes its batches 20–300 ms
//!   apart) or fail for a while, and a crash can be armed to tear the next write
//!   (a prefix, or a prefix then zeros, lands). A crash drops everything
//!   not fsynced, kills every connection, and restarts the server on the
//!   same directory after a seeded pause: recovery must accept whatever a
//!   crash can leave, without an operator (a refusal fails the run), and
//!   the checker says whether an answered write was lost. A tear with
//!   zeros starts at a sector boundary (or where the synced data ends), as
//!   on a disk, which writes whole sectors.
//!
//! # Why our own simulator on tokio
//!
//! turmoil simulates hosts and TCP but not a file system, and our log's
//! writer thread and the stack's `tokio::spawn`s would need its own
//! runtime glue; madsim replaces tokio (and `std::time`, `rand`) at build
//! time under a `cfg`, which the whole dependency tree must support. The
//! stack already has the seams a simulator needs — a connector of
//! transports and a log-file trait — so the simulator is a current-thread
//! tokio runtime with a paused clock (time jumps to the next timer when
//! every task waits: a run of minutes takes milliseconds), links and a
//! disk of its own, and one `fastrand::Rng` per purpose, all seeded from
//! the seed. A current-thread runtime runs ready tasks in a fixed order,
//! so a seed fixes everything that happens.
//!
//! What stays outside the seed, and what the simulator does about it:
//! the retry budget counts real seconds (set so large it never refuses),
//! backoff jitter draws from a randomly keyed hasher (base = cap, so it
//! draws nothing), and the server's request deadlines are `std` instants
//! (the simulator's server clears them; the client's deadline is on the
//! paused clock and checked). The log's retry after a failure runs when
//! the simulator says. The session ids are drawn from the seed
//! (`ClientSession::with_id`). tokio's `watch` channel, which `Reconnect`
//! callers wait on for a connection, wakes its waiters in an order drawn
//! from tokio's own generator (seedable only under `tokio_unstable`), so
//! callers sharing one `Reconnect` would make a run irreproducible: each
//! client task has its own client, and many callers share a connection
//! only through batches and raw pipelines. `the_same_seed_gives_the_same_trace`
//! checks the rest: a seed run twice gives the same trace hash.
//!
//! Not simulated (yet): a pool of more than one connection, balancing
//! and hedging (their picks draw from randomly keyed hashers, and a pool
//! only grows under callers that share its connections, which tokio's
//! `watch` wakes in an unseeded order); the server's own deadlines
//! (their budgets become `std` instants, cleared, see above: a late call
//! is cancelled by the client's CANCEL, never by the server's clock).
//!
//! # The oracle
//!
//! Every run's history — each operation's send and answer on one logical
//! clock — goes through the WGL checker of
//! `tests/common/linearizability.rs` (per key; a raw connection's
//! requests carry its session, so its order binds them: on 1.1 all of
//! them, on 2.0 those of one key, which is what a per-key check sees).
//! Besides:
//!
//! * every `KvClient` call and batch ends within its deadline, with an
//!   answer or a typed error (`KvError` other than `Other`);
//! * a write that failed "not sent" is never read by anyone, the final
//!   reads included; so is a raw connection's write that a GOAWAY left
//!   unanswered before a clean close (the server never read it), and one
//!   answered CANCELLED (it never took effect);
//! * a write answered SESSION_EXPIRED, or that timed out (CANCEL sent or
//!   not), is in doubt: that send was not applied, an earlier one may
//!   have been;
//! * every write acknowledged (`fsync = always`) survives every crash —
//!   the checker sees a lost one as a read of an older value; the final
//!   reads after the last restart make sure each key is read;
//! * with sessions, a write applied twice would show as a value coming
//!   back after a later write of its key, which the checker refuses (what
//!   it cannot see is a second apply with no write of its key between).
//! * recovery never refuses what a crash left.
//!
//! A failing seed prints itself, what failed and the trace of the key
//! that failed (with the faults); `SIM_SEED=<seed> cargo test --test sim
//! replay` runs that one seed again, and `SIM_SEEDS=<n>` with
//! `SIM_FIRST=<seed>` runs `n` of them (`scripts/sim.sh`).
//!
//! # Mutations
//!
//! With the feature `sim-mutations`, `wirestack::mutations` puts back
//! three fixed bugs, one at a time; `cargo test --features sim-mutations
//! --test sim mutations` checks that each is caught within
//! [`MUTATION_BOUND`] seeds.

#[path = "common/linearizability.rs"]
mod linearizability;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{SinkExt, StreamExt};
use linearizability::{check, Action, Answer, Op};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Framed;
use tower::{Service, ServiceExt};
use wirestack::backoff::Backoff;
use wirestack::batch::{Batch, BatchResponse};
use wirestack::builder::ClientBuilder;
use wirestack::keepalive::Keepalive;
use wirestack::kv::wal::sim::{InlineWriter, SimLogFile};
use wirestack::kv::wal::{FsyncPolicy, Wal, WalConfig};
use wirestack::kv::{
    ClientCodec, Hello, Incoming, KvClient, KvError, KvService, Request, Response, ServerCodec,
    SessionConfig, Status, Store,
};
use wirestack::multiplex::{self, Outgoing};
use wirestack::reconnect::ReconnectConfig;
use wirestack::retry::RetryConfig;
use wirestack::route::HealthConfig;
use wirestack::session::{ClientSession, SessionLayer, Stamped};
use wirestack::transport::{Handshake, Target};
use wirestack::BoxError;

/// The deadline of every `KvClient` call.
const DEADLINE: Duration = Duration::from_secs(2);
/// How long a raw connection waits for its answers before it gives up on them.
const RAW_WAIT: Duration = Duration::from_secs(3);
/// Seeds a mutation must be caught within.
#[cfg(feature = "sim-mutations")]
const MUTATION_BOUND: u64 = 200;

// ---------------------------------------------------------------------------
// The trace and the logical clock.

/// What happened in a run, line by line, with virtual times.
#[derive(Debug, Default)]
struct Trace {
    lines: Vec<String>,
    tick: u64,
}

// ---------------------------------------------------------------------------
// The network.

/// What is wrong with a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing arrives either way until it heals (bytes wait, as TCP's would).
    Partitioned,
    /// Every read and write fails with `ConnectionReset`.
    Reset,
    /// The server end is gone without a word: the client's writes vanish
    /// and nothing ever arrives.
    HalfOpen,
}

/// One direction of a link: chunks and when they arrive.
#[derive(Debug, Default)]
struct Pipe {
    chunks: VecDeque<(Instant, Bytes)>,
    /// The writer shut down or went away: end of stream after the chunks.
    closed: bool,
    /// The reader went away: writes fail.
    reader_gone: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct LinkState {
    fault: Option<Fault>,
    latency: Duration,
    wakers: Vec<Waker>,
}

/// A connection between a client and the server.
#[derive(Debug)]
struct Link {
    id: usize,
    /// The server it leads to.
    server: usize,
    state: Mutex<LinkState>,
    to_server: Mutex<Pipe>,
    to_client: Mutex<Pipe>,
    /// The server's side of it is told to go away (a GOAWAY fault).
    goaway: tokio::sync::Notify,
}

impl Link {
    fn set_fault(&self, fault: Option<Fault>) {
        let mut state = self.state.lock().unwrap();
        state.fault = fault;
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
        for pipe in [&self.to_server, &self.to_client] {
            if let Some(waker) = pipe.lock().unwrap().waker.take() {
                waker.wake();
            }
        }
    }

    fn fault(&self) -> Option<Fault> {
        self.state.lock().unwrap().fault
    }
}

/// One end of a link.
struct End {
    link: Arc<Link>,
    client: bool,
    sleep: Pin<Box<Sleep>>,
}

impl End {
    fn pipes(&self) -> (&Mutex<Pipe>, &Mutex<Pipe>) {
        if self.client {
            (&self.link.to_client, &self.link.to_server)
        } else {
            (&self.link.to_server, &self.link.to_client)
        }
    }

    /// The fault as this end sees it; registers the waker for its change.
    fn poll_fault(&self, cx: &mut Context<'_>) -> Option<Fault> {
        let mut state = self.link.state.lock().unwrap();
        if !state.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        state.fault
    }
}

fn reset() -> io::Error {
    io::ErrorKind::ConnectionReset.into()
}

impl AsyncRead for End {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.poll_fault(cx) {
            Some(Fault::Reset) => return Poll::Ready(Err(reset())),
            Some(Fault::Partitioned) => return Poll::Pending,
            Some(Fault::HalfOpen) if self.client => return Poll::Pending,
            // The server end of a half-open link: its peer is gone.
            Some(Fault::HalfOpen) => return Poll::Ready(Ok(())),
            None => {}
        }
        loop {
            let now = Instant::now();
            let this = &mut *self;
            let (inbound, _) = this.pipes();
            let mut pipe = inbound.lock().unwrap();
            let Some((at, chunk)) = pipe.chunks.front_mut() else {
                if pipe.closed {
                    return Poll::Ready(Ok(()));
                }
                pipe.waker = Some(cx.waker().clone());
                return Poll::Pending;
            };
            if *at > now {
                let at = *at;
                drop(pipe);
                this.sleep.as_mut().reset(at);
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            let n = buf.remaining().min(chunk.len());
            buf.put_slice(&chunk.split_to(n));
            if chunk.is_empty() {
                pipe.chunks.pop_front();
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for End {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let fault = self.poll_fault(cx);
        match fault {
            Some(Fault::Reset) => return Poll::Ready(Err(reset())),
            Some(Fault::HalfOpen) if self.client => return Poll::Ready(Ok(buf.len())),
            Some(Fault::HalfOpen) => return Poll::Ready(Err(reset())),
            _ => {}
        }
        let latency = self.link.state.lock().unwrap().latency;
        let (_, outbound) = self.pipes();
        let mut pipe = outbound.lock().unwrap();
        if pipe.reader_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // In order within a direction: never before the chunk ahead of it.
        let at = (Instant::now() + latency).max(pipe.chunks.back().map_or(Instant::now(), |(at, _)| *at));
        pipe.chunks.push_back((at, Bytes::copy_from_slice(buf)));
        if let Some(waker) = pipe.waker.take() {
            waker.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (_, outbound) = self.pipes();
        let mut pipe = outbound.lock().unwrap();
        pipe.closed = true;
        if let Some(waker) = pipe.waker.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        let (inbound, outbound) = self.pipes();
        for (pipe, closed) in [(outbound, true), (inbound, false)] {
            let mut pipe = pipe.lock().unwrap();
            if closed {
                pipe.closed = true;
            } else {
                pipe.reader_gone = true;
            }
            if let Some(waker) = pipe.waker.take() {
                waker.wake();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The disk under the log.

/// The log file as the simulator keeps it: the real file (recovery reads
/// it), how much of it is durable, the writes made since the last fsync,
/// and the faults armed.
///
/// The writer writes each byte at most twice: as a preallocated zero
/// (under `always` it keeps zeros ahead of its records), then as data. So
/// a lost write reverts to zeros where the file was durably that long, and
/// to nothing past it.
#[derive(Debug)]
struct Disk {
    file: Option<File>,
    /// The file's length.
    len: u64,
    /// The file's durable length: everything before it that is not in
    /// `unsynced` survives a crash.
    synced: u64,
    /// The writes since the last fsync, in order: (offset, length).
    unsynced: Vec<(u64, u64)>,
    fail_writes: bool,
    fail_fsyncs: bool,
    /// Tear the next write and crash.
    crash_next_write: bool,
    crashed: bool,
    rng: fastrand::Rng,
}

/// A disk writes whole sectors.
const SECTOR: u64 = 512;

impl Disk {
    fn new(rng: fastrand::Rng) -> Self {
        Disk {
            file: None,
            len: 0,
            synced: 0,
            unsynced: Vec::new(),
            fail_writes: false,
            fail_fsyncs: false,
            crash_next_write: false,
            crashed: false,
            rng,
        }
    }

    /// The writer's file is now `file`, durable as it is.
    fn switch_to(&mut self, file: File) {
        self.len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.synced = self.len;
        self.unsynced.clear();
        self.file = Some(file);
    }

    /// A crash: the writes not fsynced may be lost. A seeded number of them
    /// landed whole, the next a prefix of it, the rest not at all. Either
    /// the lost part is gone (the file is as long as what landed, or its
    /// durable length), or — a file system that extended the file before
    /// the data landed — it reads as zeros from a sector boundary (or from
    /// where its write began) and the file keeps its length.
    fn crash(&mut self) -> String {
        self.crashed = true;
        let Some(file) = self.file.take() else {
            return "no file".into();
        };
        let writes = std::mem::take(&mut self.unsynced);
        let whole = self.rng.usize(..=writes.len());
        let zeros = self.rng.bool();
        let mut lost = Vec::new();
        let mut landed_end = self.synced;
        for (i, &(offset, len)) in writes.iter().enumerate() {
            let kept = match i.cmp(&whole) {
                std::cmp::Ordering::Less => len,
                std::cmp::Ordering::Equal => {
                    let prefix = self.rng.u64(..=len);
                    if zeros {
                        ((offset + prefix) / SECTOR * SECTOR).max(offset) - offset
                    } else {
                        prefix
                    }
                }
                std::cmp::Ordering::Greater => 0,
            };
            landed_end = landed_end.max(offset + kept);
            if kept < len {
                lost.push((offset + kept, len - kept));
            }
        }
        let new_len = if zeros { self.len } else { landed_end };
        for &(offset, len) in &lost {
            let end = (offset + len).min(new_len);
            if offset < end {
                file.write_all_at(&vec![0; (end - offset) as usize], offset)
                    .expect("zero a lost write");
            }
        }
        file.set_len(new_len).expect("cut the log file");
        format!(
            "log crash: {whole} of {} unsynced writes whole, {} lost, length {new_len} (synced {}){}",
            writes.len(),
            lost.len(),
            self.synced,
            if zeros { ", lost parts zeros" } else { "" }
        )
    }
}

/// The writer's file: through the shared [`Disk`].
#[derive(Debug)]
struct SimFile(Arc<Mutex<Disk>>);

impl SimLogFile for SimFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        if disk.crashed || disk.fail_writes {
            return Err(io::Error::other("simulated write failure"));
        }
        let disk = &mut *disk;
        let file = disk.file.as_mut().expect("a log file");
        let mut n = buf.len();
        if disk.crash_next_write {
            // A crash point inside this write: a prefix lands.
            n = disk.rng.usize(..buf.len().max(1));
        }
        file.write_all_at(&buf[..n], offset)?;
        disk.len = disk.len.max(offset + n as u64);
        disk.unsynced.push((offset, n as u64));
        if disk.crash_next_write {
            disk.crashed = true;
            return Err(io::Error::other("simulated crash mid-write"));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        if disk.crashed || disk.fail_fsyncs {
            return Err(io::Error::other("simulated fsync failure"));
        }
        // The real file needs no fsync: the simulator's crash decides what survives.
        disk.synced = disk.len;
        disk.unsynced.clear();
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        if disk.crashed {
            return Err(io::Error::other("simulated crash"));
        }
        disk.file.as_ref().expect("a log file").set_len(len)?;
        // Taken as durable at once (the writer fsyncs right after).
        disk.len = len;
        disk.synced = disk.synced.min(len);
        disk.unsynced.retain_mut(|(offset, n)| {
            *n = (*offset + *n).min(len).saturating_sub(*offset);
            *n > 0
        });
        Ok(())
    }

    fn switch_to(&mut self, next: File) {
        self.0.lock().unwrap().switch_to(next);
    }
}

// ---------------------------------------------------------------------------
// The world: network, server, log, trace.

/// The server's process: up with its log, or down.
#[derive(Default)]
struct Server {
    up: Option<Up>,
    /// Crashes so far.
    crashes: u32,
}

struct Up {
    service: KvService,
    writer: InlineWriter,
    disk: Arc<Mutex<Disk>>,
    connections: Vec<tokio::task::JoinHandle<()>>,
}

struct World {
    rng: Mutex<fastrand::Rng>,
    trace: Mutex<Trace>,
    start: Instant,
    links: Mutex<Vec<Arc<Link>>>,
    /// One or two servers, each with its data directory.
    servers: Vec<Mutex<Server>>,
    /// The servers' session table: in some seeds small and short-lived, so
    /// that sessions expire and are evicted under load.
    sessions: SessionConfig,
    dirs: Vec<PathBuf>,
    violations: Mutex<Vec<String>>,
    /// Writes that failed "not sent".
    not_sent: Mutex<Vec<Bytes>>,
    history: Mutex<Vec<Op>>,
    /// Connection attempts are refused until then (a blackout).
    refusing: Mutex<Instant>,
    /// The log's writer takes its batches slowly until then: writes and
    /// fsyncs are delayed.
    slow_disk: Mutex<Instant>,
}

impl World {
    fn rng<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        f(&mut self.rng.lock().unwrap())
    }

    fn log(&self, line: impl AsRef<str>) {
        let ms = self.start.elapsed().as_micros();
        // The data directory's name is random: not in the trace.
        let mut line = line.as_ref().to_owned();
        for (i, dir) in self.dirs.iter().enumerate() {
            line = line.replace(&*dir.to_string_lossy(), &format!("<dir{i}>"));
        }
        let mut trace = self.trace.lock().unwrap();
        trace.lines.push(format!("{:>9.3}ms {line}", ms as f64 / 1000.0));
    }

    /// The logical clock of the history: every send and answer gets its own tick.
    fn tick(&self) -> u64 {
        let mut trace = self.trace.lock().unwrap();
        trace.tick += 1;
        trace.tick
    }

    fn violation(&self, what: String) {
        self.log(format!("VIOLATION {what}"));
        self.violations.lock().unwrap().push(what);
    }

    fn record(&self, op: Op) {
        self.history.lock().unwrap().push(op);
    }

    /// Opens the log (recovering it) and starts taking connections.
    fn start_server(self: &Arc<Self>, i: usize) -> bool {
        if self.servers[i].lock().unwrap().up.is_some() {
            // Restarted already by whoever crashed it last.
            return true;
        }
        let store = Store::with_sessions(self.sessions.clone());
        let disk = Arc::new(Mutex::new(Disk::new(fastrand::Rng::with_seed(
            self.rng(|rng| rng.u64(..)),
        ))));
        let config = WalConfig {
            fsync: FsyncPolicy::Always,
            compact_min_bytes: u64::MAX,
            ..WalConfig::default()
        };
        let shared = disk.clone();
        let open = || {
            Wal::open_inline(&self.dirs[i], config.clone(), store.clone(), move |file| {
                shared.lock().unwrap().switch_to(file);
                Box::new(SimFile(shared)) as Box<dyn SimLogFile>
            })
        };
        match open() {
            Ok((wal, writer)) => {
                self.log(format!(
                    "server {i} up, {} records recovered",
                    wal.stats().records_recovered
                ));
                self.servers[i].lock().unwrap().up = Some(Up {
                    service: KvService::with_wal(wal),
                    writer,
                    disk,
                    connections: Vec::new(),
                });
                true
            }
            Err(error) => {
                self.violation(format!("recovery refused what a crash left: {error}"));
                false
            }
        }
    }

    /// Kills the server: nothing more is written, the unsynced tail is cut,
    /// every connection resets.
    fn crash(&self, i: usize, why: &str) {
        let mut server = self.servers[i].lock().unwrap();
        let Some(up) = server.up.take() else {
            return;
        };
        server.crashes += 1;
        drop(server);
        for connection in &up.connections {
            connection.abort();
        }
        let cut = up.disk.lock().unwrap().crash();
        self.log(format!("CRASH server {i} ({why}): {cut}"));
        // The writer goes with its queue: the directory is unlocked.
        drop(up);
        for link in self.links.lock().unwrap().iter().filter(|link| link.server == i) {
            if link.fault() != Some(Fault::HalfOpen) {
                link.set_fault(Some(Fault::Reset));
            }
        }
    }

    /// A connection attempt: refused while the server is down.
    fn connect(self: &Arc<Self>, i: usize) -> Option<End> {
        if *self.refusing.lock().unwrap() > Instant::now() {
            return None;
        }
        let mut server = self.servers[i].lock().unwrap();
        let up = server.up.as_mut()?;
        let latency = self.rng(|rng| Duration::from_micros(rng.u64(0..5_000)));
        let link = {
            let mut links = self.links.lock().unwrap();
            let link = Arc::new(Link {
                id: links.len(),
                server: i,
                state: Mutex::new(LinkState {
                    fault: None,
                    latency,
                    wakers: Vec::new(),
                }),
                to_server: Mutex::default(),
                to_client: Mutex::default(),
                goaway: tokio::sync::Notify::new(),
            });
            links.push(link.clone());
            link
        };
        let server_end = End {
            link: link.clone(),
            client: false,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        };
        let service = up.service.clone();
        up.connections
            .push(tokio::spawn(serve(server_end, service, self.clone())));
        drop(server);
        self.log(format!(
            "link {} to server {i} open, latency {latency:?}",
            link.id
        ));
        Some(End {
            link,
            client: true,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        })
    }
}

/// How long a connection that sent GOAWAY reads and drops what its peer
/// still sends before it closes (the real server lingers too).
const LINGER: Duration = Duration::from_secs(1);

/// One server connection: requests called in the order read; 1.1 answers
/// in order, 2.0 answers as they come. Told to go away (a fault), it
/// writes GOAWAY (2.0; 1.1 has none), reads no more requests, answers
/// those it read, closes its side and lingers, dropping what still comes,
/// as the real server's connection does.
async fn serve(end: End, mut service: KvService, world: Arc<World>) {
    let link = end.link.clone();
    let mut framed = Framed::new(end, ServerCodec::new());
    let mut in_order = FuturesOrdered::new();
    let mut any_order = FuturesUnordered::new();
    let mut going_away = false;
    loop {
        if going_away && in_order.is_empty() && any_order.is_empty() {
            break;
        }
        let response = tokio::select! {
            biased;
            () = link.goaway.notified(), if !going_away => {
                going_away = true;
                let unread: usize = link.to_server.lock().unwrap().chunks.iter().map(|(_, c)| c.len()).sum();
                world.log(format!(
                    "link {}: server says GOAWAY, {} read and unanswered, {} bytes{} never read",
                    link.id,
                    in_order.len() + any_order.len(),
                    unread + framed.read_buffer().len(),
                    if framed.read_buffer().is_empty() { "" } else { " (some decoded)" },
                ));
                Response::goaway("simulated")
            }
            Some(Ok(response)) = in_order.next(), if !in_order.is_empty() => response,
            Some(Ok(response)) = any_order.next(), if !any_order.is_empty() => response,
            incoming = framed.next(), if !going_away => {
                let mut incoming = match incoming {
                    Some(Ok(incoming)) => incoming,
                    _ => return,
                };
                // The server's deadlines are `std` instants, outside the
                // paused clock: cleared here (see the module docs).
                if let Incoming::Identified { deadline, .. } = &mut incoming {
                    *deadline = None;
                }
                let cancel = matches!(incoming, Incoming::Cancel { .. });
                if let Incoming::Cancel { id } = &incoming {
                    world.log(format!("link {}: CANCEL {id}", link.id));
                }
                let identified = match &incoming {
                    Incoming::Identified { .. } => true,
                    Incoming::Rejected(response) => response.id != 0,
                    _ => false,
                };
                let future = Service::<Incoming>::call(&mut service, incoming);
                if cancel {
                    // No answer of its own.
                } else if identified {
                    any_order.push(future);
                } else {
                    in_order.push_back(future);
                }
                continue;
            }
        };
        if response.status == Status::Cancelled {
            world.log(format!("link {}: {} answered CANCELLED", link.id, response.id));
        }
        if framed.send(response).await.is_err() {
            return;
        }
    }
    // Gone away: everything read is answered. Close this side, then read
    // and drop until the peer closes too (or a while passes).
    if SinkExt::<Response>::close(&mut framed).await.is_err() {
        return;
    }
    world.log(format!("link {}: server side closed after GOAWAY", link.id));
    let _ = tokio::time::timeout(LINGER, async { while let Some(Ok(_)) = framed.next().await {} }).await;
}

/// The connector the client stack's reconnect layer calls.
#[derive(Clone)]
struct Connector(Arc<World>);

impl Service<Target> for Connector {
    type Response = Framed<End, ClientCodec>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let world = self.0.clone();
        Box::pin(async move {
            // Server i listens on port 7000 + i (a literal address: resolving
            // it asks no one).
            let port = target.resolve().await?.first().map_or(0, |addr| addr.port());
            let server = usize::from(port.saturating_sub(7000));
            if server >= world.servers.len() {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            match world.connect(server) {
                Some(end) => Ok(Framed::new(end, ClientCodec::new())),
                None => {
                    world.log("connect refused");
                    Err(io::ErrorKind::ConnectionRefused.into())
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Load.

fn key_of(request: &Request) -> Bytes {
    match request {
        Request::Put { key, .. } | Request::Get { key } | Request::Delete { key } => key.clone(),
        _ => Bytes::new(),
    }
}

fn describe(request: &Request) -> String {
    let key = String::from_utf8_lossy(&key_of(request)).into_owned();
    match request {
        Request::Put { value, .. } => format!("PUT {key}={}", String::from_utf8_lossy(value)),
        Request::Get { .. } => format!("GET {key}"),
        Request::Delete { .. } => format!("DEL {key}"),
        other => format!("{other:?}"),
    }
}

/// A random request over `keys` keys, of a value no other write has.
fn random_request(
    rng: &mut fastrand::Rng,
    prefix: &str,
    keys: usize,
    name: &str,
    n: usize,
) -> (Request, Action) {
    let key = Bytes::from(format!("{prefix}{}", rng.usize(..keys)));
    // In angle brackets: `applied_twice` finds each in the log's bytes.
    let value = Bytes::from(format!("<{name}-{n}>"));
    match rng.u32(..100) {
        0..45 => (
            Request::Put {
                key,
                value: value.clone(),
            },
            Action::Put(value),
        ),
        45..85 => (Request::Get { key }, Action::Get),
        _ => (Request::Delete { key }, Action::Delete),
    }
}

/// What an answer says, if it is one the checker takes.
fn answer_of(action: &Action, response: &Response) -> Option<Answer> {
    Some(match (action, response.status) {
        (Action::Put(_), Status::Ok) => Answer::Written,
        (Action::Get, Status::Ok) => Answer::Value(Some(response.value.clone())),
        (Action::Get, Status::NotFound) => Answer::Value(None),
        (Action::Delete, Status::Ok) => Answer::Deleted(true),
        (Action::Delete, Status::NotFound) => Answer::Deleted(false),
        _ => return None,
    })
}

/// What became of one operation.
enum Outcome {
    Answered(Answer),
    /// It may or may not have taken effect.
    Unknown,
    /// It certainly did not: not sent, or refused.
    NotApplied,
}

fn outcome(world: &World, action: &Action, result: Result<Response, KvError>) -> Outcome {
    match result {
        Ok(response) => match answer_of(action, &response) {
            Some(answer) => Outcome::Answered(answer),
            None => match response.status {
                Status::Busy | Status::Storage | Status::Cancelled | Status::DeadlineExceeded => {
                    Outcome::NotApplied
                }
                // This send was not applied, but an earlier one of the
                // same write may have been: in doubt.
                Status::SessionExpired => Outcome::Unknown,
                _ => {
                    world.violation(format!("{action:?} answered {response:?}"));
                    Outcome::Unknown
                }
            },
        },
        Err(KvError::Server {
            status: Status::Storage,
            ..
        }) => Outcome::NotApplied,
        Err(KvError::Busy { .. }) => Outcome::NotApplied,
        // The server forgot the session: this send was not applied, an
        // earlier one may have been (`KvError::SessionExpired`).
        Err(KvError::SessionExpired { .. }) => Outcome::Unknown,
        Err(KvError::Disconnected(_)) => {
            if let Action::Put(value) = action {
                world.not_sent.lock().unwrap().push(value.clone());
            }
            Outcome::NotApplied
        }
        Err(KvError::Connection(_) | KvError::Protocol(_) | KvError::TimedOut) => Outcome::Unknown,
        Err(other) => {
            world.violation(format!("{action:?} failed with an untyped error: {other}"));
            Outcome::Unknown
        }
    }
}

fn record(
    world: &World,
    session: Option<u64>,
    request: &Request,
    action: Action,
    sent: u64,
    outcome: Outcome,
) {
    let answer = match outcome {
        Outcome::Answered(answer) => Some((world.tick(), answer)),
        Outcome::Unknown => None,
        Outcome::NotApplied => return,
    };
    world.record(Op {
        session,
        key: key_of(request),
        action,
        sent,
        answer,
    });
}

/// The seeded shape of one run.
#[derive(Debug, Clone, Copy)]
struct Shape {
    keys: usize,
    client_tasks: usize,
    /// Of the client tasks, how many use the 1.1 pipelined stack.
    pipelined_tasks: usize,
    ops_per_task: usize,
    raw_connections: usize,
    raw_rounds: usize,
    raw_v2: bool,
    max_retries: u32,
    max_connect_attempts: u32,
    retry_delay: Duration,
    connect_delay: Duration,
    faults: usize,
}

impl Shape {
    fn of(rng: &mut fastrand::Rng) -> Shape {
        Shape {
            keys: rng.usize(3..=6),
            client_tasks: rng.usize(2..=8),
            pipelined_tasks: rng.usize(0..=2),
            ops_per_task: rng.usize(20..=60),
            raw_connections: rng.usize(1..=4),
            raw_rounds: rng.usize(10..=30),
            raw_v2: rng.bool(),
            max_retries: rng.u32(1..=4),
            max_connect_attempts: rng.u32(1..=3),
            retry_delay: Duration::from_millis(rng.u64(5..=100)),
            connect_delay: Duration::from_millis(rng.u64(5..=200)),
            faults: rng.usize(4..=20),
        }
    }
}

type Client = KvClient<
    wirestack::builder::Stack<
        wirestack::session::Session<
            wirestack::deadline::Deadline<
                wirestack::retry::Retry<
                    wirestack::reconnect::Reconnect<multiplex::Multiplex<Stamped<Request>, Response>>,
                >,
            >,
        >,
    >,
>;

/// The stack `KvClient::connect` builds, over the simulator's connector,
/// with seeded retry and reconnect settings (base = cap: no jitter).
fn client(world: &Arc<World>, shape: &Shape, deadline: Duration) -> Client {
    let session = ClientSession::with_id(world.rng(|rng| std::array::from_fn(|_| rng.u8(..))));
    let (retry, reconnect) = settings(shape);
    let stack = ClientBuilder::new(ClientCodec::new())
        .connector(Connector(world.clone()))
        .on_connect(Hello::new().with_session(session.clone()))
        .multiplex(multiplex::Builder::new().keepalive(Keepalive::default()))
        .timeout(deadline)
        .retry(retry)
        .reconnect(reconnect)
        .connect_lazy::<Stamped<Request>>("127.0.0.1:7");
    KvClient::new(stack.layer(&SessionLayer::new(session)))
}

/// Seeded retry and reconnect settings: base = cap, so no jitter is
/// drawn; a retry budget that never refuses (it counts real seconds).
fn settings(shape: &Shape) -> (RetryConfig, ReconnectConfig) {
    let retry = RetryConfig {
        max_retries: shape.max_retries,
        backoff: Backoff::new(shape.retry_delay, shape.retry_delay),
        retry_ratio: 1_000.0,
        min_retries_per_sec: 1_000_000,
        ..RetryConfig::default()
    };
    let reconnect = ReconnectConfig {
        backoff: Backoff::new(shape.connect_delay, shape.connect_delay),
        connect_timeout: Duration::from_secs(1),
        max_attempts: Some(shape.max_connect_attempts),
    };
    (retry, reconnect)
}

type PipelinedClient = KvClient<
    wirestack::builder::Stack<
        wirestack::deadline::Deadline<
            wirestack::retry::Retry<
                wirestack::reconnect::Reconnect<wirestack::pipeline::Pipeline<Request, Response>>,
            >,
        >,
    >,
>;

/// `ClientBuilder`'s default stack (1.1, a `Pipeline`, no session) over
/// the simulator's connector, with the same seeded settings.
fn pipelined_client(world: &Arc<World>, shape: &Shape, deadline: Duration) -> PipelinedClient {
    let (retry, reconnect) = settings(shape);
    let stack = ClientBuilder::new(ClientCodec::new())
        .connector(Connector(world.clone()))
        .timeout(deadline)
        .retry(retry)
        .reconnect(reconnect)
        .connect_lazy::<Request>("127.0.0.1:7");
    KvClient::new(stack)
}

/// `ClientBuilder::route` over `servers` servers (ports 7000 + i) through
/// the simulator's connector: a `Router` over one 2.0 stack per server,
/// no session (`KvClient::sharded`'s stack), probes without jitter.
macro_rules! router {
    ($world:expr, $shape:expr, $servers:expr) => {{
        let (retry, reconnect) = settings(&$shape);
        let health = HealthConfig {
            probe_backoff: Backoff::new($shape.connect_delay, $shape.connect_delay),
            ..HealthConfig::default()
        };
        let addrs: Vec<std::net::SocketAddr> = (0..$servers)
            .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)))
            .collect();
        let router = ClientBuilder::new(ClientCodec::new())
            .connector(Connector($world.clone()))
            .on_connect(Hello::new())
            .multiplex(multiplex::Builder::new().keepalive(Keepalive::default()))
            .timeout(DEADLINE)
            .retry(retry)
            .reconnect(reconnect)
            .health(health)
            .route::<Request, _>(addrs)
            .expect("distinct endpoints");
        KvClient::new(router)
    }};
}

/// After the faults: every routed key read once through a fresh router.
async fn routed_final_reads(world: Arc<World>, shape: Shape, servers: usize) {
    let client = router!(world, shape, servers);
    for k in 0..shape.keys {
        let request = Request::Get {
            key: Bytes::from(format!("rk{k}")),
        };
        let sent = world.tick();
        let result = client.call(request.clone()).await;
        world.log(format!(
            "final {} got {:?}",
            describe(&request),
            result.as_ref().map(said_of)
        ));
        match outcome(&world, &Action::Get, result) {
            Outcome::Answered(answer) => world.record(Op {
                session: None,
                key: key_of(&request),
                action: Action::Get,
                sent,
                answer: Some((world.tick(), answer)),
            }),
            _ => world.violation(format!("final read of {:?} not answered", key_of(&request))),
        }
    }
}

/// A task of calls and batches through its own client.
async fn client_task<S, E>(
    world: Arc<World>,
    client: KvClient<S>,
    shape: Shape,
    task: usize,
    seed: u64,
    prefix: &'static str,
    deadline: Duration,
) where
    S: Service<Request, Response = Response>
        + Service<Batch<Request>, Response = BatchResponse<Response, E>>
        + Clone,
    <S as Service<Request>>::Error: Into<BoxError>,
    <S as Service<Batch<Request>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let mut rng = fastrand::Rng::with_seed(seed);
    let name = format!("c{task}");
    let mut n = 0;
    while n < shape.ops_per_task {
        let size = if rng.u32(..100) < 40 { rng.usize(2..=5) } else { 1 };
        let ops: Vec<(Request, Action)> = (0..size)
            .map(|i| random_request(&mut rng, prefix, shape.keys, &name, n + i))
            .collect();
        n += size;
        let what: Vec<String> = ops.iter().map(|(request, _)| describe(request)).collect();
        world.log(format!("{name} sends {}", what.join(", ")));
        let sent = world.tick();
        let started = Instant::now();
        let results: Vec<Result<Response, KvError>> = if size == 1 {
            vec![client.call(ops[0].0.clone()).await]
        } else {
            let batch: Batch<Request> = ops.iter().map(|(request, _)| request.clone()).collect();
            match ServiceExt::<Batch<Request>>::oneshot(client.service().clone(), batch).await {
                Ok(answers) => answers
                    .into_iter()
                    .map(|answer| answer.map_err(|e| KvError::from_service(e.into())))
                    .collect(),
                Err(error) => {
                    let shared = KvError::from_service(error.into());
                    let text = shared.to_string();
                    ops.iter().map(|_| Err(same_kind(&shared, &text))).collect()
                }
            }
        };
        let took = started.elapsed();
        if took > deadline {
            world.violation(format!(
                "{name}: {} took {took:?}, past its deadline",
                what.join(", ")
            ));
        }
        let said: Vec<String> = results
            .iter()
            .map(|result| match result {
                Ok(response) => said_of(response),
                Err(error) => format!("error {}", kind(error)),
            })
            .collect();
        world.log(format!("{name} got {} after {took:?}", said.join(", ")));
        if results.len() != ops.len() {
            world.violation(format!(
                "{name}: {} answers to a batch of {}",
                results.len(),
                ops.len()
            ));
            continue;
        }
        for ((request, action), result) in ops.into_iter().zip(results) {
            let outcome = outcome(&world, &action, result);
            record(&world, None, &request, action, sent, outcome);
        }
        let pause = Duration::from_millis(rng.u64(0..50));
        tokio::time::sleep(pause).await;
    }
}

/// A copy of a batch-wide error for each of its requests (`KvError` is
/// not `Clone`): same variant, same words.
fn same_kind(error: &KvError, text: &str) -> KvError {
    let source = || BoxError::from(text.to_owned());
    match error {
        KvError::TimedOut => KvError::TimedOut,
        KvError::Disconnected(_) => KvError::Disconnected(source()),
        KvError::Protocol(_) => KvError::Protocol(source()),
        KvError::Connection(_) => KvError::Connection(source()),
        _ => KvError::Other(source()),
    }
}

/// An answer in the trace: the status, and a value if it is one.
fn said_of(response: &Response) -> String {
    match response.status {
        Status::Ok if !response.value.is_empty() => format!("{}", String::from_utf8_lossy(&response.value)),
        status => format!("{status:?}"),
    }
}

fn kind(error: &KvError) -> &'static str {
    match error {
        KvError::TimedOut => "timed out",
        KvError::Disconnected(_) => "not sent",
        KvError::Connection(_) => "connection lost",
        KvError::Protocol(_) => "protocol",
        KvError::Server { .. } => "server",
        KvError::Busy { .. } => "busy",
        KvError::SessionExpired { .. } => "session expired",
        _ => "other",
    }
}

/// One raw connection after another: each writes rounds of pipelined
/// requests straight through the codec and reads their answers; a
/// connection that fails leaves its unanswered requests unknown, and the
/// next one is a new session.
async fn raw_task(world: Arc<World>, shape: Shape, task: usize, seed: u64, final_reads: bool) {
    // Raw connections go to server 0, on keys of their own: a routed
    // client's keys ("rk…") live on whichever server they are placed on.
    let prefix = "k";
    let mut rng = fastrand::Rng::with_seed(seed);
    // Which requests a 2.0 connection cancels right after writing them:
    // a generator of its own, so the load stays what it was.
    let mut cancels = fastrand::Rng::with_seed(seed ^ 0xca9c_e15e_0000_0001);
    let mut framed: Option<Framed<End, ClientCodec>> = None;
    let mut session = 0u64;
    let rounds = if final_reads { 1 } else { shape.raw_rounds };
    let mut round = 0;
    let mut attempts = 0;
    while round < rounds {
        if framed.is_none() {
            attempts += 1;
            if attempts > 2_000 {
                world.violation(format!("r{task}: no connection in 2,000 attempts"));
                return;
            }
            let Some(end) = world.connect(0) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            session += 1;
            let id = end.link.id;
            let mut fresh = Framed::new(end, ClientCodec::new());
            if shape.raw_v2 {
                match tokio::time::timeout(RAW_WAIT, Hello::new().handshake(fresh)).await {
                    Ok(Ok(done)) => fresh = done,
                    _ => {
                        world.log(format!("r{task}: HELLO failed on link {id}"));
                        continue;
                    }
                }
            }
            framed = Some(fresh);
        }
        let Some(connection) = framed.as_mut() else {
            continue;
        };
        round += 1;
        let name = format!("r{task}.{session}");
        let ops: Vec<(Request, Action)> = if final_reads {
            (0..shape.keys)
                .map(|k| {
                    (
                        Request::Get {
                            key: Bytes::from(format!("k{k}")),
                        },
                        Action::Get,
                    )
                })
                .collect()
        } else {
            let depth = rng.usize(1..=6);
            (0..depth)
                .map(|i| random_request(&mut rng, prefix, shape.keys, &name, round * 10 + i))
                .collect()
        };
        let what: Vec<String> = ops.iter().map(|(request, _)| describe(request)).collect();
        world.log(format!("{name} writes {}", what.join(", ")));
        let sent: Vec<u64> = ops.iter().map(|_| world.tick()).collect();
        let mut answers: Vec<Option<(u64, Response)>> = ops.iter().map(|_| None).collect();
        let mut ok = true;
        // The server said GOAWAY: what it does not answer before it closes
        // it never read.
        let (mut gone_away, mut closed_clean) = (false, false);
        for (place, (request, _)) in ops.iter().enumerate() {
            let written = if shape.raw_v2 {
                let tag = u32::try_from(place + 1).unwrap();
                let outgoing = Outgoing::Request {
                    tag,
                    budget: None,
                    request: request.clone(),
                };
                connection.feed(outgoing).await
            } else {
                connection.feed(request.clone()).await
            };
            ok &= written.is_ok();
        }
        // A CANCEL right behind some of them: answered CANCELLED, one
        // never applied (and so never read); answered otherwise, it ran.
        let cancelled: Vec<bool> = ops
            .iter()
            .map(|_| shape.raw_v2 && !final_reads && cancels.u32(..4) == 0)
            .collect();
        let tags: Vec<u32> = (1u32..)
            .zip(&cancelled)
            .filter(|(_, c)| **c)
            .map(|(tag, _)| tag)
            .collect();
        if !tags.is_empty() {
            world.log(format!("{name} cancels tags {tags:?}"));
        }
        for tag in tags {
            ok &= connection.feed(Outgoing::<Request>::Cancel(tag)).await.is_ok();
        }
        ok &= SinkExt::<Request>::flush(connection).await.is_ok();
        let deadline = Instant::now() + RAW_WAIT;
        while ok && answers.iter().any(Option::is_none) {
            match tokio::time::timeout_at(deadline, connection.next()).await {
                Ok(Some(Ok(response))) if response.status == Status::GoAway && response.id == 0 => {
                    world.log(format!("{name}: GOAWAY"));
                    gone_away = true;
                }
                Ok(None) if gone_away => {
                    world.log(format!("{name}: closed after GOAWAY"));
                    closed_clean = true;
                    ok = false;
                }
                Ok(Some(Ok(response))) => {
                    let place = if shape.raw_v2 {
                        (response.id as usize).wrapping_sub(1)
                    } else {
                        answers.iter().position(Option::is_none).unwrap_or(usize::MAX)
                    };
                    match answers.get_mut(place) {
                        Some(slot @ None) => *slot = Some((world.tick(), response)),
                        _ => {
                            world.violation(format!("{name}: an answer to nothing: {response:?}"));
                            ok = false;
                        }
                    }
                }
                _ => ok = false,
            }
        }
        let said: Vec<String> = answers
            .iter()
            .map(|answer| match answer {
                Some((_, response)) => said_of(response),
                None => "nothing".into(),
            })
            .collect();
        world.log(format!("{name} read {}", said.join(", ")));
        for ((((request, action), sent), answer), cancelled) in
            ops.into_iter().zip(sent).zip(answers).zip(cancelled)
        {
            let answer = match answer {
                Some((at, response)) => match answer_of(&action, &response) {
                    Some(answer) => Some((at, answer)),
                    None if cancelled && response.status == Status::Cancelled => {
                        if let Action::Put(value) = &action {
                            world.not_sent.lock().unwrap().push(value.clone());
                        }
                        continue;
                    }
                    // STORAGE: the log refused it; nothing applied.
                    None if matches!(response.status, Status::Storage | Status::Busy) => continue,
                    None => {
                        world.violation(format!("{name}: {action:?} answered {response:?}"));
                        continue;
                    }
                },
                // Never read (a clean close after GOAWAY): never applied,
                // and so never seen by anyone.
                None if closed_clean => {
                    if let Action::Put(value) = &action {
                        world.not_sent.lock().unwrap().push(value.clone());
                    }
                    if final_reads {
                        world.violation(format!("final read of {:?} not answered", key_of(&request)));
                    }
                    continue;
                }
                None => None,
            };
            if final_reads && answer.is_none() {
                world.violation(format!("final read of {:?} not answered", key_of(&request)));
            }
            world.record(Op {
                session: Some(1_000_000 + (task as u64) * 1_000 + session),
                key: key_of(&request),
                action,
                sent,
                answer,
            });
        }
        if !ok {
            framed = None;
            if final_reads {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..30))).await;
    }
}

// ---------------------------------------------------------------------------
// The faults and the log writer.

/// Steps the log's writer at seeded instants, retries a failed log, and
/// crashes the server when a torn write was armed.
async fn writer_task(world: Arc<World>, i: usize, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        let slow = *world.slow_disk.lock().unwrap() > Instant::now();
        let pause = if slow {
            rng.u64(20_000..300_000)
        } else {
            rng.u64(0..3_000)
        };
        tokio::time::sleep(Duration::from_micros(pause)).await;
        let (taken, crashed, retried) = {
            let mut server = world.servers[i].lock().unwrap();
            let Some(up) = server.up.as_mut() else {
                drop(server);
                continue;
            };
            let taken = up.writer.step();
            let crashed = up.disk.lock().unwrap().crashed;
            let retried =
                (up.writer.is_failed() && !crashed && rng.u32(..20) == 0).then(|| up.writer.retry());
            (taken, crashed, retried)
        };
        if let Some(healthy) = retried {
            world.log(format!(
                "log retry: {}",
                if healthy { "takes writes" } else { "still failing" }
            ));
        }
        if taken > 0 && crashed {
            world.crash(i, "a write torn");
            let down = Duration::from_millis(rng.u64(0..3_000));
            tokio::time::sleep(down).await;
            if !world.start_server(i) {
                return;
            }
        }
    }
}

/// The fault schedule.
async fn fault_task(world: Arc<World>, shape: Shape, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..shape.faults {
        tokio::time::sleep(Duration::from_millis(rng.u64(10..300))).await;
        let links: Vec<Arc<Link>> = world
            .links
            .lock()
            .unwrap()
            .iter()
            .filter(|link| link.fault().is_none())
            .cloned()
            .collect();
        let link = (!links.is_empty()).then(|| links[rng.usize(..links.len())].clone());
        match (rng.u32(..100), link) {
            (0..20, Some(link)) => {
                let heal = Duration::from_millis(rng.u64(50..3_000));
                world.log(format!("FAULT partition link {} for {heal:?}", link.id));
                link.set_fault(Some(Fault::Partitioned));
                let world = world.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(heal).await;
                    if link.fault() == Some(Fault::Partitioned) {
                        world.log(format!("link {} heals", link.id));
                        link.set_fault(None);
                    }
                });
            }
            (20..35, Some(link)) => {
                world.log(format!("FAULT reset link {}", link.id));
                link.set_fault(Some(Fault::Reset));
            }
            (35..45, Some(link)) => {
                world.log(format!("FAULT half-open link {}", link.id));
                link.set_fault(Some(Fault::HalfOpen));
            }
            (45..55, Some(link)) => {
                let latency = Duration::from_millis(rng.u64(100..800));
                world.log(format!("FAULT throttle link {} to {latency:?}", link.id));
                link.state.lock().unwrap().latency = latency;
            }
            (55..70, _) => {
                let i = pick_server(&world, &mut rng);
                if rng.bool() {
                    world.crash(i, "scheduled");
                    let down = Duration::from_millis(rng.u64(0..3_000));
                    tokio::time::sleep(down).await;
                    if !world.start_server(i) {
                        return;
                    }
                } else {
                    let server = world.servers[i].lock().unwrap();
                    if let Some(up) = &server.up {
                        up.disk.lock().unwrap().crash_next_write = true;
                        drop(server);
                        world.log(format!("FAULT crash armed at server {i}'s next log write"));
                    }
                }
            }
            (95..100, _) => {
                let lasting = Duration::from_millis(rng.u64(100..3_000));
                world.log(format!("FAULT slow disk for {lasting:?}"));
                *world.slow_disk.lock().unwrap() = Instant::now() + lasting;
            }
            (85..95, _) => {
                // A blackout: every link resets, and connection attempts
                // are refused for a while.
                let lasting = Duration::from_millis(rng.u64(100..2_000));
                world.log(format!("FAULT blackout for {lasting:?}"));
                *world.refusing.lock().unwrap() = Instant::now() + lasting;
                for link in world.links.lock().unwrap().iter() {
                    if link.fault().is_none() {
                        link.set_fault(Some(Fault::Reset));
                    }
                }
            }
            (70..85, _) => {
                let i = pick_server(&world, &mut rng);
                let fsync = rng.bool();
                let lasting = Duration::from_millis(rng.u64(10..500));
                world.log(format!(
                    "FAULT server {i}'s log {} fail for {lasting:?}",
                    if fsync { "fsyncs" } else { "writes" }
                ));
                set_log_faults(&world, i, Some(fsync));
                tokio::time::sleep(lasting).await;
                set_log_faults(&world, i, None);
                world.log("log faults over");
            }
            _ => {}
        }
    }
}

/// GOAWAY faults, on a generator of their own (so the other faults draw
/// what they drew before): now and then a live connection's server side
/// is told to go away.
async fn goaway_task(world: Arc<World>, shape: Shape, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..rng.usize(0..=shape.faults / 2) {
        tokio::time::sleep(Duration::from_millis(rng.u64(10..600))).await;
        let links: Vec<Arc<Link>> = world
            .links
            .lock()
            .unwrap()
            .iter()
            .filter(|link| link.fault().is_none() && !link.to_client.lock().unwrap().closed)
            .cloned()
            .collect();
        if links.is_empty() {
            continue;
        }
        let link = &links[rng.usize(..links.len())];
        world.log(format!("FAULT goaway link {}", link.id));
        link.goaway.notify_one();
    }
}

/// Which server a fault hits: drawn only when there are two, so that a
/// one-server seed draws what it drew before routing joined.
fn pick_server(world: &World, rng: &mut fastrand::Rng) -> usize {
    match world.servers.len() {
        1 => 0,
        n => rng.usize(..n),
    }
}

fn set_log_faults(world: &World, i: usize, fsync: Option<bool>) {
    let server = world.servers[i].lock().unwrap();
    if let Some(up) = &server.up {
        let mut disk = up.disk.lock().unwrap();
        disk.fail_fsyncs = fsync == Some(true);
        disk.fail_writes = fsync == Some(false);
    }
}

// ---------------------------------------------------------------------------
// A run.

/// What one seed did.
struct Run {
    seed: u64,
    /// Values the log held at the end.
    logged: usize,
    crashes: u32,
    hash: u64,
    trace: Vec<String>,
    violations: Vec<String>,
}

impl Run {
    /// The report of a failed run: the seed, what failed and the lines of
    /// the trace about the key that failed (or the last lines).
    fn report(&self) -> String {
        let mut report = format!(
            "sim seed {} failed (replay: SIM_SEED={} cargo test --test sim replay):\n",
            self.seed, self.seed
        );
        for violation in &self.violations {
            let _ = writeln!(report, "  {violation}");
        }
        let key = self
            .violations
            .iter()
            .find_map(|v| v.split("key b\"").nth(1).and_then(|rest| rest.split('"').next()))
            .map(str::to_owned);
        let lines: Vec<&String> = match &key {
            Some(key) => self
                .trace
                .iter()
                .filter(|line| {
                    line.contains(&format!(" {key}"))
                        || line.contains("FAULT")
                        || line.contains("CRASH")
                        || line.contains(" up, ")
                })
                .collect(),
            None => self.trace.iter().rev().take(60).rev().collect(),
        };
        let _ = writeln!(report, "trace ({} of {} lines):", lines.len(), self.trace.len());
        for line in lines.iter().take(400) {
            let _ = writeln!(report, "  {line}");
        }
        report
    }
}

fn run(seed: u64) -> Run {
    #[cfg(feature = "sim-mutations")]
    mutations::from_env();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    // Routing's draws come from a generator of their own, so that a
    // one-server seed runs what it ran before routing joined.
    let mut routing = fastrand::Rng::with_seed(seed ^ 0x05ee_d25e_7e75);
    let servers = if routing.bool() { 2 } else { 1 };
    let routed_tasks = if servers == 2 { routing.usize(1..=3) } else { 0 };
    let routing_seeds: Vec<u64> = (0..16).map(|_| routing.u64(..)).collect();
    // The session table's draws come from a generator of their own too.
    let mut expiry = fastrand::Rng::with_seed(seed ^ 0x5e55_1015_e4b1_7e00);
    let sessions = if expiry.bool() {
        SessionConfig {
            max_sessions: expiry.usize(1..=4),
            lifetime: Duration::from_millis(expiry.u64(50..=1_500)),
            ..SessionConfig::default()
        }
    } else {
        SessionConfig::default()
    };
    // A third of the client tasks have a short deadline, so that calls
    // time out with their requests written and the multiplexer sends
    // CANCEL: drawn from a generator of their own as well.
    let mut short = fastrand::Rng::with_seed(seed ^ 0x0dea_d11e_5ca1_ab1e);
    let deadlines: Vec<Duration> = (0..8)
        .map(|_| {
            let d = Duration::from_millis(short.u64(5..=300));
            if short.u32(..3) == 0 {
                d
            } else {
                DEADLINE
            }
        })
        .collect();
    let dirs: Vec<tempfile::TempDir> = (0..servers).map(|_| tempfile::tempdir().unwrap()).collect();
    let world = Arc::new(World {
        rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        trace: Mutex::default(),
        start: runtime.block_on(async { Instant::now() }),
        links: Mutex::default(),
        servers: (0..servers).map(|_| Mutex::default()).collect(),
        sessions,
        dirs: dirs.iter().map(|dir| dir.path().to_path_buf()).collect(),
        violations: Mutex::default(),
        not_sent: Mutex::default(),
        history: Mutex::default(),
        refusing: Mutex::new(runtime.block_on(async { Instant::now() })),
        slow_disk: Mutex::new(runtime.block_on(async { Instant::now() })),
    });
    let shape = world.rng(Shape::of);
    let servers = world.servers.len();
    runtime.block_on(async {
        world.log(format!(
            "seed {seed}: {shape:?}, {servers} servers, {routed_tasks} routed tasks, sessions {:?}",
            world.sessions
        ));
        for i in 0..servers {
            assert!(world.start_server(i), "a fresh log opens");
        }
        let seeds: Vec<u64> = world.rng(|rng| (0..64).map(|_| rng.u64(..)).collect());
        let mut writers = vec![tokio::spawn(writer_task(world.clone(), 0, seeds[0]))];
        for (i, seed) in routing_seeds.iter().enumerate().take(servers).skip(1) {
            writers.push(tokio::spawn(writer_task(world.clone(), i, *seed)));
        }
        let faults = tokio::spawn(fault_task(world.clone(), shape, seeds[1]));
        let goaways = tokio::spawn(goaway_task(world.clone(), shape, seeds[50]));
        let mut load = Vec::new();
        for task in 0..shape.client_tasks {
            let seed = seeds[2 + task];
            let deadline = deadlines[task];
            // One client per task: see the module docs (tokio's watch).
            let task = if task < shape.pipelined_tasks {
                tokio::spawn(client_task(
                    world.clone(),
                    pipelined_client(&world, &shape, deadline),
                    shape,
                    task,
                    seed,
                    "k",
                    deadline,
                ))
            } else {
                tokio::spawn(client_task(
                    world.clone(),
                    client(&world, &shape, deadline),
                    shape,
                    task,
                    seed,
                    "k",
                    deadline,
                ))
            };
            load.push(task);
        }
        for j in 0..routed_tasks {
            let task = shape.client_tasks + j;
            let client = router!(world, shape, servers);
            let seed = routing_seeds[8 + j];
            load.push(tokio::spawn(client_task(
                world.clone(),
                client,
                shape,
                task,
                seed,
                "rk",
                DEADLINE,
            )));
        }
        for task in 0..shape.raw_connections {
            load.push(tokio::spawn(raw_task(
                world.clone(),
                shape,
                task,
                seeds[20 + task],
                false,
            )));
        }
        for task in load {
            task.await.unwrap();
        }
        for task in [faults, goaways] {
            task.abort();
            let _ = task.await;
        }
        // Quiet: heal, restart, then read every key on a fresh connection.
        for link in world.links.lock().unwrap().iter() {
            if link.fault() == Some(Fault::Partitioned) {
                link.set_fault(None);
            }
        }
        for i in 0..servers {
            set_log_faults(&world, i, None);
            if let Some(up) = &world.servers[i].lock().unwrap().up {
                up.disk.lock().unwrap().crash_next_write = false;
            }
        }
        *world.slow_disk.lock().unwrap() = Instant::now();
        *world.refusing.lock().unwrap() = Instant::now();
        world.log("quiet: faults over");
        // Let what is still in flight land (a deadline and then some).
        tokio::time::sleep(2 * DEADLINE).await;
        for i in 0..servers {
            let down = world.servers[i].lock().unwrap().up.is_none();
            if down && world.violations.lock().unwrap().is_empty() {
                world.start_server(i);
            }
        }
        if world.violations.lock().unwrap().is_empty() {
            let last = Shape {
                raw_v2: false,
                ..shape
            };
            raw_task(world.clone(), last, 99, seeds[40], true).await;
            if routed_tasks > 0 {
                routed_final_reads(world.clone(), shape, servers).await;
            }
        }
        for writer in writers {
            writer.abort();
            let _ = writer.await;
        }
    });
    let history = world.history.lock().unwrap().clone();
    let mut logged = 0;
    for dir in &world.dirs {
        logged += logged_values(dir).len();
        for (value, times) in applied_twice(dir) {
            world.violation(format!("{value} applied {times} times (logged that often)"));
        }
    }
    let not_sent = world.not_sent.lock().unwrap().clone();
    for op in &history {
        if let Some((_, Answer::Value(Some(value)))) = &op.answer {
            if not_sent.contains(value) {
                world.violation(format!(
                    "a write that failed \"not sent\" was applied: {value:?} read on key {:?}",
                    op.key
                ));
            }
        }
    }
    if let Err(violation) = check(&history) {
        world.violation(violation.to_string());
    }
    let crashes: u32 = world
        .servers
        .iter()
        .map(|server| server.lock().unwrap().crashes)
        .sum();
    let mut trace = std::mem::take(&mut world.trace.lock().unwrap().lines);
    trace.push(format!(
        "end: {} ops, {crashes} crashes, {logged} values logged since the last",
        history.len()
    ));
    drop(runtime);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    trace.hash(&mut hasher);
    let violations = world.violations.lock().unwrap().clone();
    Run {
        seed,
        logged,
        crashes,
        hash: hasher.finish(),
        trace,
        violations,
    }
}

/// The values the log holds more than once. Every value is written by
/// one PUT only, so a value logged twice was applied twice: what sessions
/// promise never happens (and a write without a session is never sent
/// again). Every write applied since the last crash is in the log files
/// (compaction is off); a write cut off by a failure or a crash is not.
fn applied_twice(dir: &std::path::Path) -> Vec<(String, usize)> {
    logged_values(dir)
        .into_iter()
        .filter(|(_, times)| *times > 1)
        .collect()
}

/// Each value the log files hold, with how often.
fn logged_values(dir: &std::path::Path) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<Vec<u8>, usize>::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("wal-"))
        })
        .collect();
    logs.sort();
    for log in logs {
        let bytes = std::fs::read(&log).unwrap();
        for (end, _) in bytes.iter().enumerate().filter(|(_, &byte)| byte == b'>') {
            let window = &bytes[end.saturating_sub(40)..end];
            if let Some(start) = window.iter().rposition(|&byte| byte == b'<') {
                let token = &window[start..];
                let plausible = token.len() > 3
                    && token[1..]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(b));
                if plausible {
                    *counts.entry(token.to_vec()).or_default() += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .map(|(token, times)| (format!("{}>", String::from_utf8_lossy(&token)), times))
        .collect()
}

/// Runs `seeds`; the failed runs and the crashes.
fn run_all(seeds: impl IntoIterator<Item = u64>) -> (Vec<Run>, u32) {
    let (mut failed, mut crashes) = (Vec::new(), 0);
    for seed in seeds {
        let run = run(seed);
        crashes += run.crashes;
        if !run.violations.is_empty() {
            failed.push(run);
        }
    }
    (failed, crashes)
}

fn assert_all_pass(seeds: impl IntoIterator<Item = u64>) {
    let (failed, _) = run_all(seeds);
    if let Some(first) = failed.first() {
        let seeds: Vec<u64> = failed.iter().map(|run| run.seed).collect();
        panic!("{} seeds failed: {seeds:?}\n{}", failed.len(), first.report());
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|value| value.parse().ok())
}

// ---------------------------------------------------------------------------
// Tests.

/// The fixed seeds `cargo test` runs.
#[test]
fn fixed_seeds_pass() {
    // 9000127 found a forgotten session's resent seq 1 applied twice.
    assert_all_pass((0..48).chain([9_000_127]));
}

/// The check that nothing is applied twice reads what the log holds.
#[test]
fn a_value_logged_twice_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let log = b"\x07\x00<c1-2>\x01k0<c1-3>\x00<r0.1-12>\xffk0<c1-2>\x03";
    std::fs::write(dir.path().join("wal-00000000000000000000"), log).unwrap();
    std::fs::write(dir.path().join("snapshot-x"), b"<c1-3>").unwrap();
    assert_eq!(logged_values(dir.path()).len(), 3);
    assert_eq!(applied_twice(dir.path()), vec![("<c1-2>".to_owned(), 2)]);
    // And a run's log holds its writes.
    let run = run(3);
    assert!(run.logged > 10, "{} values logged\n{}", run.logged, run.report());
}

/// A seed run twice gives the same trace, hash for hash.
#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [7, 11, 23, 734, 1_000_003] {
        let (first, second) = (run(seed), run(seed));
        assert!(
            first.trace.len() > 50,
            "a run does something: {} lines",
            first.trace.len()
        );
        if first.hash != second.hash {
            let diverged = first
                .trace
                .iter()
                .zip(&second.trace)
                .position(|(a, b)| a != b)
                .unwrap_or(first.trace.len().min(second.trace.len()));
            panic!(
                "seed {seed} diverged at line {diverged}:\n  {:?}\n  {:?}",
                first.trace.get(diverged),
                second.trace.get(diverged)
            );
        }
    }
}

/// `SIM_SEED=n` replays one seed (printing its trace hash);
/// `SIM_SEEDS=n [SIM_FIRST=s]` runs n seeds from s and reports.
#[test]
fn replay() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let run = run(seed);
        println!(
            "seed {seed}: trace hash {:016x}, {} lines",
            run.hash,
            run.trace.len()
        );
        if std::env::var_os("SIM_TRACE").is_some() {
            for line in &run.trace {
                println!("{line}");
            }
        }
        assert!(run.violations.is_empty(), "{}", run.report());
    }
    if let Some(count) = env_u64("SIM_SEEDS") {
        let first = env_u64("SIM_FIRST").unwrap_or(0);
        let started = std::time::Instant::now();
        let (failed, crashes) = run_all(first..first + count);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "sim: ran {count} seeds from {first}, {} failed, {:.1} seeds/s ({crashes} crashes)",
            failed.len(),
            count as f64 / secs
        );
        for run in &failed {
            println!("failed seed {}", run.seed);
        }
        if let Some(first) = failed.first() {
            panic!("{}", first.report());
        }
    }
}

#[cfg(feature = "sim-mutations")]
mod mutations {
    use super::*;
    use wirestack::mutations::{self, Mutation};

    /// `SIM_MUTATION=<name>` (`ReadAfterBatch`, `BatchDropsMaybeApplied`,
    /// `TornTailIsCorrupt`) switches that mutation on for every run of
    /// `replay` (and so of `scripts/sim.sh`): how often each is caught.
    pub(super) fn from_env() {
        let Ok(name) = std::env::var("SIM_MUTATION") else {
            return;
        };
        let mutation = [
            Mutation::ReadAfterBatch,
            Mutation::BatchDropsMaybeApplied,
            Mutation::TornTailIsCorrupt,
        ]
        .into_iter()
        .find(|mutation| format!("{mutation:?}") == name)
        .unwrap_or_else(|| panic!("no mutation named {name}"));
        mutations::set(Some(mutation));
    }

    /// Runs seeds from 0 with `mutation` on until one fails; how many it took.
    fn seeds_to_catch(mutation: Mutation) -> Option<u64> {
        let caught = (0..MUTATION_BOUND).find(|&seed| {
            mutations::set(Some(mutation));
            let run = run(seed);
            mutations::set(None);
            if !run.violations.is_empty() {
                println!("{mutation:?} caught by seed {seed}: {}", run.violations[0]);
            }
            !run.violations.is_empty()
        });
        caught.map(|seed| seed + 1)
    }

    fn assert_caught(mutation: Mutation) {
        match seeds_to_catch(mutation) {
            Some(seeds) => println!("{mutation:?}: caught after {seeds} seeds"),
            None => panic!("{mutation:?} not caught in {MUTATION_BOUND} seeds"),
        }
    }

    #[test]
    fn a_read_answered_after_its_batch_is_caught() {
        assert_caught(Mutation::ReadAfterBatch);
    }

    #[test]
    fn a_batch_that_drops_maybe_applied_is_caught() {
        assert_caught(Mutation::BatchDropsMaybeApplied);
    }

    #[test]
    fn a_torn_tail_taken_for_corruption_is_caught() {
        assert_caught(Mutation::TornTailIsCorrupt);
    }
}
