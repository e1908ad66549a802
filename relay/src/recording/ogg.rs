//! Ogg pages (RFC 3533) carrying one Opus stream (RFC 7845), built in memory: the recorder hands
//! packets with their end position and asks for a page when it wants one on disk. No IO here.
//!
//! A packet never spans two pages (an Opus packet is far below a page's 255 × 255 bytes), so every
//! page written ends a packet and carries a granule position: a file cut after any whole page is
//! a whole stream that plays.

/// Page header flags.
const CONTINUED: u8 = 0x01;
const FIRST: u8 = 0x02;
const LAST: u8 = 0x04;
/// The most lacing values a page holds.
const MAX_SEGMENTS: usize = 255;
/// Pre-skip (RFC 7845 §4.2): what a player drops from the decoder's output before position 0.
/// Tolk does not encode a pass-through channel, so the sender's encoder delay is not known;
/// this is libopus's (312 samples, 6.5 ms, what browsers send with), so that a voice is played
/// at the time it was spoken. The file starts with the recording's own silence, so nothing
/// spoken is dropped.
pub(crate) const PRE_SKIP: u16 = 312;
/// Fixed part of a page header, before the lacing values.
pub(crate) const HEADER: usize = 27;

/// The Ogg CRC-32 (polynomial 0x04c11db7, not reflected, initial value and final XOR zero).
pub(crate) fn crc(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04c1_1db7 } else { r << 1 };
            }
            *entry = r;
        }
        table
    });
    data.iter().fold(0u32, |crc, &b| (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize])
}

/// One logical Ogg stream being written.
#[derive(Debug)]
pub(crate) struct OggStream {
    serial: u32,
    sequence: u32,
    lacing: Vec<u8>,
    body: Vec<u8>,
    /// Granule position at the end of the last packet put on the open page.
    granule: u64,
    packets: usize,
    /// Granule position of the last page made.
    paged: u64,
}

impl OggStream {
    pub(crate) fn new(serial: u32) -> Self {
        Self { serial, sequence: 0, lacing: Vec::new(), body: Vec::new(), granule: 0, packets: 0, paged: 0 }
    }

    /// The two header pages of an Opus stream (RFC 7845 §5): the identification header alone on
    /// the first page, the comment header (`tags` as `KEY=value`) on the second.
    pub(crate) fn opus_headers(&mut self, tags: &[String]) -> Vec<u8> {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // output channels: mono (stereo packets are downmixed by decoders)
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family 0
        let mut comments = Vec::new();
        comments.extend_from_slice(b"OpusTags");
        let vendor = concat!("Tolk ", env!("CARGO_PKG_VERSION"));
        comments.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        comments.extend_from_slice(vendor.as_bytes());
        comments.extend_from_slice(&(tags.len() as u32).to_le_bytes());
        for tag in tags {
            comments.extend_from_slice(&(tag.len() as u32).to_le_bytes());
            comments.extend_from_slice(tag.as_bytes());
        }
        let mut out = Vec::new();
        self.push(&head, 0);
        self.page_into(FIRST, &mut out);
        self.push(&comments, 0);
        self.page_into(0, &mut out);
        out
    }

    /// Whether `len` more bytes fit on the open page.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.lacing.len() + len / 255 < MAX_SEGMENTS
    }

    /// Put a packet on the open page; `granule` is the stream's position at its end. The caller
    /// makes room first ([`OggStream::fits`], [`OggStream::page`]).
    pub(crate) fn push(&mut self, packet: &[u8], granule: u64) {
        let mut left = packet.len();
        while left >= 255 {
            self.lacing.push(255);
            left -= 255;
        }
        self.lacing.push(left as u8);
        self.body.extend_from_slice(packet);
        self.granule = granule;
        self.packets += 1;
    }

    /// Granule position of the last page made.
    pub(crate) fn paged(&self) -> u64 {
        self.paged
    }

    /// Close the open page (if it holds a packet, or `last` is asked) and append it to `out`;
    /// `last` marks the end of the stream.
    pub(crate) fn page(&mut self, last: bool, out: &mut Vec<u8>) {
        if self.packets > 0 || last {
            self.page_into(if last { LAST } else { 0 }, out);
        }
    }

    fn page_into(&mut self, flags: u8, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"OggS");
        out.push(0);
        out.push(flags & !CONTINUED);
        out.extend_from_slice(&self.granule.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(self.lacing.len() as u8);
        out.extend_from_slice(&self.lacing);
        out.extend_from_slice(&self.body);
        let sum = crc(&out[start..]);
        out[start + 22..start + 26].copy_from_slice(&sum.to_le_bytes());
        self.sequence += 1;
        self.paged = self.granule;
        self.lacing.clear();
        self.body.clear();
        self.packets = 0;
    }
}

