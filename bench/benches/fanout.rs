//! Fan-out: the cost per listener-packet of delivering one channel packet to N connected listener
//! peers, the relay's hot path (one Opus packet per channel per 20 ms, shared by every listener).
//!
//! The listeners live on the relay's own shard core (`ShardCore`), joined and connected through it
//! in memory and settled, as in a relay a few seconds after they joined. One round (see
//! `tolk_bench::Fanout::round`) is one turn of a shard's loop for one source packet:
//! `ShardCore::deliver` (routing, then `Peer::write` for each listener: rebase onto the
//! listener's own RTP line, write the RTP header, protect it with Tolk's SRTP into the send batch;
//! with `TOLK_BENCH_PATH=engine`, str0m builds and protects it instead and the peer is drained),
//! `ShardCore::on_timeout` for the due timers, then the batch is released. Variants:
//!
//! - `srtp`: the batch is dropped unsent (`SendBatch::discard`, which keeps the buffers for the
//!   next datagrams as a flush does): only the `sendmmsg` calls are left out;
//! - `srtp+send`: the batch is flushed with `sendmmsg` from a UDP socket on 127.0.0.1 to a sink
//!   socket that nobody reads (loopback: the kernel's receive path runs inside the send, and once
//!   the sink's buffer is full it drops there, which the sender does not see).
//!
//! Listeners are connected in memory during setup, which is timed and printed. Criterion reports per
//! listener-packet (`Throughput::Elements(N)`); a plain `fanout N=…: … ns per listener-packet`
//! line per variant comes from a separate timing loop. Every `KEEPALIVE_ROUNDS` rounds, untimed,
//! the in-memory clients send their ICE consent checks.
//!
//! Environment: `TOLK_BENCH_LISTENERS=10,1000` picks the listener counts (default
//! 10,1000,10000); `TOLK_BENCH_CLOCK=simulated` runs rounds on a clock that advances 20 ms per
//! round instead of the wall clock (see `tolk_bench::Clock`); `TOLK_BENCH_SINK=one` sends every
//! datagram to the sink's one address instead of each listener's own 127.64.x.y (the kernel's
//! cost without thousands of distinct destinations, as this benchmark sent before it drove the
//! real shard core).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tolk_bench::{Clock, Fanout, Release, SendPath};

const DEFAULT_LISTENERS: [usize; 3] = [10, 1_000, 10_000];
/// Listener-packets in each plain timing loop.
const MANUAL_LISTENER_PACKETS: u64 = 400_000;
/// Rounds between two (untimed) ICE consent exchanges: one second of a live channel.
const KEEPALIVE_ROUNDS: u64 = 50;

fn main() -> anyhow::Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    let clock = clock()?;
    let path = send_path()?;
    let one_sink = one_sink()?;
    for n in listener_counts()? {
        let mut fanout = Fanout::connect(n, clock, path)?;
        if one_sink {
            fanout.one_destination =
                Some(std::net::SocketAddr::from(([127, 0, 0, 1], fanout.sink.local_addr()?.port())));
        }
        let setup = fanout.setup;
        println!(
            "fanout N={n}: setup {:.2} s for {n} handshakes through the shard core ({:.0} µs each), \
             {} settled, then waited {:.0} ms for simulated setup time; clock {clock:?}, send path {path:?}, \
             sink {}",
            setup.handshakes.as_secs_f64(),
            setup.handshakes.as_secs_f64() * 1e6 / n as f64,
            setup.settled,
            setup.waited.as_secs_f64() * 1e3,
            if one_sink { "one address" } else { "each listener's address" },
        );
        bench(&mut criterion, fanout, n)?;
    }
    criterion.final_summary();
    Ok(())
}

fn bench(criterion: &mut Criterion, mut fanout: Fanout, n: usize) -> anyhow::Result<()> {
    let variants = [("srtp", Release::Discard), ("srtp+send", Release::Send)];
    let mut failure = None;
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
                b.iter_custom(|iters| match timed_rounds(&mut fanout, release, iters) {
                    Ok(elapsed) => elapsed,
                    Err(e) => {
                        failure.get_or_insert(e);
                        Duration::ZERO
                    }
                });
            });
        }
        group.finish();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    for (name, release) in variants {
        let rounds = (MANUAL_LISTENER_PACKETS / n as u64).max(10);
        timed_rounds(&mut fanout, release, 1)?;
        let elapsed = timed_rounds(&mut fanout, release, rounds)?;
        let ns = elapsed.as_nanos() as f64 / (rounds * n as u64) as f64;
        println!("fanout N={n}: {ns:.0} ns per listener-packet ({name}, {rounds} rounds)");
    }
    let c = fanout.counters;
    println!(
        "fanout N={n}: {} rounds, {:.3} datagrams per listener-packet, {} sent, {} dropped at the \
         sender, {} writes refused, {} sessions ended; {} timer entries at the end",
        c.rounds,
        c.datagrams as f64 / (c.rounds * n as u64) as f64,
        c.sent,
        c.dropped,
        c.not_written,
        c.died,
        fanout.timer_entries(),
    );
    if c.not_written + c.died > 0 {
        bail!("some listeners stopped taking packets: the figures above are not valid");
    }
    Ok(())
}

/// `rounds` rounds; only the rounds are timed, not the consent exchanges between them.
fn timed_rounds(fanout: &mut Fanout, release: Release, rounds: u64) -> anyhow::Result<Duration> {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < rounds {
        fanout.keepalive()?;
        let chunk = (rounds - done).min(KEEPALIVE_ROUNDS);
        let start = Instant::now();
        for _ in 0..chunk {
            black_box(fanout.round(release));
        }
        elapsed += start.elapsed();
        done += chunk;
    }
    Ok(elapsed)
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

fn send_path() -> anyhow::Result<SendPath> {
    match std::env::var("TOLK_BENCH_PATH").as_deref() {
        Err(_) | Ok("direct") => Ok(SendPath::Direct),
        Ok("engine") => Ok(SendPath::Engine),
        Ok(other) => bail!("TOLK_BENCH_PATH: '{other}' is neither 'direct' nor 'engine'"),
    }
}

fn one_sink() -> anyhow::Result<bool> {
    match std::env::var("TOLK_BENCH_SINK").as_deref() {
        Err(_) | Ok("each") => Ok(false),
        Ok("one") => Ok(true),
        Ok(other) => bail!("TOLK_BENCH_SINK: '{other}' is neither 'each' nor 'one'"),
    }
}

fn clock() -> anyhow::Result<Clock> {
    match std::env::var("TOLK_BENCH_CLOCK").as_deref() {
        Err(_) | Ok("wall") => Ok(Clock::Wall),
        Ok("simulated") => Ok(Clock::Simulated),
        Ok(other) => bail!("TOLK_BENCH_CLOCK: '{other}' is neither 'wall' nor 'simulated'"),
    }
}
