//! Source allow-lists: the networks an RTP floor takes audio from (an organiser's mixing desk,
//! an encoder), written as addresses or CIDR networks (`192.0.2.10`, `198.51.100.0/24`,
//! `2001:db8::/32`). Empty: any source (the floor still locks on its first sender). Parsed once
//! with a sentence for every mistake; stored and shown as the same text.

use std::fmt;
use std::net::IpAddr;

/// Networks an allow-list may hold at most (a desk or two, a backup encoder, not a database).
pub const MAX_NETWORKS: usize = 16;

/// What is wrong with an allow-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    /// Not an address or a network.
    #[error("'{0}' is not an IP address or a network like 192.0.2.0/24 or 2001:db8::/32")]
    NotANetwork(String),
    /// A prefix length beyond the address's bits.
    #[error("'{0}': the prefix length is at most 32 for IPv4 and 128 for IPv6")]
    Prefix(String),
    /// Too many entries.
    #[error("at most {MAX_NETWORKS} sources may be allowed, not {0}")]
    TooMany(usize),
}

/// One network: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parse `192.0.2.10` or `192.0.2.0/24` (the host bits are cleared).
    pub fn parse(text: &str) -> Result<Self, AllowError> {
        let text = text.trim();
        let shown = || text.chars().take(64).collect::<String>();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| AllowError::NotANetwork(shown()))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p.parse::<u8>().map_err(|_| AllowError::NotANetwork(shown()))?,
        };
        if prefix > bits {
            return Err(AllowError::Prefix(shown()));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::from((u32::from(a) & mask32(prefix)).to_be_bytes()),
            IpAddr::V6(a) => IpAddr::from((u128::from(a) & mask128(prefix)).to_be_bytes()),
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == bits {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// An allow-list of source networks; empty allows every source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAllow(Vec<Network>);

impl SourceAllow {
    /// Parse entries as an organiser sends them.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowError> {
        if entries.len() > MAX_NETWORKS {
            return Err(AllowError::TooMany(entries.len()));
        }
        entries.iter().map(|e| Network::parse(e.as_ref())).collect::<Result<_, _>>().map(Self)
    }

    /// Parse the stored form: entries separated by commas.
    pub fn parse_stored(text: &str) -> Result<Self, AllowError> {
        let entries: Vec<&str> = text.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        Self::parse(&entries)
    }

    /// The stored form (and what organisers see): entries separated by commas.
    pub fn to_stored(&self) -> String {
        self.entries().join(",")
    }

    /// Each entry as text.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether `ip` may send: anyone when the list is empty.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether the list is empty (every source allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_match_what_they_name() {
        let allow = SourceAllow::parse(&["192.0.2.10", "198.51.100.77/24", "2001:db8::/32"]).unwrap();
        assert_eq!(allow.entries(), ["192.0.2.10", "198.51.100.0/24", "2001:db8::/32"], "host bits cleared");
        assert!(allow.allows(ip("192.0.2.10")));
        assert!(!allow.allows(ip("192.0.2.11")));
        assert!(allow.allows(ip("198.51.100.1")) && allow.allows(ip("198.51.100.255")));
        assert!(!allow.allows(ip("198.51.101.1")));
        assert!(allow.allows(ip("2001:db8:1::5")));
        assert!(!allow.allows(ip("2001:db9::1")));
        assert!(allow.allows(ip("::ffff:192.0.2.10")), "IPv4-mapped counts as IPv4");
        assert!(SourceAllow::default().allows(ip("203.0.113.9")), "empty: anyone");
        let everything = SourceAllow::parse(&["0.0.0.0/0"]).unwrap();
        assert!(everything.allows(ip("203.0.113.9")) && !everything.allows(ip("2001:db8::1")));
    }

    #[test]
    fn the_stored_form_reads_back_the_same() {
        let allow = SourceAllow::parse(&["192.0.2.10", "2001:db8::/32"]).unwrap();
        assert_eq!(allow.to_stored(), "192.0.2.10,2001:db8::/32");
        assert_eq!(SourceAllow::parse_stored(&allow.to_stored()).unwrap(), allow);
        assert_eq!(SourceAllow::parse_stored("").unwrap(), SourceAllow::default());
    }

    #[test]
    fn mistakes_get_a_sentence() {
        for (bad, says) in [
            ("192.0.2", "not an IP address"),
            ("192.0.2.0/33", "prefix length"),
            ("2001:db8::/129", "prefix length"),
            ("192.0.2.0/-1", "not an IP address"),
            ("example.org", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let e = SourceAllow::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("192.0.2.{i}")).collect();
        assert_eq!(SourceAllow::parse(&many).unwrap_err(), AllowError::TooMany(17));
    }
}
