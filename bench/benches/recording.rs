//! Recording: what one recorded channel costs (issue 16's goal: under 0.1 % of a core).
//!
//! - `track`: the writer's work for one channel without its thread — each ~80-byte Opus packet
//!   measured and placed on the time base (`Track`), the clock kept every 100 ms, a page closed
//!   and written to a real file (temp dir) every 500 ms — as CPU time per second of audio;
//! - `tap offer`: the shard's side, per packet (`Tap::offer`: the event id and payload cloned, a
//!   `try_send` into the bounded queue);
//! - the writer thread itself (`tolk-recording`) for 10 s of real time with 1, 10 and 30 channels
//!   at 50 packets/s each (spread over each 20 ms, as independent sources send), fed through a
//!   tap: its CPU from the kernel (`/proc/…/schedstat`: its wakeups, for packets and its 100 ms
//!   tick, included), and the whole process's (the feeding thread's too).
//!
//! Criterion reports the first two; the plain lines give the shares of a core.
//! `TOLK_BENCH_CHANNELS=1,10,30` and `TOLK_BENCH_SECONDS=10` set the writer runs.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use criterion::{Criterion, Throughput};
use rustix::time::ClockId;
use tolk_bench::{FRAME, FRAME_TICKS, opus_payload};
use tolk_relay::ids::EventId;
use tolk_relay::media::ChannelPacket;
use tolk_relay::media::tap::{Tap, Tapped};
use tolk_relay::recording::bench::{WriterRun, record_channel_seconds};

/// Seconds of audio per measured track run.
const TRACK_SECONDS: u32 = 3_600;
/// Packets per measured run of the tap.
const OFFERS: u32 = 1_000_000;
/// The tap's queue in the relay (~10 s of 30 channels).
const QUEUE: usize = 16_384;
/// Packets per second of one channel.
const RATE: f64 = 50.0;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let payload = opus_payload();
    let mut criterion = Criterion::default().configure_from_args();
    let mut files = 0u32;
    let mut next_file = || {
        files += 1;
        dir.path().join(format!("track-{files}.opus"))
    };
    {
        let mut group = criterion.benchmark_group("recording");
        group.throughput(Throughput::Elements(50));
        group.bench_function("track: one channel-second to a file", |b| {
            b.iter_custom(|iters| {
                let path = next_file();
                let start = Instant::now();
                let seconds = u32::try_from(iters).unwrap_or(u32::MAX);
                black_box(record_channel_seconds(&path, seconds, &payload).ok());
                let elapsed = start.elapsed();
                let _ = std::fs::remove_file(&path);
                elapsed
            });
        });
        let mut tap = TapBench::new(true)?;
        group.throughput(Throughput::Elements(1));
        group.bench_function("tap offer: one packet", |b| b.iter_custom(|iters| tap.offer(iters)));
        group.finish();
    }

    // CPU per second of audio: the thread's own CPU time over a long run, not wall time.
    let path = next_file();
    let (cpu, wall, size) = thread_cpu_of(|| record_channel_seconds(&path, TRACK_SECONDS, &payload));
    let size = size?;
    let per_second = cpu.as_secs_f64() * 1e6 / f64::from(TRACK_SECONDS);
    println!(
        "recording one channel (track + page writes to a file): {per_second:.1} µs CPU per second of audio = {:.4} % of a core \
         ({TRACK_SECONDS} s of audio, 50 packets/s of {} bytes, a page every 500 ms: {:.1} ms CPU, {:.1} ms wall, file {} bytes = {:.1} kbit/s)",
        per_second / 1e4,
        payload.len(),
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64() * 1e3,
        size,
        size as f64 * 8.0 / f64::from(TRACK_SECONDS) / 1e3,
    );
    let _ = std::fs::remove_file(&path);

    for recorded in [true, false] {
        let mut tap = TapBench::new(recorded)?;
        let offering = tap.offer(u64::from(OFFERS));
        let ns = offering.as_nanos() as f64 / f64::from(OFFERS);
        println!(
            "tap offer, {}: {ns:.1} ns per packet = {:.5} % of a core per channel at 50 packets/s",
            if recorded { "recorded channel" } else { "channel not recorded" },
            ns * RATE / 1e7,
        );
    }

    let seconds = std::env::var("TOLK_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let mut runs = Vec::new();
    for channels in channel_counts() {
        let sub = tempfile::tempdir_in(dir.path()).context("temp dir")?;
        let run = writer_run(sub.path(), channels, Duration::from_secs_f64(seconds), &payload)?;
        let share = |cpu: Duration| cpu.as_secs_f64() / seconds * 100.0;
        println!(
            "writer thread, {channels} channel(s), {seconds:.0} s at 50 packets/s each: {:.1} ms CPU = {:.4} % of a core \
             = {:.4} % per channel; whole process (the feeding thread too): {:.1} ms = {:.3} % of a core; \
             {} files, {} bytes; dropped {}, late {}",
            run.writer_cpu.as_secs_f64() * 1e3,
            share(run.writer_cpu),
            share(run.writer_cpu) / channels as f64,
            run.process_cpu.as_secs_f64() * 1e3,
            share(run.process_cpu),
            run.files,
            run.bytes,
            run.dropped,
            run.late,
        );
        runs.push((channels, share(run.writer_cpu)));
    }
    if let (Some(&(few, a)), Some(&(many, b))) = (runs.first(), runs.last())
        && many > few
    {
        let marginal = (b - a) / (many - few) as f64;
        println!(
            "writer thread, each channel more ({few} → {many}): {marginal:.4} % of a core; with none, \
             the thread's own wakeups: ~{:.4} %",
            (a - marginal * few as f64).max(0.0)
        );
    }
    criterion.final_summary();
    Ok(())
}

