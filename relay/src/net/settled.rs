//! A listener whose handshake is long done. Once Tolk sends its packets with its own SRTP, a
//! listener's str0m engine has one job left: answering the browser's ICE consent checks
//! (RFC 7675). That is a few lines, so the shard drops the engine (~70 KiB with its buffers) and
//! answers them here with str0m's STUN codec. Everything else a settled listener sends (SRTCP
//! receiver reports, DTLS records) is read and dropped: without the DTLS state nothing here can
//! tell a real close from a forged one, so a listener that leaves without DELETE is dropped when
//! its consent lapses.
//!
//! Consent is per destination (RFC 7675 is per candidate pair): only checks from the address our
//! media goes to keep it. A signed check from another address is answered but keeps nothing.
//! The destination moves only as ICE allows a controlled agent (RFC 8445 §7.3.1.5): the browser
//! nominates the new address (USE-CANDIDATE) *and* the address answers a check of ours, signed
//! with the browser's own ICE password, so it has proved it receives what we send. That is what
//! a NAT rebinding looks like, and what a spoofed source cannot do: a forged nomination towards
//! a victim costs the victim one small STUN request, never media.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use str0m::IceCreds;
use str0m::ice::{StunMessage, TransId};

/// How long a listener may stay silent (no consent check) before it is dropped: the same as
/// while str0m held it.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long after connecting a listener is left to str0m (late DTLS retransmits land there).
pub const SETTLE_AFTER: Duration = Duration::from_secs(3);
/// How long a check of ours waits for its answer before a new nomination may send another.
const PROBE_RETRY: Duration = Duration::from_millis(500);

/// What a settled listener keeps of its ICE: both sides' credentials, where its media goes and
/// when that address last proved it wants it.
#[derive(Debug)]
pub struct Settled {
    password: String,
    /// The browser's ICE credentials (from its offer): our own checks are signed with them.
    remote: IceCreds,
    ufrag: String,
    destination: SocketAddr,
    pub last_consent: Instant,
    /// Our check on a newly nominated address, waiting for its answer.
    probe: Option<Probe>,
}

#[derive(Debug)]
struct Probe {
    to: SocketAddr,
    transaction: TransId,
    sent: Instant,
}

/// What a datagram from a settled listener asks of the shard: datagrams to send (an answer to
/// the source, a check of ours), and whether the destination moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SettledInput {
    pub send: Vec<(SocketAddr, Vec<u8>)>,
    pub moved: bool,
}

/// Whether `data` is a STUN binding request carrying a valid MESSAGE-INTEGRITY for `password`
/// (our ICE password): only such a check may point a new address at a peer.
pub fn is_check_for(data: &[u8], password: &str) -> bool {
    StunMessage::parse(data).is_ok_and(|m| m.is_binding_request() && m.verify(password.as_bytes(), hmac_sha1))
}

/// A STUN binding request as a client's ICE agent sends it: `username` is
/// `<our ufrag>:<theirs>`, signed with our `password`; `nominate` adds USE-CANDIDATE (for tests
/// and the fuzz targets).
pub fn binding_request(username: &str, password: &str, nominate: bool) -> Vec<u8> {
    controlling_check(username, password, 1, nominate)
}

/// A controlling agent's check with PRIORITY `priority` (a forged nomination in the tests uses
/// the highest).
pub fn controlling_check(username: &str, password: &str, priority: u32, nominate: bool) -> Vec<u8> {
    signed_request(username, password, TransId::new(), true, priority, nominate).unwrap_or_default()
}

/// A binding request signed with `password`; None if it does not encode.
fn signed_request(
    username: &str,
    password: &str,
    transaction: TransId,
    controlling: bool,
    priority: u32,
    nominate: bool,
) -> Option<Vec<u8>> {
    let message = StunMessage::binding_request(username, transaction, controlling, 7, priority, nominate);
    let mut buf = vec![0u8; 256];
    let len = message.to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1).ok()?;
    buf.truncate(len);
    Some(buf)
}

