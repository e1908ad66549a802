//! One Opus frame of silence, encoded once: what a channel carries while its on-air interpreter
//! coughs (mute), so listeners hear silence without gaps in the stream.

use std::sync::{Arc, OnceLock};

/// 20 ms of digital silence as an Opus packet (48 kHz mono). Shared by every channel.
pub fn opus_silence() -> Arc<[u8]> {
    static FRAME: OnceLock<Arc<[u8]>> = OnceLock::new();
    FRAME
        .get_or_init(|| {
            let encoded = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
                .and_then(|mut e| e.encode_vec_float(&[0.0; 960], 64));
            // A TOC byte alone (config 1: SILK narrowband 20 ms, code 0) with no frame data is
            // also decoded as silence by libopus; it stands in if the encoder cannot be built.
            encoded.map_or_else(|_| Arc::from(&[0x08u8][..]), Arc::from)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_to_silence() {
        let frame = super::opus_silence();
        assert!(!frame.is_empty() && frame.len() < 40, "a small packet: {} bytes", frame.len());
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
        let mut pcm = [1.0f32; 960];
        let n = decoder.decode_float(&frame, &mut pcm, false).expect("decodes");
        assert_eq!(n, 960);
        assert!(pcm.iter().all(|s| s.abs() < 1e-4));
    }
}