/// One page read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page {
    pub flags: u8,
    pub granule: u64,
    pub serial: u32,
    pub sequence: u32,
    /// Where the page starts and how long it is.
    pub at: usize,
    pub len: usize,
}

impl Page {
    pub(crate) fn is_last(&self) -> bool {
        self.flags & LAST != 0
    }
}

/// The whole pages with a good checksum at the start of `data`, in order; reading stops at the
/// first torn or damaged page.
pub(crate) fn pages(data: &[u8]) -> Vec<Page> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(page) = page_at(data, at) {
        at += page.len;
        found.push(page);
    }
    found
}

fn page_at(data: &[u8], at: usize) -> Option<Page> {
    let header = data.get(at..at + HEADER)?;
    if &header[..4] != b"OggS" || header[4] != 0 {
        return None;
    }
    let segments = usize::from(header[26]);
    let lacing = data.get(at + HEADER..at + HEADER + segments)?;
    let len = HEADER + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
    let page = data.get(at..at + len)?;
    let mut copy = page.to_vec();
    copy[22..26].fill(0);
    let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
    if crc(&copy) != stored {
        return None;
    }
    let word = |range: std::ops::Range<usize>| u32::from_le_bytes(header[range].try_into().unwrap_or([0; 4]));
    Some(Page {
        flags: header[5],
        granule: u64::from_le_bytes(header[6..14].try_into().unwrap_or([0; 8])),
        serial: word(14..18),
        sequence: word(18..22),
        at,
        len,
    })
}

/// `page` again with the end-of-stream flag set (a file cut by a crash is closed with it).
pub(crate) fn marked_last(page: &[u8]) -> Vec<u8> {
    let mut copy = page.to_vec();
    if copy.len() >= HEADER {
        copy[5] |= LAST;
        copy[22..26].fill(0);
        let sum = crc(&copy);
        copy[22..26].copy_from_slice(&sum.to_le_bytes());
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_ogg_s() {
        // The CRC of a page checked against libogg's by reading one back: a known vector.
        assert_eq!(crc(b""), 0);
        assert_eq!(crc(b"123456789"), 0x89a1_897f, "CRC-32/MPEG-2 without the inversions");
    }

    #[test]
    fn pages_round_trip_with_lacing_granules_and_flags() {
        let mut stream = OggStream::new(7);
        let mut file = stream.opus_headers(&["LANGUAGE=fr".into()]);
        let big = vec![9u8; 600]; // three lacing values: 255, 255, 90
        stream.push(&[1, 2, 3], 960);
        stream.push(&big, 1920);
        stream.page(false, &mut file);
        stream.push(&[4], 2880);
        stream.page(true, &mut file);
        let found = pages(&file);
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].flags, FIRST);
        assert_eq!(&file[found[0].at + 28..found[0].at + 36], b"OpusHead");
        assert_eq!(found.iter().map(|p| p.sequence).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(found[2].granule, 1920);
        assert_eq!(file[found[2].at + 26], 4, "one value for the small packet, three for the big one");
        assert!(found[3].is_last() && found[3].granule == 2880);
        assert!(found.iter().all(|p| p.serial == 7));
    }

    #[test]
    fn a_torn_or_damaged_page_ends_the_reading() {
        let mut stream = OggStream::new(1);
        let mut file = stream.opus_headers(&[]);
        stream.push(&[1; 50], 960);
        stream.page(false, &mut file);
        let whole = file.len();
        assert_eq!(pages(&file[..whole - 1]).len(), 2, "torn: the last page is not read");
        let mut damaged = file.clone();
        damaged[whole - 3] ^= 0xff;
        assert_eq!(pages(&damaged).len(), 2, "a bad checksum ends it");
        let last = pages(&file).pop().expect("pages");
        let sealed = marked_last(&file[last.at..]);
        let found = pages(&sealed);
        assert!(found.len() == 1 && found[0].is_last());
    }

    #[test]
    fn a_full_page_asks_for_room() {
        let mut stream = OggStream::new(1);
        for i in 0..255 {
            assert!(stream.fits(10));
            stream.push(&[0; 10], i * 960);
        }
        assert!(!stream.fits(10));
        let mut out = Vec::new();
        stream.page(false, &mut out);
        assert!(stream.fits(10) && stream.packets == 0);
    }
}