fn hmac_sha1(key: &[u8], chunks: &[&[u8]]) -> [u8; 20] {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut context = hmac::Context::with_key(&key);
    for chunk in chunks {
        context.update(chunk);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(context.sign().as_ref());
    out
}

impl Settled {
    /// A listener settled at `now`, its media going to `destination` (where DTLS ran); `ufrag`
    /// and `password` are ours, `remote` the browser's.
    pub fn new(
        ufrag: String,
        password: String,
        remote: IceCreds,
        destination: SocketAddr,
        now: Instant,
    ) -> Self {
        Self { password, remote, ufrag, destination, last_consent: now, probe: None }
    }

    /// Where the listener's media goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Whether consent for the destination has lapsed at `now`.
    pub fn lapsed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_consent) > CONSENT_TIMEOUT
    }

    /// Handle one datagram from `source` (one of the listener's verified addresses).
    pub fn input(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> SettledInput {
        let mut out = SettledInput::default();
        if !matches!(data.first(), Some(0..=3)) {
            return out;
        }
        let Ok(message) = StunMessage::parse(data) else { return out };
        if message.is_binding_request() {
            if !message.verify(self.password.as_bytes(), hmac_sha1) {
                return out;
            }
            if source == self.destination {
                self.last_consent = now;
            } else if message.use_candidate()
                && self.probe.as_ref().is_none_or(|p| p.to != source || now >= p.sent + PROBE_RETRY)
            {
                // The browser nominates another address: check that it receives what we send.
                if let Some(probe) = self.probe_to(source, now) {
                    out.send.push((source, probe));
                }
            }
            if let Some(answer) = self.answer(&message, source) {
                out.send.insert(0, (source, answer));
            }
        } else if message.is_successful_binding_response()
            && let Some(probe) = &self.probe
            && probe.to == source
            && probe.transaction == message.trans_id()
            && message.verify(self.remote.pass.as_bytes(), hmac_sha1)
        {
            self.destination = source;
            self.last_consent = now;
            self.probe = None;
            out.moved = true;
        }
        out
    }

    fn answer(&self, request: &StunMessage<'_>, source: SocketAddr) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 128];
        let len = StunMessage::binding_reply(request.trans_id(), source)
            .to_bytes(Some(self.password.as_bytes()), &mut buf, hmac_sha1)
            .ok()?;
        buf.truncate(len);
        Some(buf)
    }

    /// Our own check towards `to`, as the controlled agent, signed with the browser's password.
    fn probe_to(&mut self, to: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        let transaction = TransId::new();
        let username = format!("{}:{}", self.remote.ufrag, self.ufrag);
        let check = signed_request(&username, &self.remote.pass, transaction, false, PROBE_PRIORITY, false)?;
        self.probe = Some(Probe { to, transaction, sent: now });
        Some(check)
    }
}

