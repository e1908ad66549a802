//! One recorded channel as a pure state machine: packets come in with when they arrived (samples
//! since the recording's start, the time base every channel of the recording shares) and their
//! position on the channel's line; Ogg bytes come out. Time is an argument; no IO.
//!
//! Placement: a packet follows the one before it by its RTP timestamp, so jitter in arrival does
//! not move it; the line is anchored to the shared time base at its first packet and again
//! whenever timestamps and the clock part by more than [`RESYNC`] (a sender's clock drifting, a
//! line restarted). A gap (nobody sending, a packet lost, a dropped publisher) stays a gap in
//! time, filled with whole frames of silence so players keep time; less than half a frame is
//! jitter (the new voice after a handover follows the last packet of the old one, with no
//! silence between: seamless in the file as on the line). With no packets at all the file is
//! still filled up to [`LATENESS`] behind the clock.
//!
//! Consent: a packet spoken by an on-air interpreter who has not agreed to be recorded is
//! written as silence of the same length. Who was on air is kept as stretches.

use std::sync::Arc;

use crate::ids::InterpreterId;
use crate::recording::ogg::OggStream;
use crate::recording::opus::silence_for;

/// How far timestamps and the clock may part before the line is anchored again: 100 ms.
pub(crate) const RESYNC: u64 = 4_800;
/// How far behind the clock silence is filled when nothing arrives: 200 ms (a packet later than
/// this is written after the filled silence, not in place).
pub(crate) const LATENESS: u64 = 9_600;
/// One 20 ms frame, and half of one, in samples.
const FRAME: u64 = 960;
const HALF_FRAME: u64 = 480;
/// Samples per millisecond.
pub(crate) const PER_MS: u64 = 48;

/// Who was on air in a channel over a stretch of the recording (samples on its time base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stretch {
    pub interpreter: InterpreterId,
    /// Whether they had agreed to be recorded (if not, the stretch is silence in the file).
    pub consent: bool,
    pub from: u64,
    pub to: Option<u64>,
}

/// A packet held until the line is anchored.
#[derive(Debug)]
struct Held {
    arrived: u64,
    ts: u32,
    payload: Vec<u8>,
    samples: u32,
    withhold: bool,
}

/// What the track did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    Written,
    /// Earlier than what is already written (a duplicate, or later than [`LATENESS`] and
    /// overtaken by silence entirely): dropped.
    Late,
}

/// One channel's file being made.
#[derive(Debug)]
pub(crate) struct Track {
    stream: OggStream,
    /// End of what is written (the next packet's position).
    next: u64,
    /// Position and timestamp of the line's anchor packet.
    anchor: Option<(u64, u32)>,
    /// Bytes for the file, not yet taken.
    out: Vec<u8>,
    stretch: Option<Stretch>,
    closed: Vec<Stretch>,
    /// The voice changed (a handover, the floor back): the next packet follows the last one.
    follow: bool,
    /// The line's first packets, until it is anchored.
    held: Vec<Held>,
    /// Samples of silence written for gaps, and in place of voices without consent.
    pub(crate) filled: u64,
    pub(crate) withheld: u64,
    fill: Vec<(u32, Arc<[u8]>)>,
}

impl Track {
    /// A track whose file starts with the Opus headers (`tags`: `KEY=value` comments).
    pub(crate) fn new(serial: u32, tags: &[String]) -> Self {
        let mut stream = OggStream::new(serial);
        let out = stream.opus_headers(tags);
        Self {
            stream,
            next: 0,
            anchor: None,
            out,
            stretch: None,
            closed: Vec::new(),
            follow: false,
            held: Vec::new(),
            filled: 0,
            withheld: 0,
            fill: Vec::new(),
        }
    }

    /// Where the last page made ends (what a file holding every page taken so far plays to).
    pub(crate) fn paged(&self) -> u64 {
        self.stream.paged()
    }

    /// The recording's length so far, in samples.
    pub(crate) fn position(&self) -> u64 {
        self.next
    }

