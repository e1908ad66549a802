//! The send stamp every generated packet carries, so that each listener measures the relay-added
//! latency of every packet and knows which voice it hears. It rides in Opus padding (RFC 6716
//! §3.2.5): a one-frame packet is rewritten as a code-3 packet with padding, which every Opus
//! decoder skips, and which a pass-through relay forwards byte for byte.
//!
//! Padding layout (the packet's last `STAMP_LEN` bytes): `b"TOLK"`, the send time in µs since the
//! Unix epoch (u64 BE), the source (u16 BE: 0 the floor, 1+ a booth voice).
//!
//! Send times are wall-clock so that they compare with the kernel's receive times
//! (`SO_TIMESTAMPNS`, also wall-clock): a listener's latency is then the relay's and the
//! network's, without the time the generator's own loop took to get to the packet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"TOLK";
pub const STAMP_LEN: usize = 14;

/// What a packet says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// µs since the Unix epoch.
    pub sent_us: u64,
    pub source: u16,
}

/// The wall clock in µs since the Unix epoch: send stamps and arrivals.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A one-frame Opus packet (TOC code 0) with the stamp in its padding; other packets unchanged.
pub fn stamp(packet: &[u8], source: u16, sent_us: u64) -> Vec<u8> {
    let Some((&toc, frame)) = packet.split_first() else { return packet.to_vec() };
    if toc & 0x03 != 0 {
        return packet.to_vec();
    }
    let mut out = Vec::with_capacity(packet.len() + 3 + STAMP_LEN);
    out.push(toc | 0x03); // code 3: the frame count byte follows
    out.push(0x40 | 1); // padding flag, CBR, one frame
    out.push(STAMP_LEN as u8); // padding length
    out.extend_from_slice(frame);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&sent_us.to_be_bytes());
    out.extend_from_slice(&source.to_be_bytes());
    out
}

/// The stamp of a packet made by [`stamp`], if it has one.
pub fn read(packet: &[u8]) -> Option<Stamp> {
    if packet.len() < 3 + STAMP_LEN || packet[0] & 0x03 != 0x03 || packet[1] & 0x40 == 0 {
        return None;
    }
    let tail = packet.get(packet.len() - STAMP_LEN..)?;
    if &tail[..4] != MAGIC {
        return None;
    }
    let sent_us = u64::from_be_bytes(tail[4..12].try_into().ok()?);
    let source = u16::from_be_bytes(tail[12..14].try_into().ok()?);
    Some(Stamp { sent_us, source })
}

/// Relay-added latency of a stamped packet arriving now.
pub fn latency(stamp: Stamp) -> Duration {
    Duration::from_micros(now_us().saturating_sub(stamp.sent_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_and_opus_still_decodes() {
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let pcm: Vec<f32> = (0..960).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let plain = encoder.encode_vec_float(&pcm, 400).unwrap();
        let stamped = stamp(&plain, 3, 123_456_789);
        assert_eq!(read(&stamped), Some(Stamp { sent_us: 123_456_789, source: 3 }));
        assert_eq!(read(&plain), None);
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut a = vec![0f32; 960];
        let mut b = vec![0f32; 960];
        assert_eq!(decoder.decode_float(&plain, &mut a, false).unwrap(), 960);
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        assert_eq!(decoder.decode_float(&stamped, &mut b, false).unwrap(), 960);
        assert_eq!(a, b, "the padding changes nothing in the audio");
    }
}
