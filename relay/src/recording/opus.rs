//! What the recorder needs to know of an Opus packet without decoding it: how long it lasts
//! (RFC 6716 §3.1, from the TOC byte and the frame count), and silence of a given length.

use std::sync::{Arc, OnceLock};

/// Samples at 48 kHz in one frame of each TOC configuration (RFC 6716 table 2).
fn frame_samples(config: u8) -> u32 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// The longest an Opus packet may last: 120 ms.
pub(crate) const MAX_PACKET_SAMPLES: u32 = 5760;

/// How many samples (48 kHz) `packet` holds; None for a packet that is not valid Opus framing
/// (empty, a code-3 packet without its frame count, or longer than 120 ms).
pub(crate) fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let samples = frames * frame_samples(toc >> 3);
    (frames > 0 && samples <= MAX_PACKET_SAMPLES).then_some(samples)
}

/// Silence packets the recorder fills gaps with, longest first: (samples, packet). CELT-only
/// frames of 20, 10, 5 and 2.5 ms, encoded once, so any gap is filled to within 2.5 ms.
pub(crate) fn silence_frames() -> &'static [(u32, Arc<[u8]>)] {
    static FRAMES: OnceLock<Vec<(u32, Arc<[u8]>)>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        [960u32, 480, 240, 120]
            .into_iter()
            .filter_map(|samples| {
                let mut encoder =
                    opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::LowDelay).ok()?;
                let packet = encoder.encode_vec_float(&vec![0.0; samples as usize], 64).ok()?;
                Some((samples, Arc::from(packet)))
            })
            .collect()
    })
}

/// Silence packets covering `samples` (to within 2.5 ms, rounded down), appended to `out`.
pub(crate) fn silence_for(mut samples: u64, out: &mut Vec<(u32, Arc<[u8]>)>) {
    for (length, packet) in silence_frames() {
        while samples >= u64::from(*length) {
            out.push((*length, packet.clone()));
            samples -= u64::from(*length);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_toc() {
        assert_eq!(packet_samples(&[]), None);
        // Config 1 (SILK NB 20 ms), code 0: one frame.
        assert_eq!(packet_samples(&[0x08, 1, 2]), Some(960));
        // Config 31 (CELT FB 20 ms), code 1: two frames.
        assert_eq!(packet_samples(&[0xf9, 1, 2]), Some(1920));
        // Config 16 (CELT NB 2.5 ms), code 3 with 4 frames.
        assert_eq!(packet_samples(&[0x83, 4]), Some(480));
        // Code 3 without its count byte, with no frames, or over 120 ms.
        assert_eq!(packet_samples(&[0x83]), None);
        assert_eq!(packet_samples(&[0x83, 0]), None);
        assert_eq!(packet_samples(&[0x1b, 3]), None, "3 x 60 ms is too long");
        // Hybrid 10 ms (config 12).
        assert_eq!(packet_samples(&[12 << 3]), Some(480));
    }

    #[test]
    fn silence_fills_gaps_to_a_quarter_frame_and_decodes_as_silence() {
        let mut out = Vec::new();
        silence_for(960 * 3 + 480 + 120 + 50, &mut out);
        let lengths: Vec<u32> = out.iter().map(|(n, _)| *n).collect();
        assert_eq!(lengths, [960, 960, 960, 480, 120]);
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
        for (samples, packet) in &out {
            assert_eq!(packet_samples(packet), Some(*samples));
            let mut pcm = vec![1.0f32; 960];
            let n = decoder.decode_float(packet, &mut pcm, false).expect("decodes");
            assert_eq!(n as u32, *samples);
            assert!(pcm[..n].iter().all(|s| s.abs() < 1e-4));
        }
    }
}