    /// Who is on air for the packets that follow (`None`: nobody, the channel carries the floor).
    /// A change closes the stretch before it.
    pub(crate) fn on_air(&mut self, who: Option<(InterpreterId, bool)>, at: u64) {
        let same = match (&self.stretch, who) {
            (Some(s), Some((interpreter, consent))) => s.interpreter == interpreter && s.consent == consent,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(mut open) = self.stretch.take() {
            open.to = Some(at.max(open.from));
            self.closed.push(open);
        }
        self.follow = true;
        self.stretch = who.map(|(interpreter, consent)| Stretch { interpreter, consent, from: at, to: None });
    }

    /// The stretch open now, if someone is on air.
    pub(crate) fn open_stretch(&self) -> Option<&Stretch> {
        self.stretch.as_ref()
    }

    /// Stretches closed since the last call.
    pub(crate) fn take_closed(&mut self) -> Vec<Stretch> {
        std::mem::take(&mut self.closed)
    }

    /// Place one packet that arrived at `arrived` (samples on the time base), at `ts` on its
    /// channel's line, lasting `samples`. `withhold`: write silence of its length instead.
    ///
    /// The line's first [`LATENESS`] of packets are held, and the line anchored where the least
    /// delayed of them says (a first packet that waited for a busy thread does not shift the
    /// whole line late).
    pub(crate) fn packet(
        &mut self,
        arrived: u64,
        ts: u32,
        payload: &[u8],
        samples: u32,
        withhold: bool,
    ) -> Placed {
        if self.anchor.is_none() {
            self.held.push(Held { arrived, ts, payload: payload.to_vec(), samples, withhold });
            if arrived.saturating_sub(self.held[0].arrived) >= LATENESS {
                self.release();
            }
            return Placed::Written;
        }
        self.place(arrived, ts, payload, samples, withhold)
    }

    /// Anchor the line on its held packets and write them.
    fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        let Some(first) = held.first() else { return };
        let ts0 = first.ts;
        let earliest = held
            .iter()
            .map(|h| h.arrived as i64 - i64::from(h.ts.wrapping_sub(ts0) as i32))
            .min()
            .unwrap_or(first.arrived as i64);
        self.anchor = Some((earliest.max(0) as u64, ts0));
        self.follow = false;
        for h in held {
            self.place(h.arrived, h.ts, &h.payload, h.samples, h.withhold);
        }
    }

    fn place(&mut self, arrived: u64, ts: u32, payload: &[u8], samples: u32, withhold: bool) -> Placed {
        let by_line = self.anchor.map(|(at, anchor_ts)| {
            let delta = i64::from(ts.wrapping_sub(anchor_ts) as i32);
            at.saturating_add_signed(delta)
        });
        let at = match by_line {
            Some(at) if at.abs_diff(arrived) <= RESYNC => at,
            _ => {
                self.anchor = Some((arrived, ts));
                arrived
            }
        };
        // The first packet of a new voice: the line's timestamps stepped by the wall time since
        // the old voice's last packet (at least a frame, more by the two microphones' phase and
        // jitter); in the file it follows on, as listeners hear it through their jitter buffer.
        let at = if std::mem::take(&mut self.follow) && at > self.next && at - self.next <= RESYNC {
            self.anchor = Some((self.next, ts));
            self.next
        } else {
            at
        };
        if at + u64::from(samples) <= self.next {
            return Placed::Late;
        }
        // Less than half a frame off is jitter (a handover's new voice, a packet late by a few
        // ms): the packet follows the one before, with no silence between. More is a gap,
        // filled with whole frames of silence, so the line stays within 10 ms of its place.
        if at > self.next + HALF_FRAME {
            let frames = (at - self.next + HALF_FRAME) / FRAME;
            self.silence(frames * FRAME);
        }
        if withhold {
            self.withheld += u64::from(samples);
            let mut fill = std::mem::take(&mut self.fill);
            silence_for(u64::from(samples), &mut fill);
            for (n, packet) in fill.drain(..) {
                self.write(&packet, n);
            }
            self.fill = fill;
        } else {
            self.write(payload, samples);
        }
        Placed::Written
    }

    /// Nothing arrived: fill silence up to [`LATENESS`] behind `now` (samples on the time base).
    pub(crate) fn keep_time(&mut self, now: u64) {
        if let Some(first) = self.held.first() {
            if now.saturating_sub(first.arrived) < LATENESS {
                return; // the line's first packets wait for their anchor
            }
            self.release();
        }
        let until = now.saturating_sub(LATENESS);
        if until > self.next {
            self.silence(until - self.next);
        }
    }

