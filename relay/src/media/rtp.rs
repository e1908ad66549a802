//! Plain RTP (RFC 3550) as it arrives on an RTP floor port: header parsing with clear errors and
//! extension of 16-bit sequence numbers to 64 bits.

/// Why a datagram is not an RTP packet Tolk can forward.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0} is not 2")]
    Version(u8),
    #[error("RTP header (CSRC list or extension) runs past the end of the datagram")]
    Truncated,
    #[error("RTP padding of {0} bytes is larger than the payload")]
    Padding(usize),
    #[error("payload type {0} is RTCP, not RTP")]
    Rtcp(u8),
}

/// The fields of an RTP packet Tolk uses; `payload` borrows from the datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Parse one RTP datagram.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < 12 {
        return Err(RtpError::TooShort(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrc_count = usize::from(buf[0] & 0x0f);
    let marker = buf[1] & 0x80 != 0;
    let payload_type = buf[1] & 0x7f;
    if (72..=79).contains(&payload_type) {
        return Err(RtpError::Rtcp(buf[1]));
    }
    let seq = u16::from_be_bytes([buf[2], buf[3]]);
    let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let mut offset = 12 + 4 * csrc_count;
    if extension {
        let words = buf.get(offset + 2..offset + 4).ok_or(RtpError::Truncated)?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if offset > buf.len() {
        return Err(RtpError::Truncated);
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end - offset {
            return Err(RtpError::Padding(pad));
        }
        end -= pad;
    }
    Ok(RtpPacket { payload_type, marker, seq, timestamp, ssrc, payload: &buf[offset..end] })
}

/// The header of an RTP packet Tolk sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// One header extension element in the one-byte form (RFC 8285): id 1–14, 1–16 bytes
    /// (e.g. the MID of the section the packet belongs to). Anything else is left out.
    pub extension: Option<(u8, &'a [u8])>,
}

impl RtpHeader<'_> {
    /// Append the header to `out`; returns how many bytes it took.
    pub fn write(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let extension =
            self.extension.filter(|(id, value)| (1..=14).contains(id) && (1..=16).contains(&value.len()));
        out.push(0x80 | if extension.is_some() { 0x10 } else { 0 });
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if let Some((id, value)) = extension {
            let words = (1 + value.len()).div_ceil(4);
            out.extend_from_slice(&[0xbe, 0xde]);
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.push((id << 4) | (value.len() as u8 - 1));
            out.extend_from_slice(value);
            out.resize(out.len() + words * 4 - 1 - value.len(), 0);
        }
        out.len() - start
    }
}

/// Extends 16-bit RTP sequence numbers to 64 bits, following wrap-arounds.
#[derive(Debug, Default, Clone)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start a cycle up so that a reordered packet from before the first is still positive.
            let ext = (1 << 16) + u64::from(seq);
            self.highest = Some(ext);
            return ext;
        };
        let delta = seq.wrapping_sub(highest as u16) as i16;
        let ext = highest.wrapping_add_signed(i64::from(delta));
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, pt: u8) -> Vec<u8> {
        let mut p = vec![first, pt, 0x12, 0x34, 0, 0, 0x03, 0xc0, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(b"opus");
        p
    }

    #[test]
    fn parses_a_plain_packet() {
        let buf = packet(0x80, 0x80 | 97);
        let p = parse(&buf).expect("valid");
        assert_eq!(p.payload_type, 97);
        assert!(p.marker);
        assert_eq!(p.seq, 0x1234);
        assert_eq!(p.timestamp, 960);
        assert_eq!(p.ssrc, 0xdead_beef);
        assert_eq!(p.payload, b"opus");
    }

    #[test]
    fn skips_csrc_and_extension_and_padding() {
        let mut buf = vec![0xb1, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        buf.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]); // one-byte extension, 1 word
        buf.extend_from_slice(b"hi");
        buf.extend_from_slice(&[0, 2]); // padding of 2
        let p = parse(&buf).expect("valid");
        assert_eq!(p.payload, b"hi");
    }

    #[test]
    fn rejects_malformed_datagrams() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(parse(&packet(0x40, 97)), Err(RtpError::Version(1)));
        assert_eq!(parse(&packet(0x80, 200)), Err(RtpError::Rtcp(200)));
        assert_eq!(parse(&packet(0x8f, 97)), Err(RtpError::Truncated));
        let mut bad_pad = packet(0xa0, 97);
        *bad_pad.last_mut().expect("non-empty") = 200;
        assert_eq!(parse(&bad_pad), Err(RtpError::Padding(200)));
        let ext_cut = [0x90, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe];
        assert_eq!(parse(&ext_cut), Err(RtpError::Truncated));
    }

    #[test]
    fn written_headers_parse_back() {
        for extension in
            [None, Some((3u8, &b"1"[..])), Some((14, &b"audio-floor"[..])), Some((15, &b"x"[..]))]
        {
            let header = RtpHeader {
                payload_type: 111,
                marker: true,
                seq: 65_535,
                timestamp: 48_000,
                ssrc: 7,
                extension,
            };
            let mut buf = Vec::new();
            let len = header.write(&mut buf);
            assert_eq!(len % 4, 0);
            buf.extend_from_slice(b"opus");
            let p = parse(&buf).expect("valid");
            assert_eq!(
                (p.payload_type, p.marker, p.seq, p.timestamp, p.ssrc),
                (111, true, 65_535, 48_000, 7)
            );
            assert_eq!(p.payload, b"opus");
            let kept = extension.is_some_and(|(id, _)| id <= 14);
            assert_eq!(len > 12, kept, "{extension:?}");
            if let Some((id, value)) = extension.filter(|_| kept) {
                assert_eq!(buf[16], (id << 4) | (value.len() as u8 - 1));
                assert_eq!(&buf[17..17 + value.len()], value);
            }
        }
    }

    #[test]
    fn extends_across_wraparound_and_reordering() {
        let mut e = SeqExtender::default();
        let a = e.extend(65_534);
        assert_eq!(e.extend(65_535), a + 1);
        assert_eq!(e.extend(1), a + 3);
        assert_eq!(e.extend(0), a + 2, "reordered packet across the wrap");
        assert_eq!(e.extend(2), a + 4);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// The extension written the plain way: of the numbers that end in `seq`, the one within
        /// [−2¹⁵, 2¹⁵) of the highest so far; the first starts one cycle up.
        fn reference(highest: &mut Option<i128>, seq: u16) -> u64 {
            let seq = i128::from(seq);
            let ext = match *highest {
                None => 65_536 + seq,
                Some(h) => {
                    let base = h - h.rem_euclid(65_536);
                    let ext = [base - 65_536 + seq, base + seq, base + 65_536 + seq]
                        .into_iter()
                        .find(|v| (-32_768..32_768).contains(&(v - h)));
                    ext.unwrap_or(i128::MIN)
                }
            };
            *highest = Some(highest.map_or(ext, |h| h.max(ext)));
            ext as u64
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Any 16-bit sequence numbers at all: the extender and the reference agree.
            #[test]
            fn the_extender_agrees_with_the_reference(seqs in proptest::collection::vec(any::<u16>(), 1..400)) {
                let mut extender = SeqExtender::default();
                let mut highest = None;
                for seq in seqs {
                    prop_assert_eq!(extender.extend(seq), reference(&mut highest, seq), "seq {}", seq);
                }
            }

            /// A sender's numbering walked forward with gaps, late packets and duplicates,
            /// across several wraps: the extender recovers it exactly (up to where it starts), so
            /// it is monotone wherever the sender's numbering is.
            #[test]
            fn the_extender_recovers_the_senders_numbering(
                start in any::<u16>(),
                steps in proptest::collection::vec(prop_oneof![6 => 1u64..3, 1 => 3u64..2_000], 1..400),
                late in proptest::collection::vec((0usize..400, 0u64..1_000), 0..60),
            ) {
                let mut truth = Vec::with_capacity(steps.len());
                let mut cursor = u64::from(start) + 100_000;
                for step in steps {
                    cursor += step;
                    truth.push(cursor);
                }
                // Late copies of earlier packets (reordered, or duplicated when already sent).
                for (at, back) in late {
                    let at = at % truth.len();
                    truth.insert(at, truth[at].saturating_sub(back).max(u64::from(start) + 100_000));
                }
                let mut extender = SeqExtender::default();
                let offset = extender.extend(truth[0] as u16).wrapping_sub(truth[0]);
                for seq in &truth[1..] {
                    prop_assert_eq!(extender.extend(*seq as u16), seq.wrapping_add(offset), "seq {}", seq);
                }
            }
        }
    }
}
