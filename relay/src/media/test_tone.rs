//! Test tones for the mixes' unit tests: a sine frame, and the amplitude of one frequency in a
//! stretch of samples (a single DFT bin).

use crate::media::playout::FRAME;

/// Frame `n` of a continuous sine at `frequency` and `amplitude` (48 kHz).
pub(crate) fn tone_frame(frequency: f32, amplitude: f32, n: usize) -> [f32; FRAME] {
    let mut frame = [0.0; FRAME];
    for (i, s) in frame.iter_mut().enumerate() {
        let t = (n * FRAME + i) as f32 / 48_000.0;
        *s = amplitude * (2.0 * std::f32::consts::PI * frequency * t).sin();
    }
    frame
}

/// The amplitude of `frequency` in `samples`.
pub(crate) fn amplitude(samples: &[f32], frequency: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(frequency) / 48_000.0;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, s) in samples.iter().enumerate() {
        re += f64::from(*s) * (w * i as f64).cos();
        im += f64::from(*s) * (w * i as f64).sin();
    }
    2.0 * (re * re + im * im).sqrt() / samples.len() as f64
}
