//! The shard's datagram entry: STUN, DTLS, SRTP/SRTCP and junk from many addresses into a shard
//! core with joined peers, on simulated time.
//!
//! Input: a setup byte (bit 0: a floor publisher joins too, bit 1: a booth; bit 2: a real str0m
//! client joins as a listener from address 3 and completes its handshake first, bit 3: and
//! stays until the core settles it, so datagrams reach a connected and a settled peer), then
//! records (see `tolk_fuzz::records`); `op & 7` is the step, `op >> 3` an address (0..=2 are the
//! scripted peers' own, 3 the real client's, the rest strangers):
//! 0 a datagram from that address; 1 a STUN binding request signed with a peer's ICE password
//! (payload: `[nominate?, their ufrag…]`), as a browser's first check; 2 time passes
//! (payload: ms); 3 time jumps to the core's next deadline; 4 a floor packet to fan out
//! (payload: its Opus bytes); 5 an interpreter goes on or off air in French; 6 the listener
//! switches channel; 7 a session ends.
#![allow(clippy::expect_used)] // A harness whose own setup fails must stop loudly: that is a finding too.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tolk_fuzz::{
    OFFER_RECVONLY, OFFER_SENDONLY, OFFER_SENDRECV, client, connect_listener, core, flush, lang, layout,
    millis, records,
};
use tolk_relay::ids::{InterpreterId, SessionId};
use tolk_relay::media::router::OnAir;
use tolk_relay::media::{Source, SourcePacket};
use tolk_relay::net::Join;
use tolk_relay::net::settled::binding_request;

fuzz_target!(|data: &[u8]| {
    let Some((&setup, data)) = data.split_first() else { return };
    let mut core = core(2);
    let layout = layout(false);
    let mut now = Instant::now();
    let mut sessions: Vec<SessionId> = Vec::new();
    let mut joins = vec![(Join::Listen { language: lang("fr") }, OFFER_RECVONLY)];
    if setup & 1 != 0 {
        joins.push((Join::Floor { input: 100 }, OFFER_SENDONLY));
    }
    if setup & 2 != 0 {
        let booth = Join::Booth {
            interpreter: InterpreterId(1),
            input: 101,
            listen_to: lang("en"),
            booth: lang("fr"),
        };
        joins.push((booth, OFFER_SENDRECV));
    }
    for (join, offer) in joins {
        let session = SessionId::generate();
        core.join(now, layout.clone(), session.clone(), join, offer).expect("str0m's own offer is accepted");
        sessions.push(session);
    }
    flush(&mut core, now);
    if setup & 4 != 0 {
        let live = connect_listener(&mut core, &layout, &mut now, client(3), setup & 8 != 0);
        sessions.push(live.expect("a str0m client connects through the core"));
    }
    let mut seq = 0u64;
    for (op, payload) in records(data) {
        let address = op >> 3;
        let from = client(address);
        let who = &sessions[usize::from(address) % sessions.len()];
        match op & 7 {
            0 => core.on_datagram(now, from, payload),
            1 => {
                let peers = core.peers();
                let Some(peer) = peers.slot_of_session(who).and_then(|slot| peers.get(slot)) else {
                    continue;
                };
                let (nominate, theirs) =
                    payload.split_first().map_or((true, &b"fuzz"[..]), |(n, t)| (n & 1 == 1, t));
                let username = format!("{}:{}", peer.ufrag, String::from_utf8_lossy(theirs));
                let check = binding_request(&username, peer.ice_password(), nominate);
                core.on_datagram(now, from, &check);
            }
            2 => {
                now += millis(payload);
                core.on_timeout(now);
            }
            3 => {
                if let Some(at) = core.poll_timeout() {
                    now = at.clamp(now, now + Duration::from_secs(60));
                }
                core.on_timeout(now);
            }
            4 => {
                seq += 1;
                let packet = SourcePacket {
                    event: layout.id.clone(),
                    source: Source::Floor,
                    input: 7,
                    seq,
                    ts: (seq as u32).wrapping_mul(960),
                    marker: false,
                    payload: payload.into(),
                    received_at: now,
                };
                core.deliver(packet.into(), now);
            }
            5 => {
                let on_air = (address & 1 == 1)
                    .then_some(OnAir { interpreter: InterpreterId(1), muted: address & 2 != 0 });
                core.set_on_air(&layout.id, &lang("fr"), on_air);
            }
            6 => {
                let language = ["en", "fr", "de"][usize::from(address) % 3];
                let _ = core.switch(&sessions[0], usize::from(address >> 2) % 2, &lang(language));
            }
            _ => {
                let _ = core.end_session(who);
            }
        }
        flush(&mut core, now);
    }
});
