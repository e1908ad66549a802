//! What the fuzz targets share: the record format their inputs are split into, and a shard core
//! set up as the relay sets one up.
//!
//! A record is `[op: u8][len: u16 big-endian][len bytes]`; a short last record takes what is
//! left. The targets give `op` its meaning (which address, which kind of step).
#![allow(clippy::expect_used)] // A harness whose own setup fails must stop loudly: that is a finding too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tolk_relay::ids::{EventId, Language, SessionId};
use tolk_relay::media::mixer::MixSettings;
use tolk_relay::net::EventLayout;
use tolk_relay::net::Join;
use tolk_relay::net::core::{CoreConfig, FLUSH_AT, ShardCore};
use tolk_relay::net::settled::SETTLE_AFTER;

/// A WHEP offer (one receive-only Opus section), as str0m makes it.
pub const OFFER_RECVONLY: &str = include_str!("../data/offer-recvonly.sdp");
/// A WHIP offer (one send-only Opus section), as str0m makes it.
pub const OFFER_SENDONLY: &str = include_str!("../data/offer-sendonly.sdp");

/// A booth's offer (one send-receive Opus section), as str0m makes it.
pub const OFFER_SENDRECV: &str = include_str!("../data/offer-sendrecv.sdp");

/// The relay's address in the core's candidates.
pub const RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 4000);

/// Client address `i` (0..=255).
pub fn client(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 5000 + u16::from(i))
}

/// Split `data` into records `(op, payload)`.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&op, rest) = data.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => rest.len(),
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (payload, next) = rest.split_at(len.min(rest.len()));
        data = next;
        Some((op, payload))
    })
}

/// One record, written in the format [`records`] reads (for seed generators and tests).
pub fn record(op: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = vec![op];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}

/// `ms` milliseconds as the first two payload bytes say (0 when absent).
pub fn millis(payload: &[u8]) -> Duration {
    let ms = match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        [a] => u16::from(*a),
        [] => 0,
    };
    Duration::from_millis(u64::from(ms))
}

/// A language code the layouts use.
pub fn lang(code: &str) -> Language {
    Language::parse(code).expect("a valid language code")
}

/// The event every target's core serves: floor in English, French and German channels;
/// mix mode (the floor under the voice, decoded and re-encoded) when `mix`.
pub fn layout(mix: bool) -> Arc<EventLayout> {
    Arc::new(EventLayout {
        id: EventId::parse("fuzz").expect("a valid event id"),
        floor: lang("en"),
        languages: vec![lang("fr"), lang("de")],
        rtp_allow: Default::default(),
        mix: mix.then(MixSettings::default),
        cascaded: false,
        relayed: false,
    })
}

/// A shard core as a relay of `shards` shards makes it (shard 0), Tolk's own SRTP on.
pub fn core(shards: usize) -> ShardCore {
    ShardCore::new(
        CoreConfig {
            index: 0,
            shards,
            candidates: vec![RELAY],
            connect_timeout: Duration::from_secs(10),
            direct_srtp: true,
            flush_at: FLUSH_AT,
        },
        Arc::new(AtomicU64::new(1)),
    )
}

/// Do what a driver does after each call: send the batch (here: drop it), resume a paused
/// fan-out, forget forwarded packets and ended sessions.
pub fn flush(core: &mut ShardCore, now: Instant) {
    loop {
        core.outbox().send.drain().for_each(drop);
        if !core.fanout_paused() {
            break;
        }
        core.resume(now);
    }
    core.outbox().forward.clear();
    core.outbox().ended.clear();
}

/// A str0m client (a browser's part) joins the core as a listener at `addr` and runs its whole
/// handshake with it (ICE, DTLS, SRTP keys) on simulated time, until connected, or with `settle`
/// until the core has dropped the peer's engine (its consent checks answered by the core
/// itself). The fuzz input then reaches a connected peer's paths. None if it did not connect.
pub fn connect_listener(
    core: &mut ShardCore,
    layout: &Arc<EventLayout>,
    now: &mut Instant,
    addr: SocketAddr,
    settle: bool,
) -> Option<SessionId> {
    let mut rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(*now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").ok()?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply()?;
    let session = SessionId::generate();
    let join = Join::Listen { language: lang("fr") };
    let joined = core.join(*now, layout.clone(), session.clone(), join, &offer.to_sdp_string()).ok()?;
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&joined.answer).ok()?).ok()?;
    let until = *now + if settle { SETTLE_AFTER + Duration::from_secs(1) } else { Duration::from_secs(5) };
    let mut connected = false;
    while *now < until && (settle || !connected) {
        let mut client_next = *now + Duration::from_millis(50);
        for _ in 0..100 {
            let mut sent = 0;
            loop {
                match rtc.poll_output().ok()? {
                    Output::Timeout(t) => {
                        client_next = t;
                        break;
                    }
                    Output::Transmit(t) => {
                        core.on_datagram(*now, addr, &t.contents);
                        sent += 1;
                    }
                    Output::Event(Event::Connected) => connected = true,
                    Output::Event(_) => {}
                }
            }
            let datagrams: Vec<_> = core.outbox().send.drain().filter(|(to, _)| *to == addr).collect();
            for (to, data) in &datagrams {
                let receive = Receive::new(Protocol::Udp, RELAY, *to, data).ok()?;
                rtc.handle_input(Input::Receive(*now, receive)).ok()?;
            }
            if sent == 0 && datagrams.is_empty() {
                break;
            }
        }
        let next = core.poll_timeout().map_or(client_next, |t| t.min(client_next));
        *now = next.clamp(*now + Duration::from_millis(1), *now + Duration::from_millis(50));
        rtc.handle_input(Input::Timeout(*now)).ok()?;
        core.on_timeout(*now);
    }
    flush(core, *now);
    connected.then_some(session)
}
