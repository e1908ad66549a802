//! The RTP floor: plain RTP datagrams (`media::rtp` parsing, the floor's sender lock and rate
//! limit) into a shard core whose event is in mix mode, so the packets' Opus payloads go through
//! the mixer's jitter buffers and libopus decoders, and out through its encoders.
//!
//! Input: records (see `tolk_fuzz::records`); `op & 3` is the step, `op >> 2` an argument:
//! 0 an RTP datagram on the floor port from address `arg & 3`; 1 time passes (payload: ms; the
//! mixer ticks every 20 ms); 2 an interpreter's packet (payload: RTP) as a booth's shard hands it
//! on, interpreter `arg & 1`; 3 who is on air in French (`arg`: nobody, interpreter 1 or 2,
//! muted or not).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tolk_fuzz::{client, core, flush, lang, layout, millis, records};
use tolk_relay::ids::InterpreterId;
use tolk_relay::media::router::OnAir;
use tolk_relay::media::rtp;
use tolk_relay::media::{Source, SourcePacket};

fuzz_target!(|data: &[u8]| {
    // One shard: it mixes the event.
    let mut core = core(1);
    let layout = layout(true);
    core.open_rtp_floor(&layout);
    let mut now = Instant::now();
    core.set_on_air(&layout.id, &lang("fr"), Some(OnAir { interpreter: InterpreterId(1), muted: false }));
    let mut seqs = [0u64; 2];
    for (op, payload) in records(data) {
        let arg = op >> 2;
        match op & 3 {
            0 => core.on_rtp_datagram(now, &layout.id, client(arg & 3), payload),
            1 => {
                now += millis(payload);
                core.on_timeout(now);
            }
            2 => {
                let Ok(packet) = rtp::parse(payload) else { continue };
                let who = usize::from(arg & 1);
                seqs[who] += 1;
                let packet = SourcePacket {
                    event: layout.id.clone(),
                    source: Source::Booth(InterpreterId(who as i64 + 1)),
                    input: 50 + who as u64,
                    seq: seqs[who],
                    ts: packet.timestamp,
                    marker: packet.marker,
                    payload: packet.payload.into(),
                    received_at: now,
                };
                core.deliver(packet.into(), now);
            }
            _ => {
                let on_air = match arg % 3 {
                    0 => None,
                    n => Some(OnAir { interpreter: InterpreterId(i64::from(n)), muted: arg & 4 != 0 }),
                };
                core.set_on_air(&layout.id, &lang("fr"), on_air);
            }
        }
        flush(&mut core, now);
    }
});
