//! Which addresses the media candidates carry and where the media sockets listen.
//!
//! Configured (`TOLK_PUBLIC_IP`: one address or several, comma-separated, IPv4 and IPv6), they are
//! used as given: behind NAT that is the public address, which is not on this machine. Not
//! configured, they are this machine's own: every address of an interface that is up, but
//! loopback and link-local ones, first, then `127.0.0.1` for browsers on this machine that use it
//! (Chromium does; Firefox ignores loopback candidates, which is why a relay offering only
//! `127.0.0.1` never connected with Firefox).
//!
//! Where sockets bind follows: loopback addresses only (a development machine) keep the relay to
//! `127.0.0.1`; otherwise the unspecified address of the family, `[::]` (dual-stack) as soon as one
//! address is IPv6, and each datagram's destination (`IP_PKTINFO` / `IPV6_PKTINFO`) tells which
//! candidate a peer used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Candidates offered at most: every one costs each peer's ICE agent a check.
pub const MAX_ADDRESSES: usize = 8;

/// Why a configured address list is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("public_ip '{0}' is not an IP address (give one or several, comma-separated)")]
    NotAnAddress(String),
    #[error("public_ip {0} cannot be put in an ICE candidate: give the address clients reach")]
    NotReachable(IpAddr),
    #[error("public_ip lists no address")]
    Empty,
    #[error("public_ip lists {0} addresses; Tolk offers at most {MAX_ADDRESSES}")]
    TooMany(usize),
}

/// Parse a configured list: `"203.0.113.7"`, `"203.0.113.7, 2001:db8::7"`. Duplicates are dropped.
pub fn parse(list: &str) -> Result<Vec<IpAddr>, AddressError> {
    let mut addresses = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ip: IpAddr = item.parse().map_err(|_| AddressError::NotAnAddress(item.to_owned()))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(AddressError::NotReachable(ip));
        }
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    match addresses.len() {
        0 => Err(AddressError::Empty),
        n if n > MAX_ADDRESSES => Err(AddressError::TooMany(n)),
        _ => Ok(addresses),
    }
}

/// This machine's addresses for candidates when none are configured (see the module's doc).
pub fn discover() -> Vec<IpAddr> {
    let found = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().filter(|i| i.is_oper_up()).map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this machine's addresses; offering 127.0.0.1 only");
            Vec::new()
        }
    };
    choose(found)
}

/// The rule of [`discover`] on a list of interface addresses: usable ones first (IPv4 before
/// IPv6, as found), at most [`MAX_ADDRESSES`] with room for loopback, then `127.0.0.1`.
fn choose(found: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut usable: Vec<IpAddr> = Vec::new();
    for ip in found {
        if usable_for_others(ip) && !usable.contains(&ip) {
            usable.push(ip);
        }
    }
    usable.sort_by_key(IpAddr::is_ipv6);
    usable.truncate(MAX_ADDRESSES - 1);
    usable.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    usable
}

