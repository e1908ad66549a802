//! Pass-through: `EventRouter::route` for an event with a floor and 5 interpretation channels and
//! nobody on air, so each floor packet is routed (rebased onto the channel's line, payload shared)
//! to all 6 channels. Criterion reports floor packets per second (`Throughput::Elements(1)`); a
//! plain `passthrough: …` line comes from a separate timing loop.
//!
//! Each iteration routes one packet (seq + 1, ts + one frame) into a reused output vector, which
//! is cleared first (dropping the previous 6 `Arc` clones), as the shard does.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use criterion::{Criterion, Throughput};
use tolk_bench::{FRAME_TICKS, opus_payload};
use tolk_relay::ids::{EventId, Language};
use tolk_relay::media::router::{ChannelIndex, EventRouter};
use tolk_relay::media::{ChannelPacket, Source, SourcePacket};

const INTERPRETATIONS: [&str; 5] = ["fr", "de", "es", "it", "pt-BR"];
/// Floor packets in the plain timing loop.
const MANUAL_PACKETS: u32 = 2_000_000;

struct Passthrough {
    router: EventRouter,
    packet: SourcePacket,
    out: Vec<(ChannelIndex, ChannelPacket)>,
}

impl Passthrough {
    fn new() -> anyhow::Result<Self> {
        let floor = Language::parse("en")?;
        let languages = INTERPRETATIONS.iter().map(|l| Language::parse(l)).collect::<Result<Vec<_>, _>>()?;
        let router = EventRouter::new(&floor, &languages);
        if router.channel_count() != 6 {
            bail!("expected 6 channels, got {}", router.channel_count());
        }
        let packet = SourcePacket {
            event: EventId::parse("bench")?,
            source: Source::Floor,
            input: 1,
            seq: 1,
            ts: 0,
            marker: false,
            payload: opus_payload(),
            received_at: Instant::now(),
        };
        let mut this = Self { router, packet, out: Vec::with_capacity(8) };
        if this.route(Instant::now()) != 6 {
            bail!("a floor packet did not reach all 6 channels");
        }
        if !this.out.iter().all(|(_, c)| Arc::ptr_eq(&c.payload, &this.packet.payload)) {
            bail!("the channels do not share the floor payload");
        }
        Ok(this)
    }

    /// Route the next floor packet; returns how many channel packets it gave.
    fn route(&mut self, now: Instant) -> usize {
        self.packet.seq += 1;
        self.packet.ts = self.packet.ts.wrapping_add(FRAME_TICKS);
        self.out.clear();
        self.router.route(&self.packet, now, &mut self.out);
        self.out.len()
    }
}

fn main() -> anyhow::Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    let mut pass = Passthrough::new()?;
    {
        let mut group = criterion.benchmark_group("passthrough");
        group.throughput(Throughput::Elements(1));
        group.bench_function("route floor to 6 channels", |b| {
            b.iter_custom(|iters| {
                let now = Instant::now();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(pass.route(now));
                }
                start.elapsed()
            });
        });
        group.finish();
    }
    let elapsed = manual(&mut pass);
    let ns = elapsed.as_nanos() as f64 / f64::from(MANUAL_PACKETS);
    println!(
        "passthrough: {ns:.1} ns per floor packet ({:.2} M floor packets/s, 6 channel packets each)",
        1e3 / ns
    );
    criterion.final_summary();
    Ok(())
}

fn manual(pass: &mut Passthrough) -> Duration {
    let now = Instant::now();
    let start = Instant::now();
    for _ in 0..MANUAL_PACKETS {
        black_box(pass.route(now));
    }
    start.elapsed()
}
