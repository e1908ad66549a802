//! Mix mode: the floor under the interpretation at a fixed level, for clients that take one track.
//!
//! Every 20 ms the mixer takes one frame from each input (the floor, each interpreter), each
//! through its own small adaptive jitter buffer, and for every interpretation channel with someone
//! on air it adds the floor at the configured gain to the on-air voice, with a 5 ms crossfade when
//! the voice changes (handover), and encodes the result once for the channel. The frames it
//! produces re-enter routing as `Source::Mixed(channel)` packets, so fan-out is the same as for
//! pass-through. Decode, mix and encode happen once per channel, never per listener; time comes in
//! as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::{EventId, InterpreterId};
use crate::media::continuity::FRAME_TICKS;
use crate::media::playout::Playout;
use crate::media::router::{ChannelIndex, OnAir};
use crate::media::{Source, SourcePacket};

const FRAME: usize = crate::media::playout::FRAME;
const TICK: Duration = Duration::from_millis(20);
/// Samples over which a handover crossfades.
const CROSSFADE: usize = 240;

/// What can go wrong building a mixer.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("Opus codec error: {0}")]
    Opus(#[from] opus::Error),
}

/// How a mixed channel is encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixSettings {
    /// Level of the floor under the voice, in dB (e.g. -18).
    pub floor_db: f32,
    /// Opus complexity 0–10.
    pub complexity: i32,
    /// Opus bitrate, bits per second.
    pub bitrate: i32,
}

impl Default for MixSettings {
    fn default() -> Self {
        Self { floor_db: -18.0, complexity: 5, bitrate: 32_000 }
    }
}

/// The encoder of a mixed output: Opus at `bitrate` (bits per second) and `complexity` (0–10),
/// with in-band FEC for 5 % loss.
pub fn encoder(bitrate: i32, complexity: i32) -> Result<opus::Encoder, opus::Error> {
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)?;
    encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
    encoder.set_inband_fec(true)?;
    encoder.set_packet_loss_perc(5)?;
    encoder.set_complexity(complexity)?;
    Ok(encoder)
}

/// One mixed channel's encoder and output numbering.
struct Output {
    encoder: opus::Encoder,
    voice: Option<InterpreterId>,
    seq: u64,
    input: u64,
}

/// The mixer of one event.
pub struct Mixer {
    event: EventId,
    settings: MixSettings,
    gain: f32,
    floor: Playout,
    voices: HashMap<InterpreterId, Playout>,
    outputs: HashMap<ChannelIndex, Output>,
    next_tick: Option<Instant>,
    /// Input keys for the channels' output lines start here.
    input_base: u64,
    scratch: HashMap<InterpreterId, [f32; FRAME]>,
}

impl Mixer {
    /// `input_base`: a range of input keys (one per channel) no other source uses.
    pub fn new(event: EventId, settings: MixSettings, input_base: u64) -> Result<Self, MixError> {
        Ok(Self {
            event,
            settings,
            gain: 10f32.powf(settings.floor_db / 20.0),
            floor: Playout::new(1)?,
            voices: HashMap::new(),
            outputs: HashMap::new(),
            next_tick: None,
            input_base,
            scratch: HashMap::new(),
        })
    }

    pub fn settings(&self) -> MixSettings {
        self.settings
    }