/// An address another machine (or a browser that skips loopback) can reach us at.
fn usable_for_others(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unicast_link_local()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// Where media sockets bind for these candidates: `127.0.0.1` when all are IPv4 loopback,
/// `[::]` when one is IPv6, else `0.0.0.0`.
pub fn bind_ip(candidates: &[IpAddr]) -> IpAddr {
    if candidates.iter().any(IpAddr::is_ipv6) {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else if candidates.iter().all(|ip| *ip == IpAddr::V4(Ipv4Addr::LOCALHOST)) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The candidate a datagram reached: the one with its destination address, else (behind NAT the
/// destination is the private address, the candidate the public one) the first of its source's
/// family, else the first.
pub fn reached(candidates: &[SocketAddr], source: SocketAddr, destination: Option<IpAddr>) -> SocketAddr {
    destination
        .and_then(|d| candidates.iter().find(|c| c.ip() == d))
        .or_else(|| candidates.iter().find(|c| c.is_ipv6() == source.is_ipv6()))
        .or(candidates.first())
        .copied()
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

/// URLs for the link to a page on this machine from another device (the demo prints them): the
/// machine's addresses others can reach.
pub fn lan_hosts(candidates: &[IpAddr]) -> Vec<String> {
    candidates
        .iter()
        .filter(|ip| usable_for_others(**ip))
        .map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_configured_list_is_parsed_or_refused_with_a_sentence() {
        assert_eq!(parse("203.0.113.7").unwrap(), [ip("203.0.113.7")]);
        assert_eq!(
            parse(" 203.0.113.7, 2001:db8::7 ,203.0.113.7").unwrap(),
            [ip("203.0.113.7"), ip("2001:db8::7")]
        );
        assert_eq!(parse("203.0.113.7, nope"), Err(AddressError::NotAnAddress("nope".into())));
        assert_eq!(parse("0.0.0.0"), Err(AddressError::NotReachable(ip("0.0.0.0"))));
        assert_eq!(parse(" , "), Err(AddressError::Empty));
        let many: Vec<String> = (1..=9).map(|i| format!("192.0.2.{i}")).collect();
        assert_eq!(parse(&many.join(",")), Err(AddressError::TooMany(9)));
        assert!(parse("::").unwrap_err().to_string().contains("clients reach"));
    }

    #[test]
    fn discovered_addresses_are_those_others_reach_then_loopback() {
        let found = vec![
            ip("127.0.0.1"),
            ip("::1"),
            ip("fe80::1"),
            ip("fd00::2"),
            ip("169.254.3.4"),
            ip("192.0.2.2"),
            ip("10.1.2.3"),
            ip("192.0.2.2"),
        ];
        assert_eq!(choose(found), [ip("192.0.2.2"), ip("10.1.2.3"), ip("fd00::2"), ip("127.0.0.1")]);
        assert_eq!(choose(Vec::new()), [ip("127.0.0.1")], "no interfaces: loopback still works here");
        let many: Vec<IpAddr> = (1..=20).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        let chosen = choose(many);
        assert_eq!(chosen.len(), MAX_ADDRESSES);
        assert_eq!(chosen.last(), Some(&ip("127.0.0.1")));
    }

    #[test]
    fn sockets_bind_where_the_candidates_point() {
        assert_eq!(bind_ip(&[ip("127.0.0.1")]), ip("127.0.0.1"));
        assert_eq!(bind_ip(&[ip("192.0.2.2"), ip("127.0.0.1")]), ip("0.0.0.0"));
        assert_eq!(bind_ip(&[ip("203.0.113.7")]), ip("0.0.0.0"));
        assert_eq!(bind_ip(&[ip("192.0.2.2"), ip("fd00::2")]), ip("::"));
    }

    #[test]
    fn a_datagram_is_given_the_candidate_it_reached() {
        let candidates: Vec<SocketAddr> = ["192.0.2.2:40000", "[fd00::2]:40000", "127.0.0.1:40000"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let v4: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let v6: SocketAddr = "[fd00::9]:5000".parse().unwrap();
        assert_eq!(reached(&candidates, v4, Some(ip("127.0.0.1"))), candidates[2]);
        assert_eq!(reached(&candidates, v6, Some(ip("fd00::2"))), candidates[1]);
        // Behind NAT: the private address the datagram reached is no candidate.
        assert_eq!(reached(&candidates, v4, Some(ip("10.0.0.5"))), candidates[0]);
        assert_eq!(reached(&candidates, v6, None), candidates[1]);
        assert_eq!(reached(&candidates[2..], v6, None), candidates[2]);
    }

    #[test]
    fn the_demo_links_use_addresses_others_reach() {
        assert_eq!(
            lan_hosts(&[ip("192.0.2.2"), ip("fd00::2"), ip("127.0.0.1")]),
            ["192.0.2.2".to_owned(), "[fd00::2]".to_owned()]
        );
    }
}
