//! Test audio: sine tones encoded as Opus, and measurements of what arrives (dominant frequency,
//! level in dBFS, silence).

use std::f64::consts::PI;

pub const RATE: u32 = 48_000;
pub const FRAME: usize = 960;

/// An endless sine tone, 20 ms frames at 48 kHz mono.
pub struct Tone {
    pub frequency: f64,
    pub amplitude: f64,
    phase: f64,
    /// Dither at -70 dBFS, so that no two encoded frames are alike (latency is measured by
    /// matching payloads).
    noise: u32,
}

impl Tone {
    pub fn new(frequency: f64, amplitude: f64) -> Self {
        Self { frequency, amplitude, phase: 0.0, noise: 0x9e37_79b9 }
    }

    pub fn frame(&mut self) -> [f32; FRAME] {
        let mut out = [0.0; FRAME];
        let step = 2.0 * PI * self.frequency / f64::from(RATE);
        for s in &mut out {
            self.noise ^= self.noise << 13;
            self.noise ^= self.noise >> 17;
            self.noise ^= self.noise << 5;
            let dither = (f64::from(self.noise) / f64::from(u32::MAX) - 0.5) * 6e-4;
            *s = (self.amplitude * self.phase.sin() + dither) as f32;
            self.phase = (self.phase + step) % (2.0 * PI);
        }
        out
    }
}

/// A tone source that yields Opus packets; optionally gated (on for `gate` frames, off for as
/// many), so that the onsets can be timed at a receiver.
pub struct OpusTone {
    tone: Tone,
    encoder: opus::Encoder,
    buf: Vec<u8>,
    gate: Option<u64>,
    frames: u64,
}

impl OpusTone {
    pub fn new(frequency: f64, amplitude: f64) -> anyhow::Result<Self> {
        let encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Audio)?;
        Ok(Self { tone: Tone::new(frequency, amplitude), encoder, buf: vec![0; 1500], gate: None, frames: 0 })
    }

    /// On for `frames` frames, off for as many, repeating; onsets at multiples of 2 × `frames`.
    pub fn gated(mut self, frames: u64) -> Self {
        self.gate = Some(frames.max(1));
        self
    }

    /// The next 20 ms as one Opus packet.
    pub fn next_packet(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut pcm = self.tone.frame();
        if self.gate.is_some_and(|g| (self.frames / g) % 2 == 1) {
            pcm = [0.0; FRAME];
        }
        self.frames += 1;
        let n = self.encoder.encode_float(&pcm, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

/// Power of `samples` at `frequency` (Goertzel), normalised by length.
pub fn power_at(samples: &[f32], frequency: f64) -> f64 {
    let w = 2.0 * PI * frequency / f64::from(RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
}

/// The strongest frequency between 100 and 2000 Hz, to 2 Hz (coarse scan, then refine).
pub fn dominant_frequency(samples: &[f32]) -> f64 {
    let best = |from: f64, to: f64, step: f64| {
        let mut f = from;
        let mut top = (from, -1.0);
        while f <= to {
            let p = power_at(samples, f);
            if p > top.1 {
                top = (f, p);
            }
            f += step;
        }
        top.0
    };
    let coarse = best(100.0, 2000.0, 10.0);
    best(coarse - 10.0, coarse + 10.0, 2.0)
}

/// RMS level in dBFS.
pub fn level_db(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return -200.0;
    }
    let mean = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / samples.len() as f64;
    if mean <= 0.0 { -200.0 } else { 10.0 * mean.log10() }
}

/// Level in dB of the component at `frequency` (as a sine's RMS level would be).
pub fn tone_level_db(samples: &[f32], frequency: f64) -> f64 {
    // Goertzel power of a sine of amplitude A over N samples ≈ A²/4 → RMS² = A²/2 = 2·power.
    let p = power_at(samples, frequency) * 2.0;
    if p <= 0.0 { -200.0 } else { 10.0 * p.log10() }
}

/// A mono 16-bit WAV file of `seconds` of tone (for Chromium's fake microphone).
pub fn tone_wav(frequency: f64, amplitude: f64, seconds: u32) -> Vec<u8> {
    let mut tone = Tone::new(frequency, amplitude);
    let frames = (seconds * RATE) as usize / FRAME;
    let mut pcm = Vec::with_capacity(frames * FRAME * 2);
    for _ in 0..frames {
        for s in tone.frame() {
            pcm.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
        }
    }
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    wav
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tone_and_its_level() {
        let mut t = Tone::new(440.0, 0.5);
        let samples: Vec<f32> = (0..25).flat_map(|_| t.frame()).collect();
        assert!((dominant_frequency(&samples) - 440.0).abs() <= 2.0);
        assert!((level_db(&samples) - (-9.03)).abs() < 0.1);
        assert!((tone_level_db(&samples, 440.0) - (-9.03)).abs() < 0.3);
    }
}
