//! The demo floor: a built-in, looping, voice-like source, so a newcomer hears something with no
//! other tool. It synthesises speech-like sound (a glottal pulse train whose pitch moves per
//! syllable, shaped by vowel formants, in syllables and phrases), encodes it with Opus and sends it
//! as RTP to the demo event's RTP floor port: the same path an `ffmpeg … -f rtp` floor takes.

use std::f32::consts::PI;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::media::continuity::FRAME_TICKS;

const RATE: usize = 48_000;
const FRAME: usize = FRAME_TICKS as usize;
/// Payload type used on the wire; any dynamic type works for an RTP floor.
const OPUS_PT: u8 = 111;

/// First three formant frequencies (Hz) of five vowels.
const VOWELS: [[f32; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
];

/// A two-pole resonator (one formant).
#[derive(Default, Clone, Copy)]
struct Resonator {
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn run(&mut self, x: f32, freq: f32, bandwidth: f32) -> f32 {
        let r = (-PI * bandwidth / RATE as f32).exp();
        let a1 = 2.0 * r * (2.0 * PI * freq / RATE as f32).cos();
        let a2 = -r * r;
        let y = (1.0 - r) * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Speech-like audio, 20 ms at a time, deterministic (a fixed pseudo-random walk).
pub struct Voice {
    t: usize,
    phase: f32,
    formants: [Resonator; 3],
    seed: u32,
    syllable: (usize, usize, f32, usize),
}

impl Default for Voice {
    fn default() -> Self {
        Self {
            t: 0,
            phase: 0.0,
            formants: [Resonator::default(); 3],
            seed: 0x1234_5678,
            syllable: (0, 0, 140.0, 0),
        }
    }
}

impl Voice {
    fn random(&mut self) -> u32 {
        // xorshift32
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        self.seed
    }

    /// Next 20 ms of mono samples at 48 kHz.
    pub fn frame(&mut self) -> [f32; FRAME] {
        let mut out = [0.0; FRAME];
        for sample in &mut out {
            let (start, len, _, _) = self.syllable;
            if self.t >= start + len {
                // Syllables of 120–300 ms; every ~8th is followed by a phrase pause.
                let pause = if self.random().is_multiple_of(8) { RATE * 2 / 5 } else { RATE / 40 };
                let len = RATE * (120 + (self.random() % 180) as usize) / 1000;
                let pitch = 110.0 + (self.random() % 90) as f32;
                let vowel = (self.random() % VOWELS.len() as u32) as usize;
                self.syllable = (self.t + pause, len, pitch, vowel);
            }
            let (start, len, pitch, vowel) = self.syllable;
            let envelope = if self.t < start {
                0.0
            } else {
                let x = (self.t - start) as f32 / len as f32;
                (PI * x).sin().powf(0.6)
            };
            // Pitch glides down a little through the syllable, like declarative speech.
            let progress = self.t.saturating_sub(start) as f32 / len as f32;
            let f0 = pitch * (1.0 - 0.15 * progress.min(1.0));
            self.phase += f0 / RATE as f32;
            let pulse = if self.phase >= 1.0 {
                self.phase -= 1.0;
                1.0
            } else {
                0.0
            };
            let mut voiced = 0.0;
            for (k, resonator) in self.formants.iter_mut().enumerate() {
                voiced += resonator.run(pulse, VOWELS[vowel][k], 80.0 + 40.0 * k as f32) / (k as f32 + 1.0);
            }
            *sample = (voiced * envelope * 6.0).clamp(-0.9, 0.9);
            self.t += 1;
        }
        out
    }
}

/// Send the voice as Opus RTP to `to` every 20 ms until `stop` is set. Runs on its own thread.
pub fn spawn_floor(to: SocketAddr, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let socket = UdpSocket::bind(SocketAddr::new(to.ip(), 0))?;
    std::thread::Builder::new().name("tolk-demo-floor".into()).spawn(move || {
        let mut encoder = match opus::Encoder::new(RATE as u32, opus::Channels::Mono, opus::Application::Voip)
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "the demo floor could not start Opus");
                return;
            }
        };
        let mut voice = Voice::default();
        let ssrc: u32 = rand::random();
        let mut packet = [0u8; 12 + 1500];
        let start = Instant::now();
        let mut n: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            let pcm = voice.frame();
            let Ok(len) = encoder.encode_float(&pcm, &mut packet[12..]) else {
                continue;
            };
            packet[0] = 0x80;
            packet[1] = OPUS_PT;
            packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&n.wrapping_mul(FRAME_TICKS).to_be_bytes());
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
            if let Err(e) = socket.send_to(&packet[..12 + len], to) {
                tracing::debug!(error = %e, "demo floor send failed");
            }
            n = n.wrapping_add(1);
            let next = start + Duration::from_millis(20) * n;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_has_syllables_and_pauses() {
        let mut voice = Voice::default();
        let frames: Vec<f32> = (0..500)
            .map(|_| {
                let f = voice.frame();
                (f.iter().map(|x| x * x).sum::<f32>() / FRAME as f32).sqrt()
            })
            .collect();
        let loud = frames.iter().filter(|&&rms| rms > 0.02).count();
        let quiet = frames.iter().filter(|&&rms| rms < 0.005).count();
        assert!(loud > 150, "mostly voiced: {loud} of 500 frames");
        assert!(quiet > 10, "with pauses: {quiet} of 500 frames");
        assert!(frames.iter().all(|rms| rms.is_finite()));
    }
}
