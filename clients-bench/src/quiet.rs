//! `MODE=memcached-quiet`: does memcached's quiet mode pay off for a batch
//! of gets? The protocol alone, without any client library: batches of 64
//! `mg <key> v` written back to back on one connection, each answered, or
//! the same with `q` (misses suppressed) and an `mn` after the batch —
//! at 100 %, 50 % and 0 % hits. Reports keys/s and the bytes the client
//! read per key. This is the most quiet mode could save a client, since
//! the two differ only in what memcached writes back.

use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wirestack::memcache::MemcacheClient;

const BATCH: usize = 64;
const KEYS: usize = 1000;

/// One batch on `stream`: writes it, reads its answers; returns the bytes read.
async fn batch(stream: &mut BufReader<TcpStream>, keys: &[String], quiet: bool, out: &mut Vec<u8>) -> usize {
    out.clear();
    for (i, key) in keys.iter().enumerate() {
        let flags = if quiet { " q" } else { "" };
        out.extend_from_slice(format!("mg {key} v{flags} O{i}\r\n").as_bytes());
    }
    if quiet {
        out.extend_from_slice(b"mn\r\n");
    }
    stream.get_mut().write_all(out).await.expect("write");
    let (mut read, mut answers) = (0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        read += stream.read_until(b'\n', &mut line).await.expect("read");
        if line.starts_with(b"VA ") {
            let len: usize = std::str::from_utf8(&line[3..])
                .ok()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|len| len.parse().ok())
                .expect("a VA length");
            let mut value = vec![0; len + 2];
            stream.read_exact(&mut value).await.expect("value");
            read += len + 2;
        } else if line.starts_with(b"MN") {
            return read;
        } else {
            assert!(line.starts_with(b"EN"), "{:?}", String::from_utf8_lossy(&line));
        }
        answers += 1;
        if !quiet && answers == keys.len() {
            return read;
        }
    }
}

/// Runs the measurement against memcached at `addr` and prints its table.
pub(crate) async fn run(addr: std::net::SocketAddr, reps: usize, time: Duration) {
    let cache = MemcacheClient::connect(addr).await.expect("wirestack connects");
    cache
        .set_many((0..KEYS).map(|i| (format!("quiet:{i}"), &[b'x'; 64][..])))
        .await
        .expect("preload");
    let stream = TcpStream::connect(addr).await.expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    let mut stream = BufReader::new(stream);
    let mut out = Vec::new();
    println!("memcached on {addr}; batches of {BATCH} `mg <key> v` on one connection; median of {reps} interleaved repetitions");
    println!();
    println!("| hits | mode | keys/s | bytes read per key |");
    println!("| --- | --- | ---: | ---: |");
    for hits in [100, 50, 0] {
        // Key i is a hit for the first `hits` % of each batch.
        let keys: Vec<String> = (0..BATCH)
            .map(|i| {
                if i * 100 < hits * BATCH {
                    format!("quiet:{i}")
                } else {
                    format!("absent:{i}")
                }
            })
            .collect();
        let mut results = [(Vec::new(), 0.0), (Vec::new(), 0.0)];
        for _ in 0..reps {
            for (m, quiet) in [false, true].into_iter().enumerate() {
                let started = Instant::now();
                let (mut batches, mut bytes) = (0usize, 0usize);
                while started.elapsed() < time {
                    bytes += batch(&mut stream, &keys, quiet, &mut out).await;
                    batches += 1;
                }
                results[m]
                    .0
                    .push((batches * BATCH) as f64 / started.elapsed().as_secs_f64());
                results[m].1 = bytes as f64 / (batches * BATCH) as f64;
            }
        }
        for (m, name) in ["answered", "quiet + mn"].into_iter().enumerate() {
            let (rates, bytes) = results[m].clone();
            println!(
                "| {hits} % | {name} | {:.0} | {bytes:.1} |",
                super::median(rates).unwrap_or(f64::NAN)
            );
        }
    }
}
