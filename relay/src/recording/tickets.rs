//! Download tickets: what the organiser page's download cookie holds, so that `<audio>` elements
//! and plain links fetch an event's files without a token in a URL. A ticket names no one and
//! stores nothing: `<expiry>.<HMAC-SHA256 of event and expiry>`, keyed with the cluster's secret
//! (so any node of the cluster, and a node after a restart, accepts it) or, on a single node, a
//! key drawn at start (tickets end with the process).

use aws_lc_rs::hmac;

use crate::ids::EventId;

/// Issues and checks tickets.
pub(crate) struct Tickets {
    key: hmac::Key,
}

impl Tickets {
    /// Keyed from `secret` (the cluster's), or a random key.
    pub(crate) fn new(secret: Option<&str>) -> Self {
        let key = match secret {
            Some(secret) => {
                hmac::Key::new(hmac::HMAC_SHA256, format!("tolk recording tickets\n{secret}").as_bytes())
            }
            None => {
                let random: [u8; 32] = rand::random();
                hmac::Key::new(hmac::HMAC_SHA256, &random)
            }
        };
        Self { key }
    }

    fn tag(&self, event: &EventId, expires: i64) -> String {
        hex::encode(hmac::sign(&self.key, format!("{event}\n{expires}").as_bytes()))
    }

    /// A ticket for `event`'s files until `expires` (Unix seconds).
    pub(crate) fn issue(&self, event: &EventId, expires: i64) -> String {
        format!("{expires}.{}", self.tag(event, expires))
    }

    /// Whether `ticket` opens `event`'s files at `now` (Unix seconds).
    pub(crate) fn opens(&self, ticket: &str, event: &EventId, now: i64) -> bool {
        let Some((expires, tag)) = ticket.split_once('.') else { return false };
        let Ok(expires) = expires.parse::<i64>() else { return false };
        let Ok(tag) = hex::decode(tag) else { return false };
        now < expires && hmac::verify(&self.key, format!("{event}\n{expires}").as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_its_event_until_it_expires_on_every_node_with_the_secret() {
        let event = EventId::parse("conference").expect("valid");
        let other = EventId::parse("another").expect("valid");
        let node_a = Tickets::new(Some("cluster-secret-0123456789"));
        let node_b = Tickets::new(Some("cluster-secret-0123456789"));
        let ticket = node_a.issue(&event, 1_000);
        assert!(node_b.opens(&ticket, &event, 999), "another node of the cluster");
        assert!(!node_b.opens(&ticket, &event, 1_000), "expired");
        assert!(!node_b.opens(&ticket, &other, 999), "another event");
        let forged = ticket.replacen("1000", "9000", 1);
        assert!(!node_b.opens(&forged, &event, 999), "a later expiry with the old tag");
        assert!(!Tickets::new(Some("another-secret-0123456789")).opens(&ticket, &event, 999));
        assert!(!Tickets::new(None).opens(&ticket, &event, 999), "a single node's own key");
        for junk in ["", ".", "1000", "x.y", "1000.zz"] {
            assert!(!node_a.opens(junk, &event, 0), "{junk:?}");
        }
    }
}
