//! A floor made of many microphones: a BBB 4.0 meeting's LiveKit room carries every microphone as
//! its own Opus track and no mix, so Tolk mixes them into one floor.
//!
//! Every 20 ms the mix takes one frame from each track that carries sound, adds them, passes the
//! sum through a limiter and encodes it once. A track's packets are decoded only while it carries
//! sound: a packet whose RFC 6464 audio level is below [`AUDIBLE_DBOV`] is dropped undecoded,
//! unless the track was audible in the last [`HANGOVER`] (so the ends of words and short pauses
//! are kept); a track without levels is always decoded. With nobody talking the floor carries
//! encoded silence, never a gap. When someone starts talking in a silent floor, the frames take
//! their phase from that voice (5 ms after its packet), so the start of speech does not wait for
//! the old phase. No sockets and no clock: packets and `now` come in as arguments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::mixer::encoder;
use crate::media::playout::{FRAME, Playout};
use crate::media::silence::opus_silence;

/// One 20 ms frame.
const TICK: Duration = Duration::from_millis(20);
/// RTP timestamp ticks per frame (48 kHz).
const FRAME_TICKS: u32 = FRAME as u32;
/// The quietest level, in -dBov (RFC 6464: 0 is loudest, 127 silence), counted as sound.
pub const AUDIBLE_DBOV: u8 = 60;
/// How long a track stays decoded after its last audible packet.
pub const HANGOVER: Duration = Duration::from_millis(400);
/// The limiter's ceiling (about -0.9 dBFS).
const CEILING: f32 = 0.9;
/// The limiter's release per frame: +0.5 dB (25 dB/s).
const RELEASE: f32 = 1.059_254;
/// Samples over which a gain change is ramped (1 ms).
const RAMP: usize = 48;
/// When someone starts talking in a silent floor, the next frame is mixed this long after their
/// first packet (the frames' phase follows them): room for a few milliseconds of jitter, instead
/// of waiting up to a whole frame for the next tick.
const ONSET_MARGIN: Duration = Duration::from_millis(5);

/// A track of the floor, numbered by the caller (one per received media section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u32);

/// How the floor is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorMixSettings {
    /// Opus bitrate, bits per second.
    pub bitrate: i32,
    /// Opus complexity 0–10.
    pub complexity: i32,
}

impl Default for FloorMixSettings {
    fn default() -> Self {
        Self { bitrate: 40_000, complexity: 5 }
    }
}

/// One frame of the floor, ready to be sent as RTP (payload type and SSRC are the sender's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorFrame {
    pub seq: u16,
    pub ts: u32,
    pub payload: Arc<[u8]>,
}

/// What the mix has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloorMixStats {
    /// Tracks present.
    pub tracks: usize,
    /// Tracks that gave a frame to the last mix.
    pub talking: usize,
    /// Packets taken for decoding.
    pub packets_kept: u64,
    /// Packets dropped undecoded (no sound on a quiet track).
    pub packets_skipped: u64,
    /// Frames decoded (or concealed) across all tracks.
    pub frames_decoded: u64,
    /// Frames sent that carried a mix.
    pub frames_mixed: u64,
    /// Frames sent as silence (nobody talking).
    pub frames_silent: u64,
    /// Frames in which the limiter lowered the gain.
    pub frames_limited: u64,
}

struct Track {
    playout: Playout,
    /// When the track last sent an audible packet.
    audible_at: Option<Instant>,
}

/// The mix of one floor.
pub struct FloorMix {
    tracks: HashMap<TrackKey, Track>,
    encoder: opus::Encoder,
    /// Smallest jitter-buffer depth of each track, in frames.
    min_depth: usize,
    next_tick: Option<Instant>,
    seq: u16,
    ts: u32,
    gain: f32,
    stats: FloorMixStats,
    sum: [f32; FRAME],
    frame: [f32; FRAME],
}

impl FloorMix {
    /// A mix whose tracks play as soon as their jitter allows (`min_depth` 0 on a LAN or the same
    /// host, 1 across the internet).
    pub fn new(settings: FloorMixSettings, min_depth: usize) -> Result<Self, opus::Error> {
        Ok(Self {
            tracks: HashMap::new(),
            encoder: encoder(settings.bitrate, settings.complexity)?,
            min_depth,
            next_tick: None,
            seq: rand::random(),
            ts: rand::random(),
            gain: 1.0,
            stats: FloorMixStats::default(),
            sum: [0.0; FRAME],
            frame: [0.0; FRAME],
        })
    }

