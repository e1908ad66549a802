//! The floor of a LiveKit meeting (BBB 4.0): every microphone its own Opus track, mixed into one
//! floor by `FloorMix` on simulated time. One element is one 20 ms period of a meeting: a packet
//! from every track present (talkers with a speech level, the others with RFC 6464 silence, as a
//! browser's unmuted but quiet microphone sends them) and one tick of the mix. Plain lines give the
//! share of one core for meetings of 0–3 talkers among 50 tracks, the cost per talker and per
//! track present; `TOLK_BENCH_TRACKS` sets the tracks present (default 50).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tolk_bench::tone_frames;
use tolk_relay::media::floor_mix::{FloorFrame, FloorMix, FloorMixSettings, TrackKey};

const PERIOD: Duration = Duration::from_millis(20);

struct Meeting {
    mix: FloorMix,
    talkers: usize,
    tracks: usize,
    voices: Vec<Vec<Arc<[u8]>>>,
    quiet: Arc<[u8]>,
    t0: Instant,
    n: u64,
    out: Vec<FloorFrame>,
}

impl Meeting {
    fn new(tracks: usize, talkers: usize) -> Option<Self> {
        let voices = [440.0, 660.0, 880.0, 550.0, 770.0]
            .iter()
            .cycle()
            .take(talkers)
            .map(|f| tone_frames(*f, 0.3, 50))
            .collect();
        Some(Self {
            mix: FloorMix::new(FloorMixSettings::default(), 0).ok()?,
            talkers,
            tracks,
            voices,
            quiet: tone_frames(440.0, 0.0, 1).pop()?,
            t0: Instant::now(),
            n: 0,
            out: Vec::new(),
        })
    }

    /// One 20 ms period of the meeting.
    fn period(&mut self) -> usize {
        let now = self.t0 + PERIOD * self.n as u32;
        let i = (self.n % 50) as usize;
        let ts = (self.n as u32).wrapping_mul(960);
        for track in 0..self.tracks {
            let (payload, level) = match self.voices.get(track) {
                Some(voice) => (&voice[i], 20),
                None => (&self.quiet, 127),
            };
            let _ = self.mix.push(TrackKey(track as u32), self.n, ts, Some(level), payload, now);
        }
        self.out.clear();
        let _ = self.mix.tick(now + Duration::from_millis(1), &mut self.out);
        self.n += 1;
        self.out.len()
    }
}

/// Time per period of a meeting, after a second of warm-up.
fn measure(tracks: usize, talkers: usize) -> Option<Duration> {
    let mut meeting = Meeting::new(tracks, talkers)?;
    let mut produced = 0;
    for _ in 0..50 {
        produced += meeting.period();
    }
    assert!(produced >= 49, "the mix produces one frame per period ({produced} of 50)");
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(meeting.period());
    }
    let stats = meeting.mix.stats();
    assert_eq!(stats.talking, meeting.talkers, "{stats:?}");
    Some(start.elapsed() / rounds)
}

fn share(period: Duration) -> f64 {
    period.as_secs_f64() / PERIOD.as_secs_f64() * 100.0
}

fn main() {
    let tracks = std::env::var("TOLK_BENCH_TRACKS").ok().and_then(|v| v.parse().ok()).unwrap_or(50usize);
    let mut per = Vec::new();
    for talkers in 0..=3 {
        let Some(period) = measure(tracks, talkers) else {
            eprintln!("floor_mix: could not build the mix");
            return;
        };
        println!(
            "floor_mix: {tracks} tracks, {talkers} talking: {period:?} per 20 ms = {:.3}% of a core",
            share(period)
        );
        per.push(period);
    }
    let Some(alone) = measure(1, 0) else { return };
    let per_track = per[0].saturating_sub(alone) / (tracks.max(2) as u32 - 1);
    let per_talker = per[3].saturating_sub(per[1]) / 2;
    println!(
        "floor_mix: per track present (quiet) {per_track:?} = {:.4}% of a core; per further talker \
         {per_talker:?} = {:.3}%; first talker (decode + encode) {:?} = {:.3}%",
        share(per_track),
        share(per_talker),
        per[1].saturating_sub(per[0]),
        share(per[1].saturating_sub(per[0]))
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("floor_mix");
    group.throughput(Throughput::Elements(1));
    for talkers in [0, 3] {
        let Some(mut meeting) = Meeting::new(tracks, talkers) else { return };
        group.bench_function(format!("{tracks}_tracks_{talkers}_talking"), |b| {
            b.iter(|| black_box(meeting.period()))
        });
    }
    group.finish();
    c.final_summary();
}