    /// Fill silence to `until` and close the stream (the recording stops at `until`).
    pub(crate) fn finish(&mut self, until: u64) {
        self.release();
        if until > self.next {
            self.silence(until - self.next);
        }
        self.on_air(None, self.next);
        self.stream.page(true, &mut self.out);
    }

    /// Close the open page (at least once a second, so a crash loses at most that much).
    pub(crate) fn page(&mut self) {
        self.stream.page(false, &mut self.out);
    }

    /// Bytes ready for the file.
    pub(crate) fn take_bytes(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.out);
    }

    fn silence(&mut self, samples: u64) {
        let mut fill = std::mem::take(&mut self.fill);
        silence_for(samples, &mut fill);
        for (n, packet) in fill.drain(..) {
            self.filled += u64::from(n);
            self.write(&packet, n);
        }
        self.fill = fill;
    }

    fn write(&mut self, packet: &[u8], samples: u32) {
        if !self.stream.fits(packet.len()) {
            self.stream.page(false, &mut self.out);
        }
        self.next += u64::from(samples);
        self.stream.push(packet, self.next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::ogg::pages;
    use crate::recording::opus::packet_samples;

    /// A 20 ms CELT packet that is not silence: config 31, code 0, some bytes.
    fn voice(tag: u8) -> Vec<u8> {
        vec![0xf8, tag, tag, tag]
    }

    /// The packets of a finished track's file, with their end positions.
    fn packets(track: &mut Track) -> Vec<(Vec<u8>, u64)> {
        let mut file = Vec::new();
        track.take_bytes(&mut file);
        let mut found = Vec::new();
        let mut position = 0;
        for page in pages(&file).iter().skip(2) {
            let segments = usize::from(file[page.at + 26]);
            let lacing = &file[page.at + 27..page.at + 27 + segments];
            let mut body = page.at + 27 + segments;
            let mut packet = Vec::new();
            for &l in lacing {
                packet.extend_from_slice(&file[body..body + usize::from(l)]);
                body += usize::from(l);
                if l < 255 {
                    position += u64::from(packet_samples(&packet).expect("opus"));
                    found.push((std::mem::take(&mut packet), position));
                }
            }
            assert_eq!(page.granule, position, "each page's granule is where its last packet ends");
        }
        found
    }

    #[test]
    fn a_steady_line_is_written_in_order_whatever_the_jitter() {
        let mut track = Track::new(1, &[]);
        for i in 0..50u32 {
            let jitter = u64::from(i % 3) * 5 * PER_MS;
            let placed =
                track.packet(1000 + u64::from(i) * 960 + jitter, 7 + i * 960, &voice(i as u8), 960, false);
            assert_eq!(placed, Placed::Written);
        }
        track.finish(0);
        let written = packets(&mut track);
        let voices: Vec<_> = written.iter().filter(|(p, _)| p[0] == 0xf8 && p.len() == 4).collect();
        assert_eq!(voices.len(), 50);
        // The line starts where its first packet arrived (1000 samples, filled to 960 at most).
        assert_eq!(voices[0].1 - 960, 960, "the first packet after ~1000 samples of silence");
        assert_eq!(track.filled, 960);
    }

    #[test]
    fn a_handover_a_few_ms_late_follows_without_silence() {
        let mut track = Track::new(1, &[]);
        track.packet(0, 0, &voice(1), 960, false);
        track.packet(960, 960, &voice(1), 960, false);
        track.release();
        // The new voice's first packet, 5 ms after a frame (Continuity advanced the line by the
        // wall time that passed): no 5 ms of silence before it.
        track.packet(1920 + 240, 1920 + 240, &voice(2), 960, false);
        track.packet(2880 + 240, 2880 + 240, &voice(2), 960, false);
        assert_eq!(track.filled, 0);
        assert_eq!(track.position(), 4 * 960);
        // A handover whose new voice comes 35 ms after the old one's last packet: it follows on
        // (the line stepped by 35 ms; listeners' jitter buffers play through it).
        track.on_air(Some((InterpreterId(2), true)), track.position());
        let step = 4 * 960 + 240 + 1680;
        track.packet(step, step as u32, &voice(3), 960, false);
        track.packet(step + 960, step as u32 + 960, &voice(3), 960, false);
        assert_eq!(track.filled, 0, "no silence at the handover");
        assert_eq!(track.position(), 6 * 960);
        // A packet lost later in the same voice stays a gap.
        track.packet(step + 3 * 960, step as u32 + 3 * 960, &voice(3), 960, false);
        assert_eq!(track.filled, 960);
    }

    #[test]
    fn the_line_is_anchored_where_its_least_delayed_first_packet_says() {
        let mut track = Track::new(1, &[]);
        // Sent from 100 ms on; the first packet waited 30 ms for a busy thread, the rest did not.
        let start = 4800;
        track.packet(start + 1440, 0, &voice(1), 960, false);
        for i in 1..13u32 {
            track.packet(start + u64::from(i) * 960, i * 960, &voice(1), 960, false);
        }
        assert_eq!(track.anchor.map(|a| a.0), Some(start), "anchored at the true start");
        track.finish(0);
        let written = packets(&mut track);
        let first = written.iter().find(|(p, _)| p == &voice(1)).expect("written");
        assert_eq!(first.1 - 960, start, "the first packet where it was sent");
    }

    #[test]
    fn a_gap_in_the_source_stays_a_gap_in_time() {
        let mut track = Track::new(1, &[]);
        track.packet(0, 0, &voice(1), 960, false);
        track.packet(960, 960, &voice(2), 960, false);
        // Two seconds with nothing: the clock keeps the file going, 200 ms behind.
        track.keep_time(960 * 2 + 96_000);
        assert_eq!(track.position(), 1920 + 96_000 - LATENESS);
        // The line resumes (timestamps jumped with the gap, as Continuity maps them).
        let resume = 1920 + 96_000;
        track.packet(resume + 300, resume as u32, &voice(3), 960, false);
        track.finish(0);
        let written = packets(&mut track);
        let third = written.iter().find(|(p, _)| p == &voice(3)).expect("written");
        assert_eq!(third.1 - 960, resume, "the voice resumes at its time");
    }

    #[test]
    fn a_drifting_sender_is_anchored_again() {
        let mut track = Track::new(1, &[]);
        // Timestamps run 1 % fast against the clock: after 10 s they are 100 ms ahead.
        let mut anchors = 0;
        let mut last_at = 0;
        for i in 0..600u64 {
            let arrived = i * 960;
            let ts = (i * 960 * 101 / 100) as u32;
            track.packet(arrived, ts, &voice(1), 960, false);
            let Some((at, _)) = track.anchor else { continue };
            if at != last_at {
                anchors += 1;
                last_at = at;
            }
        }
        assert!(anchors >= 1, "anchored again when ahead by more than 100 ms");
        assert!(track.position().abs_diff(599 * 960) <= RESYNC + 960, "the file keeps to the clock");
    }

    #[test]
    fn late_and_duplicate_packets_are_dropped() {
        let mut track = Track::new(1, &[]);
        track.packet(0, 0, &voice(1), 960, false);
        track.packet(960, 960, &voice(2), 960, false);
        track.release();
        assert_eq!(track.packet(960, 960, &voice(2), 960, false), Placed::Late);
        assert_eq!(track.packet(0, 0, &voice(1), 960, false), Placed::Late);
    }

    #[test]
    fn without_consent_the_voice_is_silence_of_the_same_length_and_stretches_are_kept() {
        let ana = InterpreterId(1);
        let ben = InterpreterId(2);
        let mut track = Track::new(1, &[]);
        track.on_air(Some((ana, false)), 0);
        for i in 0..5u32 {
            track.packet(u64::from(i) * 960, i * 960, &voice(1), 960, true);
        }
        track.on_air(Some((ben, true)), 5 * 960);
        for i in 5..10u32 {
            track.packet(u64::from(i) * 960, i * 960, &voice(2), 960, false);
        }
        track.finish(0);
        let written = packets(&mut track);
        assert_eq!(written.len(), 10);
        assert!(written[..5].iter().all(|(p, _)| p != &voice(1)), "Ana is not in the file");
        assert!(written[5..].iter().all(|(p, _)| p == &voice(2)), "Ben is");
        assert_eq!(written[9].1, 9600, "the same length either way");
        assert_eq!(track.withheld, 5 * 960);
        let stretches = track.take_closed();
        assert_eq!(
            stretches,
            [
                Stretch { interpreter: ana, consent: false, from: 0, to: Some(4800) },
                Stretch { interpreter: ben, consent: true, from: 4800, to: Some(9600) },
            ]
        );
    }
}
