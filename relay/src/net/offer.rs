//! An SDP offer checked and parsed before it reaches a media shard: the HTTP task counts its media
//! sections and candidates and has str0m parse it, so a join storm of large or malformed offers
//! costs the media threads nothing; a shard only builds the peer from an [`Offer`].

use str0m::change::SdpOffer;

use crate::net::NetError;

/// Media sections an offer may have: a listener takes two audio sections (channel and floor), a
/// booth three; a browser may add a data or video section it does not use.
pub const MAX_SECTIONS: usize = 8;

/// Media sections an edge node's cascade offer may have: one per channel of the largest event
/// (the floor and 64 interpretation languages).
pub const MAX_CASCADE_SECTIONS: usize = 65;

/// ICE candidates an offer may carry (every section's `a=candidate` lines together).
pub const MAX_CANDIDATES: usize = 32;

/// A parsed offer within the limits.
#[derive(Debug)]
pub struct Offer(pub(crate) SdpOffer);

impl Offer {
    /// Check the limits, then parse. The error is a sentence for the client (a 400).
    pub fn parse(text: &str) -> Result<Self, NetError> {
        Self::parse_with(text, MAX_SECTIONS)
    }

    /// [`Offer::parse`] with another limit on media sections.
    pub fn parse_with(text: &str, max_sections: usize) -> Result<Self, NetError> {
        let (mut sections, mut candidates) = (0usize, 0usize);
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("m=") {
                sections += 1;
            } else if line.starts_with("a=candidate:") {
                candidates += 1;
            }
        }
        if sections > max_sections {
            return Err(NetError::BadSdp(format!(
                "it has {sections} media sections (m= lines); Tolk takes at most {max_sections}"
            )));
        }
        if candidates > MAX_CANDIDATES {
            return Err(NetError::BadSdp(format!(
                "it has {candidates} ICE candidates; Tolk takes at most {MAX_CANDIDATES}"
            )));
        }
        SdpOffer::from_sdp_string(text).map(Offer).map_err(|e| NetError::BadSdp(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n";

    fn section(mid: usize, candidates: usize) -> String {
        let mut s = format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=ice-ufrag:abcd\r\n\
             a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\n\
             a=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n",
            fp = ["AB"; 32].join(":")
        );
        for i in 0..candidates {
            s.push_str(&format!("a=candidate:{i} 1 udp 2122260223 192.0.2.{} 5000 typ host\r\n", i % 250));
        }
        s
    }

    #[test]
    fn too_many_sections_or_candidates_are_refused_with_a_sentence() {
        let many: String = HEAD.to_owned() + &(0..200).map(|m| section(m, 0)).collect::<String>();
        let err = Offer::parse(&many).unwrap_err().to_string();
        assert!(err.contains("200 media sections") && err.contains("at most 8"), "{err}");
        let chatty = HEAD.to_owned() + &section(0, 40);
        let err = Offer::parse(&chatty).unwrap_err().to_string();
        assert!(err.contains("40 ICE candidates") && err.contains("at most 32"), "{err}");
    }

    #[test]
    fn an_offer_within_the_limits_is_parsed() {
        let offer = HEAD.to_owned() + &section(0, 3) + &section(1, 0);
        assert!(Offer::parse(&offer).is_ok(), "{:?}", Offer::parse(&offer));
        assert!(matches!(Offer::parse("v=0 junk"), Err(NetError::BadSdp(_))));
    }
}