/// The PRIORITY of our checks: a host candidate's (type preference 126, one component).
const PROBE_PRIORITY: u32 = (126 << 24) | (65535 << 8) | 255;

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "secret-password-of-ours";
    const THEIRS: &str = "the-browsers-own-password";

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], port))
    }

    fn settled(now: Instant) -> Settled {
        let remote = IceCreds { ufrag: "theirs".into(), pass: THEIRS.into() };
        Settled::new("ours".into(), OURS.into(), remote, addr(50000), now)
    }

    /// The browser's answer to our check, as its ICE agent writes it.
    fn answer_to(check: &[u8], from: SocketAddr, password: &str) -> Vec<u8> {
        let request = StunMessage::parse(check).expect("our check parses");
        assert!(request.is_binding_request());
        assert_eq!(request.split_username(), Some(("theirs", "ours")));
        assert!(request.verify(THEIRS.as_bytes(), hmac_sha1), "signed with the browser's password");
        let mut buf = vec![0u8; 128];
        let len = StunMessage::binding_reply(request.trans_id(), from)
            .to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1)
            .expect("an answer");
        buf.truncate(len);
        buf
    }

    #[test]
    fn a_consent_check_from_the_destination_is_answered_and_refreshes_consent() {
        let start = Instant::now();
        let mut settled = settled(start);
        let later = start + Duration::from_secs(10);
        let check = binding_request("ours:theirs", OURS, false);
        let out = settled.input(later, addr(50000), &check);
        assert_eq!(out.send.len(), 1);
        assert!(!out.moved);
        let (to, answer) = &out.send[0];
        assert_eq!(*to, addr(50000));
        let reply = StunMessage::parse(answer).expect("a STUN answer");
        assert!(reply.is_successful_binding_response());
        assert_eq!(reply.trans_id(), StunMessage::parse(&check).unwrap().trans_id());
        assert_eq!(reply.mapped_address(), Some(addr(50000)));
        assert!(reply.verify(OURS.as_bytes(), hmac_sha1));
        assert!(!settled.lapsed(later + Duration::from_secs(14)));
        assert!(settled.lapsed(later + Duration::from_secs(16)));
    }

    #[test]
    fn a_check_from_another_address_is_answered_but_keeps_no_consent() {
        let start = Instant::now();
        let mut settled = settled(start);
        let later = start + Duration::from_secs(10);
        let out = settled.input(later, addr(50001), &binding_request("ours:theirs", OURS, false));
        assert_eq!(out.send.len(), 1, "answered, and no check of ours without a nomination");
        assert_eq!(out.send[0].0, addr(50001));
        assert_eq!(settled.last_consent, start);
        assert_eq!(settled.destination(), addr(50000));
        assert!(settled.lapsed(start + Duration::from_secs(16)));
    }

    #[test]
    fn a_nominated_address_becomes_the_destination_once_it_answers_our_check() {
        let start = Instant::now();
        let mut settled = settled(start);
        let now = start + Duration::from_secs(5);
        let rebound = addr(50002);
        let out = settled.input(now, rebound, &binding_request("ours:theirs", OURS, true));
        assert_eq!(out.send.len(), 2, "an answer, then our own check");
        assert!(out.send.iter().all(|(to, _)| *to == rebound));
        let check = out.send[1].1.clone();
        // Answers that prove nothing change nothing: from elsewhere, with our password, or
        // to another transaction.
        assert_eq!(settled.input(now, addr(9), &answer_to(&check, addr(9), THEIRS)), SettledInput::default());
        assert_eq!(settled.input(now, rebound, &answer_to(&check, rebound, OURS)), SettledInput::default());
        let other = binding_request("theirs:ours", THEIRS, false);
        assert_eq!(settled.input(now, rebound, &answer_to(&other, rebound, THEIRS)), SettledInput::default());
        assert_eq!(settled.destination(), addr(50000));
        // The real answer moves the destination, and consent with it.
        let out = settled.input(now, rebound, &answer_to(&check, rebound, THEIRS));
        assert!(out.moved && out.send.is_empty());
        assert_eq!(settled.destination(), rebound);
        assert_eq!(settled.last_consent, now);
        // The old address keeps nothing now.
        settled.input(
            now + Duration::from_secs(1),
            addr(50000),
            &binding_request("ours:theirs", OURS, false),
        );
        assert_eq!(settled.last_consent, now);
    }

    #[test]
    fn nominations_from_one_address_send_at_most_one_check_per_half_second() {
        let start = Instant::now();
        let mut settled = settled(start);
        let nominate = binding_request("ours:theirs", OURS, true);
        let checks = (0..100)
            .map(|i| settled.input(start + Duration::from_millis(10 * i), addr(9), &nominate).send.len() - 1)
            .sum::<usize>();
        assert_eq!(checks, 2, "at 0 and 500 ms of one second");
    }

    #[test]
    fn forged_checks_and_other_packets_change_nothing() {
        let start = Instant::now();
        let mut settled = settled(start);
        let source = addr(50000);
        let later = start + Duration::from_secs(10);
        for data in [
            binding_request("ours:theirs", "a-wrong-password", false),
            binding_request("ours:theirs", "a-wrong-password", true),
            vec![0, 1, 0],
            vec![0x80, 201, 0, 1, 0, 0, 0, 1],
            vec![],
            // A DTLS alert (content type 21) cannot be told from a forged one without the DTLS
            // state.
            vec![21, 0xfe, 0xfd, 0, 1],
        ] {
            assert_eq!(settled.input(later, source, &data), SettledInput::default());
            assert_eq!(settled.input(later, addr(9), &data), SettledInput::default());
        }
        assert_eq!(settled.last_consent, start);
        assert_eq!(settled.destination(), source);
    }
}
