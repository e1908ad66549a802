//! Handover: what a booth handover costs in the router. Two interpreters (A, B) on one channel of
//! a six-channel event; each iteration hands the air from one to the other
//! (`EventRouter::set_on_air`) and routes the new voice's first packet, which starts a new input
//! on the channel's continuity line (sequence and timestamp rebased). Criterion reports
//! handovers per second; a plain `handover: …` line comes from a separate timing loop.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::bail;
use criterion::{Criterion, Throughput};
use tolk_bench::{FRAME_TICKS, opus_payload};
use tolk_relay::ids::{EventId, InterpreterId, Language};
use tolk_relay::media::router::{ChannelIndex, EventRouter, OnAir};
use tolk_relay::media::{ChannelPacket, Source, SourcePacket};

const HANDOVERS: u32 = 1_000_000;

struct Booth {
    router: EventRouter,
    channel: ChannelIndex,
    voices: [SourcePacket; 2],
    on_air: usize,
    out: Vec<(ChannelIndex, ChannelPacket)>,
}

impl Booth {
    fn new() -> anyhow::Result<Self> {
        let floor = Language::parse("en")?;
        let languages = ["fr", "de", "es", "it", "pt"]
            .iter()
            .map(|l| Language::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        let router = EventRouter::new(&floor, &languages);
        let channel = router.channel(&languages[0]).ok_or_else(|| anyhow::anyhow!("no fr channel"))?;
        let voice = |who: i64, input: u64| -> anyhow::Result<SourcePacket> {
            Ok(SourcePacket {
                event: EventId::parse("bench")?,
                source: Source::Booth(InterpreterId(who)),
                input,
                seq: 1,
                ts: 0,
                marker: false,
                payload: opus_payload(),
                received_at: Instant::now(),
            })
        };
        let mut this =
            Self { router, channel, voices: [voice(1, 1)?, voice(2, 2)?], on_air: 1, out: Vec::new() };
        // A handover gives exactly one packet on the channel, from the new voice.
        if this.handover(Instant::now()) != 1 {
            bail!("the new voice's packet did not reach its channel");
        }
        Ok(this)
    }

    /// Hand the air to the other interpreter and route its next packet.
    fn handover(&mut self, now: Instant) -> usize {
        self.on_air ^= 1;
        let Source::Booth(who) = self.voices[self.on_air].source else { return 0 };
        self.router.set_on_air(self.channel, Some(OnAir { interpreter: who, muted: false }));
        let packet = &mut self.voices[self.on_air];
        packet.seq += 1;
        packet.ts = packet.ts.wrapping_add(FRAME_TICKS);
        self.out.clear();
        self.router.route(packet, now, &mut self.out);
        self.out.len()
    }
}

fn main() -> anyhow::Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    let mut booth = Booth::new()?;
    {
        let mut group = criterion.benchmark_group("handover");
        group.throughput(Throughput::Elements(1));
        group.bench_function("switch the air and route the new voice", |b| {
            b.iter_custom(|iters| {
                let now = Instant::now();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(booth.handover(now));
                }
                start.elapsed()
            });
        });
        group.finish();
    }
    let elapsed = manual(&mut booth);
    let ns = elapsed.as_nanos() as f64 / f64::from(HANDOVERS);
    println!("handover: {ns:.1} ns per handover (switch + the new voice's first packet routed)");
    criterion.final_summary();
    Ok(())
}

fn manual(booth: &mut Booth) -> Duration {
    let now = Instant::now();
    let start = Instant::now();
    for _ in 0..HANDOVERS {
        black_box(booth.handover(now));
    }
    start.elapsed()
}