    /// A packet of `track`: its extended sequence number, RTP timestamp, RFC 6464 level (-dBov)
    /// if it has one, and the Opus payload. Returns whether it was kept for decoding.
    pub fn push(
        &mut self,
        track: TrackKey,
        seq: u64,
        ts: u32,
        level: Option<u8>,
        payload: &[u8],
        now: Instant,
    ) -> Result<bool, opus::Error> {
        if !self.tracks.contains_key(&track) {
            self.tracks.insert(track, Track { playout: Playout::new(self.min_depth)?, audible_at: None });
            self.stats.tracks = self.tracks.len();
        }
        let Some(entry) = self.tracks.get_mut(&track) else { return Ok(false) };
        // The floor runs from the first packet on, sound or not: listeners get a steady stream.
        self.next_tick.get_or_insert(now);
        let audible = level.is_none_or(|l| l <= AUDIBLE_DBOV);
        if audible {
            entry.audible_at = Some(now);
        }
        let in_hangover = entry.audible_at.is_some_and(|at| now.saturating_duration_since(at) <= HANGOVER);
        if !in_hangover {
            self.stats.packets_skipped += 1;
            return Ok(false);
        }
        entry.playout.push(seq, ts, payload.into(), now);
        self.stats.packets_kept += 1;
        if self.stats.talking == 0 && !entry.playout.is_idle() {
            // The first voice in a silent floor: mix it soon rather than at the old phase.
            let soon = now + ONSET_MARGIN;
            self.next_tick = Some(self.next_tick.map_or(soon, |t| t.min(soon)));
        }
        Ok(true)
    }

    /// Start the floor's frames at `now` if no packet has started them yet: a meeting where
    /// nobody talks is heard as silence.
    pub fn start(&mut self, now: Instant) {
        self.next_tick.get_or_insert(now);
    }

    /// The track is gone (unpublished, unsubscribed, its participant left).
    pub fn remove(&mut self, track: TrackKey) {
        self.tracks.remove(&track);
        self.stats.tracks = self.tracks.len();
    }

    /// When the next frame is due (None until the first packet).
    pub fn next_tick(&self) -> Option<Instant> {
        self.next_tick
    }

    /// What the mix has done so far.
    pub fn stats(&self) -> FloorMixStats {
        self.stats
    }