    /// Take a source packet of the event into its input's jitter buffer.
    pub fn push(&mut self, packet: &SourcePacket, now: Instant) -> Result<(), MixError> {
        let input = match packet.source {
            Source::Floor => &mut self.floor,
            Source::Booth(who) => match self.voices.entry(who) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Playout::new(1)?),
            },
            Source::Mixed(_) | Source::Cascade(_) => return Ok(()),
        };
        input.push(packet.seq, packet.ts, packet.payload.clone(), now);
        self.next_tick.get_or_insert(now + TICK);
        Ok(())
    }

    /// When the next frame is due (None until the first packet).
    pub fn next_tick(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Produce every frame due at `now`: for each interpretation channel with someone on air
    /// (`on_air` per channel index 1..channels), one encoded packet.
    pub fn tick(
        &mut self,
        now: Instant,
        channels: usize,
        on_air: impl Fn(ChannelIndex) -> Option<OnAir>,
        out: &mut Vec<SourcePacket>,
    ) -> Result<(), MixError> {
        while let Some(due) = self.next_tick.filter(|t| *t <= now) {
            // Skip ahead rather than burst after a stall.
            self.next_tick = Some(if now - due > TICK * 5 { now + TICK } else { due + TICK });
            self.mix_once(due, channels, &on_air, out)?;
        }
        Ok(())
    }

    fn mix_once(
        &mut self,
        at: Instant,
        channels: usize,
        on_air: &impl Fn(ChannelIndex) -> Option<OnAir>,
        out: &mut Vec<SourcePacket>,
    ) -> Result<(), MixError> {
        let mut floor = [0f32; FRAME];
        self.floor.frame(&mut floor);
        for (who, input) in &mut self.voices {
            let frame = self.scratch.entry(*who).or_insert([0.0; FRAME]);
            input.frame(frame);
        }
        for channel in 1..channels {
            let Some(seat) = on_air(channel) else {
                self.outputs.remove(&channel);
                continue;
            };
            let output = match self.outputs.entry(channel) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let encoder = encoder(self.settings.bitrate, self.settings.complexity)?;
                    e.insert(Output { encoder, voice: None, seq: 0, input: self.input_base + channel as u64 })
                }
            };
            let silent = [0f32; FRAME];
            let voice =
                if seat.muted { &silent } else { self.scratch.get(&seat.interpreter).unwrap_or(&silent) };
            let mut mixed = [0f32; FRAME];
            for i in 0..FRAME {
                mixed[i] = voice[i] + self.gain * floor[i];
            }
            // Handover: fade the previous voice out and the new one in over 5 ms.
            if let Some(previous) = output.voice.filter(|p| *p != seat.interpreter)
                && let Some(old) = self.scratch.get(&previous)
            {
                for i in 0..CROSSFADE {
                    let w = i as f32 / CROSSFADE as f32;
                    mixed[i] = w * voice[i] + (1.0 - w) * old[i] + self.gain * floor[i];
                }
            }
            output.voice = Some(seat.interpreter);
            for s in &mut mixed {
                *s = s.clamp(-1.0, 1.0);
            }
            let payload = output.encoder.encode_vec_float(&mixed, 1500)?;
            out.push(SourcePacket {
                event: self.event.clone(),
                source: Source::Mixed(channel),
                input: output.input,
                seq: output.seq,
                ts: (output.seq as u32).wrapping_mul(FRAME_TICKS),
                marker: false,
                payload: payload.into(),
                received_at: at,
            });
            output.seq += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_tone::{amplitude, tone_frame};

    fn tone(frequency: f32, n: u64) -> [f32; FRAME] {
        tone_frame(frequency, 0.5, n as usize)
    }

    fn level_at(samples: &[f32], frequency: f32) -> f64 {
        20.0 * amplitude(samples, frequency).log10()
    }

    /// Simulated 20 ms clock: floor (440 Hz) and Ana (880 Hz) send, the mixer ticks; returns the
    /// decoded output of channel 1.
    fn run(on_air: Option<OnAir>, frames: u64) -> Vec<f32> {
        let event = EventId::parse("e").expect("id");
        let mut mixer = Mixer::new(event.clone(), MixSettings::default(), 1 << 40).expect("mixer");
        let mut floor_enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).expect("enc");
        let mut ana_enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).expect("enc");
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("dec");
        let t0 = Instant::now();
        let mut decoded = Vec::new();
        let mut out = Vec::new();
        for n in 0..frames {
            let now = t0 + TICK * n as u32;
            for (source, encoder, f) in [
                (Source::Floor, &mut floor_enc, 440.0),
                (Source::Booth(InterpreterId(1)), &mut ana_enc, 880.0),
            ] {
                let payload = encoder.encode_vec_float(&tone(f, n), 1500).expect("encode");
                let packet = SourcePacket {
                    event: event.clone(),
                    source,
                    input: 1,
                    seq: 1000 + n,
                    ts: n as u32 * 960,
                    marker: false,
                    payload: payload.into(),
                    received_at: now,
                };
                mixer.push(&packet, now).expect("push");
            }
            out.clear();
            mixer
                .tick(now + Duration::from_millis(1), 2, |c| if c == 1 { on_air } else { None }, &mut out)
                .expect("tick");
            for p in &out {
                assert_eq!(p.source, Source::Mixed(1));
                let mut pcm = [0f32; FRAME];
                let n = decoder.decode_float(&p.payload, &mut pcm, false).expect("decode");
                decoded.extend_from_slice(&pcm[..n]);
            }
        }
        decoded
    }

    #[test]
    fn the_floor_sits_at_the_configured_level_under_the_voice() {
        let decoded = run(Some(OnAir { interpreter: InterpreterId(1), muted: false }), 100);
        assert!(decoded.len() >= 90 * FRAME, "one frame per tick: {} samples", decoded.len());
        let tail = &decoded[decoded.len() - 48_000..];
        let difference = level_at(tail, 440.0) - level_at(tail, 880.0);
        assert!((difference + 18.0).abs() <= 1.5, "floor is {difference:.1} dB under the voice");
    }

    #[test]
    fn nobody_on_air_mixes_nothing_and_cough_leaves_the_floor_only() {
        assert!(run(None, 20).is_empty(), "nobody on air: the channel carries the floor as it is");
        let decoded = run(Some(OnAir { interpreter: InterpreterId(1), muted: true }), 100);
        let tail = &decoded[decoded.len() - 48_000..];
        assert!(level_at(tail, 880.0) < -50.0, "coughing voice is silent");
        assert!((level_at(tail, 440.0) - (-6.0 - 18.0)).abs() < 2.0, "the floor stays underneath");
    }

    #[test]
    fn a_handover_in_mix_mode_crossfades_without_a_gap() {
        let event = EventId::parse("e").expect("id");
        let mut mixer = Mixer::new(event.clone(), MixSettings::default(), 1 << 40).expect("mixer");
        let mut encoders: Vec<opus::Encoder> = (0..3)
            .map(|_| opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).expect("enc"))
            .collect();
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("dec");
        let t0 = Instant::now();
        let mut frames: Vec<[f32; FRAME]> = Vec::new();
        let mut out = Vec::new();
        for n in 0..100u64 {
            let now = t0 + TICK * n as u32;
            let sources = [
                (Source::Floor, 440.0),
                (Source::Booth(InterpreterId(1)), 880.0),
                (Source::Booth(InterpreterId(2)), 660.0),
            ];
            for ((source, f), encoder) in sources.into_iter().zip(&mut encoders) {
                let payload = encoder.encode_vec_float(&tone(f, n), 1500).expect("encode");
                let packet = SourcePacket {
                    event: event.clone(),
                    source,
                    input: 1,
                    seq: n,
                    ts: n as u32 * 960,
                    marker: false,
                    payload: payload.into(),
                    received_at: now,
                };
                mixer.push(&packet, now).expect("push");
            }
            // Ana (880 Hz) until frame 50, then Ben (660 Hz) takes the air.
            let who = InterpreterId(if n < 50 { 1 } else { 2 });
            out.clear();
            mixer
                .tick(
                    now + Duration::from_millis(1),
                    2,
                    |_| Some(OnAir { interpreter: who, muted: false }),
                    &mut out,
                )
                .expect("tick");
            for p in &out {
                let mut pcm = [0f32; FRAME];
                decoder.decode_float(&p.payload, &mut pcm, false).expect("decode");
                frames.push(pcm);
            }
        }
        let samples: Vec<f32> = frames.iter().flatten().copied().collect();
        // Every 10 ms after the jitter buffer filled carries a voice: no gap at the handover.
        let quietest = samples[FRAME * 10..]
            .chunks(480)
            .map(|c| 10.0 * (c.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / c.len() as f64).log10())
            .fold(f64::MAX, f64::min);
        assert!(quietest > -15.0, "no gap: the quietest 10 ms is {quietest:.1} dB");
        // Before: Ana; after: Ben; never both at full level.
        let before = &samples[FRAME * 30..FRAME * 45];
        let after = &samples[samples.len() - FRAME * 15..];
        assert!(level_at(before, 880.0) > level_at(before, 660.0) + 30.0);
        assert!(level_at(after, 660.0) > level_at(after, 880.0) + 30.0);
    }
}
