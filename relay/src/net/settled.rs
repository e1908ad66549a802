//! A listener whose handshake is long done. Once Tolk sends its packets with its own SRTP, a
//! listener's str0m engine has one job left: answering the browser's ICE consent checks
//! (RFC 7675). That is a few lines, so the shard drops the engine (~70 KiB with its buffers) and
//! answers them here with str0m's STUN codec. Everything else a settled listener sends (SRTCP
//! receiver reports, DTLS records) is read and dropped: without the DTLS state nothing here can
//! tell a real close from a forged one, so a listener that leaves without DELETE is dropped when
//! its consent lapses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use str0m::ice::StunMessage;

/// How long a listener may stay silent (no consent check) before it is dropped: the same as
/// while str0m held it.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long after connecting a listener is left to str0m (late DTLS retransmits land there).
pub const SETTLE_AFTER: Duration = Duration::from_secs(3);

/// What a settled listener keeps of its ICE: our password and when it last proved it is there.
#[derive(Debug)]
pub struct Settled {
    password: String,
    pub last_consent: Instant,
}

/// What a datagram from a settled listener asks of the shard.
#[derive(Debug, PartialEq, Eq)]
pub enum SettledInput {
    /// Send this answer back to the source (a consent check passed).
    Answer(Vec<u8>),
    /// Nothing to do (receiver reports, stray or forged packets).
    Ignore,
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
    use str0m::ice::{StunMessage, TransId};
    let message = StunMessage::binding_request(username, TransId::new(), true, 7, 1, nominate);
    let mut buf = vec![0u8; 256];
    let len = message.to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1).unwrap_or(0);
    buf.truncate(len);
    buf
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
    pub fn new(password: String, now: Instant) -> Self {
        Self { password, last_consent: now }
    }

    /// Whether consent has lapsed at `now`.
    pub fn lapsed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_consent) > CONSENT_TIMEOUT
    }

    /// Handle one datagram from the listener's address.
    pub fn input(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> SettledInput {
        match data.first() {
            Some(0..=3) => {
                let Ok(message) = StunMessage::parse(data) else { return SettledInput::Ignore };
                if !message.is_binding_request() || !message.verify(self.password.as_bytes(), hmac_sha1) {
                    return SettledInput::Ignore;
                }
                self.last_consent = now;
                let mut buf = vec![0u8; 128];
                match StunMessage::binding_reply(message.trans_id(), source).to_bytes(
                    Some(self.password.as_bytes()),
                    &mut buf,
                    hmac_sha1,
                ) {
                    Ok(len) => {
                        buf.truncate(len);
                        SettledInput::Answer(buf)
                    }
                    Err(_) => SettledInput::Ignore,
                }
            }
            _ => SettledInput::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::{StunMessageBuilder, TransId};

    fn request(password: &str, trans: TransId) -> Vec<u8> {
        let message = StunMessageBuilder::new()
            .binding()
            .request()
            .username("ours:theirs")
            .prio(1)
            .ice_controlling(7)
            .build(trans);
        let mut buf = vec![0u8; 256];
        let len = message.to_bytes(Some(password.as_bytes()), &mut buf, hmac_sha1).unwrap_or(0);
        buf.truncate(len);
        buf
    }

    #[test]
    fn a_consent_check_with_our_password_is_answered_and_refreshes_consent() {
        let start = Instant::now();
        let mut settled = Settled::new("secret-password-of-ours".into(), start);
        let source: SocketAddr = "192.0.2.7:50000".parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let trans = TransId::new();
        let later = start + Duration::from_secs(10);
        let SettledInput::Answer(answer) =
            settled.input(later, source, &request("secret-password-of-ours", trans))
        else {
            panic!("no answer");
        };
        let reply = StunMessage::parse(&answer).expect("a STUN answer");
        assert!(reply.is_successful_binding_response());
        assert_eq!(reply.trans_id(), trans);
        assert_eq!(reply.mapped_address(), Some(source));
        assert!(reply.verify(b"secret-password-of-ours", hmac_sha1));
        assert!(!settled.lapsed(later + Duration::from_secs(14)));
        assert!(settled.lapsed(later + Duration::from_secs(16)));
    }

    #[test]
    fn forged_checks_and_other_packets_change_nothing() {
        let start = Instant::now();
        let mut settled = Settled::new("secret-password-of-ours".into(), start);
        let source: SocketAddr = "192.0.2.7:50000".parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let later = start + Duration::from_secs(10);
        assert_eq!(
            settled.input(later, source, &request("a-wrong-password", TransId::new())),
            SettledInput::Ignore
        );
        assert_eq!(settled.input(later, source, &[0, 1, 0]), SettledInput::Ignore);
        assert_eq!(settled.input(later, source, &[0x80, 201, 0, 1, 0, 0, 0, 1]), SettledInput::Ignore);
        assert_eq!(settled.input(later, source, &[]), SettledInput::Ignore);
        // A DTLS alert (content type 21) cannot be told from a forged one without the DTLS state.
        assert_eq!(settled.input(later, source, &[21, 0xfe, 0xfd, 0, 1]), SettledInput::Ignore);
        assert_eq!(settled.last_consent, start);
    }
}