fn channel_counts() -> Vec<usize> {
    std::env::var("TOLK_BENCH_CHANNELS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 30])
}

/// A tap into a queue nobody reads during a measurement (emptied between them), as a shard's.
struct TapBench {
    tap: Tap,
    queue: crossbeam_channel::Receiver<Tapped>,
    packet: ChannelPacket,
}

impl TapBench {
    /// A tap of two channels; the packets go to channel 1, recorded or not.
    fn new(recorded: bool) -> anyhow::Result<Self> {
        let (tx, queue) = crossbeam_channel::bounded(QUEUE);
        let tap = Tap::new(EventId::parse("bench")?, vec![true, recorded], tx, Arc::new(AtomicU64::new(0)));
        let packet = ChannelPacket {
            seq: 0,
            ts: 0,
            marker: false,
            payload: opus_payload(),
            received_at: Instant::now(),
        };
        Ok(Self { tap, queue, packet })
    }

    /// Offer `n` packets, the queue emptied (untimed) whenever it is full; the time offering.
    fn offer(&mut self, n: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let batch = left.min(QUEUE as u64);
            let start = Instant::now();
            for _ in 0..batch {
                self.packet.seq += 1;
                self.packet.ts = self.packet.ts.wrapping_add(FRAME_TICKS);
                self.tap.offer(1, black_box(&self.packet), None);
            }
            timed += start.elapsed();
            left -= batch;
            self.queue.try_iter().for_each(drop);
        }
        timed
    }
}

/// What a run of the writer thread cost.
struct WriterCost {
    writer_cpu: Duration,
    /// The whole process (the feeding thread's offers and sleeps included).
    process_cpu: Duration,
    files: usize,
    bytes: u64,
    dropped: u64,
    late: u64,
}

/// The writer thread recording `channels` channels for `length` of real time, a packet per
/// channel every 20 ms (the channels spread over the 20 ms) offered through the tap from this
/// thread.
fn writer_run(
    dir: &std::path::Path,
    channels: usize,
    length: Duration,
    payload: &Arc<[u8]>,
) -> anyhow::Result<WriterCost> {
    let run = WriterRun::start(dir, channels).map_err(anyhow::Error::msg)?;
    let writer = thread_named("tolk-recording").context("no tolk-recording thread")?;
    let (writer_before, process_before) = (schedstat(&writer)?, cpu_clock(ClockId::ProcessCPUTime));
    let start = Instant::now();
    let mut round = 0u32;
    while start.elapsed() < length {
        let packet = ChannelPacket {
            seq: u64::from(round),
            ts: round.wrapping_mul(FRAME_TICKS),
            marker: false,
            payload: payload.clone(),
            received_at: Instant::now(),
        };
        // The channels' packets spread over the 20 ms, as sources that are not in step send them.
        for channel in 0..channels {
            let at = start + FRAME * round + FRAME * channel as u32 / channels as u32;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            run.offer(channel, &ChannelPacket { received_at: Instant::now(), ..packet.clone() });
        }
        round += 1;
        std::thread::sleep((start + FRAME * round).saturating_duration_since(Instant::now()));
    }
    let writer_cpu = schedstat(&writer)?.saturating_sub(writer_before);
    let process_cpu = cpu_clock(ClockId::ProcessCPUTime).saturating_sub(process_before);
    let (dropped, late) = run.dropped_and_late();
    let written = run.finish()?;
    Ok(WriterCost {
        writer_cpu,
        process_cpu,
        files: written.len(),
        bytes: written.iter().map(|(_, size)| size).sum(),
        dropped,
        late,
    })
}

/// Run `work` and return the CPU time this thread spent in it (its CPU clock), the wall time and
/// its result.
fn thread_cpu_of<T>(work: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let before = cpu_clock(ClockId::ThreadCPUTime);
    let start = Instant::now();
    let out = work();
    let wall = start.elapsed();
    (cpu_clock(ClockId::ThreadCPUTime).saturating_sub(before), wall, out)
}

/// A CPU clock of this thread or process.
fn cpu_clock(clock: ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Another thread's time on a CPU so far (`schedstat`'s first field, ns; exact for a thread that
/// is not running when it is read).
fn schedstat(task: &std::path::Path) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(task.join("schedstat")).context("schedstat")?;
    let ns = text.split_whitespace().next().and_then(|n| n.parse().ok()).context("schedstat's format")?;
    Ok(Duration::from_nanos(ns))
}

/// The `/proc` directory of this process's thread named `name`.
fn thread_named(name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .map(|t| t.path())
        .find(|path| std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim() == name))
}
