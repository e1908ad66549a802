//! Fan-out: the cost per listener-packet of delivering one channel packet to N connected listener
//! peers, the relay's hot path (one Opus packet per channel per 20 ms, shared by every listener).
//!
//! For each listener: `Peer::write` (rebase onto the listener's own RTP line, queue in str0m) and
//! `Peer::drain` (str0m builds the RTP packet and SRTP-protects it into the `SendBatch`), with the
//! batch released every `FLUSH_AT` datagrams and at the end, as the shard's `deliver` does.
//! Variants:
//!
//! - `srtp`: the batch is dropped unsent (replaced by a fresh `SendBatch`): the datagrams are
//!   still allocated and freed as in the shard, only the `sendmmsg` calls are left out;
//! - `srtp+send`: the batch is flushed with `sendmmsg` from a UDP socket on 127.0.0.1 to a sink
//!   socket that nobody reads (loopback: the kernel's receive path runs inside the send, and once
//!   the sink's buffer is full it drops there, which the sender does not see).
//!
//! Peers are connected in memory during setup (see `tolk_bench::Fanout`); setup time is printed.
//! Criterion reports per listener-packet (`Throughput::Elements(N)`); a plain
//! `fanout N=…: … ns per listener-packet` line per variant comes from a separate timing loop.
//! `TOLK_BENCH_LISTENERS=10,1000` picks other listener counts (default 10,1000,10000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tolk_bench::{Fanout, Release};

const DEFAULT_LISTENERS: [usize; 3] = [10, 1_000, 10_000];
/// Listener-packets in each plain timing loop.
const MANUAL_LISTENER_PACKETS: usize = 200_000;
/// The channel the listeners are on (an interpretation channel).
const CHANNEL: usize = 1;

fn main() -> anyhow::Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in listener_counts()? {
        let fanout = Fanout::connect(n, CHANNEL, threads)?;
        let setup = fanout.setup;
        println!(
            "fanout N={n}: setup {:.2} s for {n} handshakes on {} threads ({:.0} µs each per thread), \
             then waited {:.0} ms for simulated time",
            setup.handshakes.as_secs_f64(),
            setup.threads,
            setup.handshakes.as_secs_f64() * 1e6 * setup.threads as f64 / n as f64,
            setup.waited.as_secs_f64() * 1e3,
        );
        bench(&mut criterion, fanout, n);
    }
    criterion.final_summary();
    Ok(())
}

fn bench(criterion: &mut Criterion, mut fanout: Fanout, n: usize) {
    let variants = [("srtp", Release::Discard), ("srtp+send", Release::Send)];
    {
        let mut group = criterion.benchmark_group("fanout");
        group.throughput(Throughput::Elements(n as u64));
        match n {
            0..=100 => {}
            101..=2_000 => {
                group.sample_size(20);
            }
            _ => {
                group.sample_size(10).sampling_mode(SamplingMode::Flat);
            }
        }
        for (name, release) in variants {
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(fanout.round(release));
                    }
                    start.elapsed()
                });
            });
        }
        group.finish();
    }
    for (name, release) in variants {
        let rounds = (MANUAL_LISTENER_PACKETS / n.max(1)).max(10);
        let elapsed = manual(&mut fanout, release, rounds);
        let ns = elapsed.as_nanos() as f64 / (rounds * n) as f64;
        println!("fanout N={n}: {ns:.0} ns per listener-packet ({name}, {rounds} rounds)");
    }
    let c = fanout.counters;
    println!(
        "fanout N={n}: datagrams sent {}, dropped at the sender {}, writes refused {}, peers died {}",
        c.sent, c.dropped, c.not_written, c.died
    );
}

/// `rounds` rounds after one untimed round.
fn manual(fanout: &mut Fanout, release: Release, rounds: usize) -> Duration {
    black_box(fanout.round(release));
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(fanout.round(release));
    }
    start.elapsed()
}

fn listener_counts() -> anyhow::Result<Vec<usize>> {
    match std::env::var("TOLK_BENCH_LISTENERS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse::<usize>().with_context(|| format!("TOLK_BENCH_LISTENERS: '{s}'")))
            .filter(|n| !matches!(n, Ok(0)))
            .collect(),
        Err(_) => Ok(DEFAULT_LISTENERS.to_vec()),
    }
}
