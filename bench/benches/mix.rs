//! Mix mode: the cost of one mixed-channel frame — the floor and the on-air voice each decoded
//! from its jitter buffer, mixed with the floor at -18 dB, and encoded once (Opus, complexity 5,
//! 32 kbit/s, in-band FEC) — through `Mixer::push` and `Mixer::tick` on simulated time. A plain
//! `mix: …` line gives the share of one core a mixed channel takes at 50 frames per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tolk_bench::tone_frames;
use tolk_relay::ids::{EventId, InterpreterId};
use tolk_relay::media::mixer::{MixSettings, Mixer};
use tolk_relay::media::router::OnAir;
use tolk_relay::media::{Source, SourcePacket};

const ANA: InterpreterId = InterpreterId(1);

struct Bench {
    mixer: Mixer,
    floor: Vec<std::sync::Arc<[u8]>>,
    voice: Vec<std::sync::Arc<[u8]>>,
    t0: Instant,
    n: u64,
    out: Vec<SourcePacket>,
}

impl Bench {
    fn new() -> Option<Self> {
        let event = EventId::parse("bench").ok()?;
        let mixer = Mixer::new(event, MixSettings::default(), 1 << 40).ok()?;
        Some(Self {
            mixer,
            floor: tone_frames(440.0, 0.5, 50),
            voice: tone_frames(880.0, 0.5, 50),
            t0: Instant::now(),
            n: 0,
            out: Vec::new(),
        })
    }

    /// One 20 ms period: a floor and a voice packet in, one mixed frame out.
    fn frame(&mut self) -> usize {
        let now = self.t0 + Duration::from_millis(20) * self.n as u32;
        let i = (self.n % 50) as usize;
        for (source, payload) in [(Source::Floor, &self.floor[i]), (Source::Booth(ANA), &self.voice[i])] {
            let packet = SourcePacket {
                event: EventId::parse("bench").unwrap_or_else(|_| EventId::generate()),
                source,
                input: 1,
                seq: self.n,
                ts: (self.n as u32).wrapping_mul(960),
                marker: false,
                payload: payload.clone(),
                received_at: now,
            };
            let _ = self.mixer.push(&packet, now);
        }
        self.out.clear();
        let on_air = |c| (c == 1).then_some(OnAir { interpreter: ANA, muted: false });
        let _ = self.mixer.tick(now + Duration::from_millis(1), 2, on_air, &mut self.out);
        self.n += 1;
        self.out.len()
    }
}

fn main() {
    let Some(mut bench) = Bench::new() else {
        eprintln!("mix: could not build the mixer");
        return;
    };
    // Fill the jitter buffers so every measured tick mixes a frame.
    let mut produced = 0;
    for _ in 0..100 {
        produced += bench.frame();
    }
    assert!(produced > 90, "the mixer produces one frame per tick ({produced} of 100)");
    let rounds = 3000;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(bench.frame());
    }
    let per_frame = start.elapsed() / rounds;
    let share = per_frame.as_secs_f64() * 50.0 * 100.0;
    println!(
        "mix: {per_frame:?} per mixed-channel frame (decode 2, mix, encode 1) = {share:.2}% of a core per mixed channel"
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("mix");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mixed_channel_frame", |b| b.iter(|| black_box(bench.frame())));
    group.finish();
    c.final_summary();
}