    /// Produce every frame due at `now`.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<FloorFrame>) -> Result<(), opus::Error> {
        while let Some(due) = self.next_tick.filter(|t| *t <= now) {
            let late = now.saturating_duration_since(due);
            // After a stall, skip ahead (keeping time in the timestamps) rather than burst.
            let skipped = if late > TICK * 5 { (late.as_millis() / TICK.as_millis()) as u32 } else { 0 };
            self.next_tick = Some(due + TICK * (skipped + 1));
            self.ts = self.ts.wrapping_add(FRAME_TICKS.wrapping_mul(skipped));
            let payload = self.mix_once()?;
            out.push(FloorFrame { seq: self.seq, ts: self.ts, payload });
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(FRAME_TICKS);
        }
        Ok(())
    }

    fn mix_once(&mut self) -> Result<Arc<[u8]>, opus::Error> {
        self.sum.fill(0.0);
        let mut talking = 0;
        for track in self.tracks.values_mut() {
            if track.playout.is_idle() {
                continue;
            }
            track.playout.frame(&mut self.frame);
            self.stats.frames_decoded += 1;
            talking += 1;
            for (s, x) in self.sum.iter_mut().zip(self.frame.iter()) {
                *s += x;
            }
        }
        self.stats.talking = talking;
        if talking == 0 {
            self.gain = 1.0;
            self.stats.frames_silent += 1;
            return Ok(opus_silence());
        }
        self.limit();
        self.stats.frames_mixed += 1;
        Ok(self.encoder.encode_vec_float(&self.sum, 1500)?.into())
    }

    /// Keep the sum under the ceiling: the gain drops at once (ramped over 1 ms) when a peak
    /// would pass it and recovers by 0.5 dB a frame.
    fn limit(&mut self) {
        let peak = self.sum.iter().fold(0f32, |m, s| m.max(s.abs()));
        let released = (self.gain * RELEASE).min(1.0);
        let target = if peak > 0.0 { released.min(CEILING / peak) } else { released };
        if target < self.gain {
            self.stats.frames_limited += 1;
        }
        let from = self.gain;
        for (i, s) in self.sum.iter_mut().enumerate() {
            let g = if i < RAMP { from + (target - from) * (i as f32 / RAMP as f32) } else { target };
            *s = (*s * g).clamp(-1.0, 1.0);
        }
        self.gain = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_tone::{amplitude as amplitude_f64, tone_frame};

    fn amplitude(samples: &[f32], frequency: f32) -> f32 {
        amplitude_f64(samples, frequency) as f32
    }

    /// `frames` of a tone at `amplitude`, encoded as a microphone would.
    fn tone(frequency: f32, amplitude: f32, frames: usize) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).expect("encoder");
        (0..frames)
            .map(|n| encoder.encode_vec_float(&tone_frame(frequency, amplitude, n), 1500).expect("encode"))
            .collect()
    }

    /// A microphone: its packets, its level, and which frames it sends.
    struct Mic {
        packets: Vec<Vec<u8>>,
        level: Option<u8>,
        talks: std::ops::Range<usize>,
    }

    /// Runs `frames` periods of 20 ms of simulated time: every microphone sends a packet each
    /// period (its talk range with its level, silence level 127 outside), the mix ticks 1 ms
    /// later. Returns the decoded floor and the mix.
    fn run(mics: &[Mic], frames: usize) -> (Vec<f32>, FloorMix, Vec<FloorFrame>) {
        let mut mix = FloorMix::new(FloorMixSettings::default(), 0).expect("mix");
        let quiet = tone(440.0, 0.0, 1).remove(0);
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for n in 0..frames {
            let now = t0 + TICK * n as u32;
            for (k, mic) in mics.iter().enumerate() {
                let (payload, level) = if mic.talks.contains(&n) {
                    (&mic.packets[n % mic.packets.len()], mic.level)
                } else {
                    (&quiet, Some(127))
                };
                let ts = (n as u32).wrapping_mul(FRAME_TICKS);
                mix.push(TrackKey(k as u32), n as u64, ts, level, payload, now).expect("push");
            }
            mix.tick(now + Duration::from_millis(1), &mut sent).expect("tick");
        }
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
        let mut pcm = Vec::new();
        for frame in &sent {
            let mut out = [0f32; FRAME];
            decoder.decode_float(&frame.payload, &mut out, false).expect("decode");
            pcm.extend_from_slice(&out);
        }
        (pcm, mix, sent)
    }

    fn mic(frequency: f32, talks: std::ops::Range<usize>) -> Mic {
        Mic { packets: tone(frequency, 0.3, 50), level: Some(20), talks }
    }

    /// The samples of frames `range` of the floor.
    fn frames(pcm: &[f32], range: std::ops::Range<usize>) -> &[f32] {
        &pcm[range.start * FRAME..range.end * FRAME]
    }

    #[test]
    fn one_speaker_at_a_time_is_heard_alone() {
        let mics = [mic(440.0, 0..50), mic(660.0, 50..100), mic(880.0, 100..150)];
        let (pcm, mix, sent) = run(&mics, 150);
        assert_eq!(sent.len(), 150, "one frame per 20 ms");
        for (k, f) in [440.0, 660.0, 880.0].into_iter().enumerate() {
            let window = frames(&pcm, k * 50 + 10..k * 50 + 45);
            assert!(amplitude(window, f) > 0.2, "{f} Hz while it talks: {}", amplitude(window, f));
            for other in [440.0, 660.0, 880.0].into_iter().filter(|o| *o != f) {
                assert!(amplitude(window, other) < 0.02, "{other} Hz silent while {f} Hz talks");
            }
        }
        let stats = mix.stats();
        assert_eq!(stats.tracks, 3);
        // Each track is decoded while it talks (50 frames) and its hangover (20), with at most
        // three frames of concealment after: never the rest of the time.
        assert!(stats.frames_decoded <= 3 * 73, "decoded {} frames of 450", stats.frames_decoded);
        assert_eq!(stats.packets_skipped, 450 - 190, "{stats:?}");
    }

    #[test]
    fn two_speakers_at_once_are_both_heard_and_limited_not_clipped() {
        let loud = |f| Mic { packets: tone(f, 0.7, 50), level: Some(3), talks: 0..100 };
        let (pcm, mix, _) = run(&[loud(440.0), loud(660.0)], 100);
        let window = frames(&pcm, 20..90);
        let (a, b) = (amplitude(window, 440.0), amplitude(window, 660.0));
        assert!(a > 0.25 && b > 0.25, "both tones: {a} {b}");
        assert!((a - b).abs() < 0.1, "at the same level: {a} {b}");
        let peak = window.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak < 1.0, "the limiter keeps the sum (1.4 peak) under full scale: {peak}");
        assert!(mix.stats().frames_limited > 0);
    }

    #[test]
    fn nobody_talking_is_silence_not_a_gap() {
        let (pcm, mix, sent) = run(&[mic(440.0, 0..20), mic(660.0, 200..300)], 100);
        assert_eq!(sent.len(), 100, "the floor keeps sending");
        for pair in sent.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
            assert_eq!(pair[1].ts, pair[0].ts.wrapping_add(FRAME_TICKS));
        }
        let quiet = frames(&pcm, 60..100);
        assert!(quiet.iter().all(|s| s.abs() < 1e-3), "silence once the speaker stopped");
        let stats = mix.stats();
        assert!(stats.frames_silent >= 50, "{stats:?}");
        assert_eq!(stats.talking, 0);
    }

    #[test]
    fn a_speaker_who_starts_again_is_heard_within_a_frame() {
        // Talks 20 frames, quiet 30 (level 127), again and again; packets arrive up to 3 ms late.
        let mut mix = FloorMix::new(FloorMixSettings::default(), 0).expect("mix");
        let voice = tone(440.0, 0.3, 50);
        let quiet = tone(440.0, 0.0, 1).remove(0);
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut started = None;
        let mut delays = Vec::new();
        let mut was_quiet = true;
        for n in 0..500u32 {
            let talking = n % 50 < 20;
            let arrival = t0 + TICK * n + Duration::from_micros(u64::from((n * 7919) % 3000));
            // The mix ticks every 1 ms of simulated time up to this arrival.
            let mut now = t0 + TICK * n.saturating_sub(1);
            while now < arrival {
                mix.tick(now, &mut out).expect("tick");
                for frame in out.drain(..) {
                    let mut pcm = [0f32; FRAME];
                    decoder.decode_float(&frame.payload, &mut pcm, false).expect("decode");
                    let loud = amplitude(&pcm, 440.0) > 0.05;
                    if loud
                        && was_quiet
                        && let Some(at) = started.take()
                    {
                        delays.push(now.saturating_duration_since(at));
                    }
                    was_quiet = !loud;
                }
                now += Duration::from_millis(1);
            }
            if talking && n % 50 == 0 {
                started = Some(arrival);
            }
            let (payload, level) = if talking { (&voice[n as usize % 50], 20) } else { (&quiet, 127) };
            mix.push(TrackKey(1), u64::from(n), n * FRAME_TICKS, Some(level), payload, arrival)
                .expect("push");
        }
        assert!(delays.len() >= 9, "{delays:?}");
        // The first loud frame is mixed 5 ms after the first loud packet (the ms-stepped clock
        // adds at most 1 ms); its decoded frame can hold the onset's ramp, so allow one frame more.
        let worst = delays.iter().max().copied().unwrap_or_default();
        assert!(worst <= Duration::from_millis(27), "onset delays {delays:?}");
    }

    #[test]
    fn a_track_without_levels_is_always_decoded() {
        let mics = [Mic { packets: tone(440.0, 0.3, 50), level: None, talks: 0..50 }];
        let (pcm, mix, _) = run(&mics, 50);
        assert!(amplitude(frames(&pcm, 10..45), 440.0) > 0.2);
        assert_eq!(mix.stats().packets_skipped, 0);
    }

    #[test]
    fn a_gone_track_stops_counting_and_a_stall_keeps_time() {
        let mut mix = FloorMix::new(FloorMixSettings::default(), 0).expect("mix");
        let packets = tone(440.0, 0.3, 3);
        let t0 = Instant::now();
        mix.push(TrackKey(7), 1, 0, Some(10), &packets[0], t0).expect("push");
        let mut out = Vec::new();
        mix.tick(t0, &mut out).expect("tick");
        mix.remove(TrackKey(7));
        assert_eq!(mix.stats().tracks, 0);
        // A second's stall: one frame, its timestamp a second on.
        mix.tick(t0 + Duration::from_secs(1), &mut out).expect("tick");
        assert_eq!(out.len(), 2, "no burst after a stall");
        assert_eq!(out[1].ts.wrapping_sub(out[0].ts), 50 * FRAME_TICKS);
        assert_eq!(out[1].seq, out[0].seq.wrapping_add(1));
    }
}
