//! Batched UDP for Tolk, on the quinn-udp model: the few socket calls the standard library does
//! not offer, behind safe functions. This crate owns
//!
//! - batches: [`recv_batch`] / [`recv_up_to`] (`recvmmsg`) and [`SendBatch`] (`sendmmsg`) on a
//!   non-blocking socket (Linux), so that one system call moves up to [`BATCH`] datagrams, with
//!   the send buffers reused across flushes;
//! - what the kernel says of a received datagram where a socket asks ([`Ancillary`]): its
//!   receive time ([`enable_receive_times`], `SO_TIMESTAMPNS`: the load generator's latency) and
//!   the local address it was sent to ([`enable_destination_address`], `IP_PKTINFO`);
//! - sending from a chosen local address on a wildcard socket ([`send_from`]), and the socket
//!   options media sockets want ([`set_dont_fragment`], [`set_receive_buffer`]).
//!
//! The relay's media shards use the batches and Don't Fragment (as `tolk_relay::net::udp`); the
//! load generator uses the rest. This is the only crate with `unsafe` (the workspace denies it
//! elsewhere): the syscalls and the ancillary data they return, each block with its `SAFETY`.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Largest datagram we read; WebRTC keeps packets under the 1200-byte MTU target.
pub const MAX_DATAGRAM: usize = 2048;

/// Ancillary data room per datagram, in u64 words (cmsg alignment): an `SCM_TIMESTAMPNS` (a
/// 16-byte header and a 16-byte timespec) and an `IP_PKTINFO` (16 + 12, padded to 32) or an
/// `IPV6_PKTINFO` (16 + 20, padded to 40), with room to spare.
const CONTROL_WORDS: usize = 14;

/// What the kernel said of a datagram besides its contents, on sockets that asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancillary {
    /// When it arrived (wall clock, since the Unix epoch): [`enable_receive_times`].
    pub received_at: Option<Duration>,
    /// The local address it was sent to: [`enable_destination_address`]. An IPv4 address that
    /// reached an IPv6 socket (as `::ffff:a.b.c.d`) is given as the IPv4 address.
    pub destination: Option<IpAddr>,
}

/// Reusable receive buffers for [`recv_batch`].
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    control: Vec<[u64; CONTROL_WORDS]>,
    ancillary: Vec<Ancillary>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: vec![[0; MAX_DATAGRAM]; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            addrs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; BATCH],
            lens: vec![0; BATCH],
            control: vec![[0; CONTROL_WORDS]; BATCH],
            ancillary: vec![Ancillary::default(); BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last [`recv_batch`]: (source, contents). Sources that are not IP are
    /// skipped.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.iter_ancillary().map(|(source, data, _)| (source, data))
    }

    /// [`RecvBatch::iter`] with what the kernel said of each datagram.
    pub fn iter_ancillary(&self) -> impl Iterator<Item = (SocketAddr, &[u8], Ancillary)> {
        (0..self.count).filter_map(|i| {
            Some((to_socket_addr(&self.addrs[i])?, &self.bufs[i][..self.lens[i]], self.ancillary[i]))
        })
    }
}

/// Ask the kernel to stamp every datagram `socket` receives with the wall-clock time it arrived
/// (`SO_TIMESTAMPNS`): on loopback that is the moment the sender's `sendmsg` handed it over,
/// before the receiving process has looked at it.
pub fn enable_receive_times(socket: &impl AsRawFd) -> io::Result<()> {
    set_flag(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)
}

/// Ask the kernel to say which local IPv4 address each datagram was sent to (`IP_PKTINFO`): one
/// socket bound to the wildcard address then serves many addresses on one port, such as the
/// load generator's listeners on 127.x.y.z.
pub fn enable_destination_address(socket: &impl AsRawFd) -> io::Result<()> {
    set_flag(socket, libc::IPPROTO_IP, libc::IP_PKTINFO)
}

/// [`enable_destination_address`] for an IPv6 socket (`IPV6_RECVPKTINFO`): IPv6 datagrams, and
/// on a dual-stack socket the IPv4 ones too (as mapped addresses), carry their destination.
pub fn enable_destination_address_v6(socket: &impl AsRawFd) -> io::Result<()> {
    set_flag(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
}

/// Ask for a receive buffer of `bytes` (`SO_RCVBUF`; the kernel caps it at `net.core.rmem_max`).
pub fn set_receive_buffer(socket: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    set_int(
        socket,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX),
    )
}

/// Send with the Don't Fragment bit, without path-MTU bookkeeping (`IP_PMTUDISC_PROBE`, as QUIC
/// stacks do). WebRTC keeps every datagram under 1,200 bytes, so nothing needs fragmenting; and a
/// DF datagram from an unconnected socket gets IP ID 0, where one that may be fragmented costs
/// the kernel a hashed, shared ID counter per datagram (~4 % of a shard's time at full fan-out).
pub fn set_dont_fragment(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE)?;
        // A dual-stack socket also sends IPv4; a v6-only one refuses this, which is fine.
        let _ = set_int(socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE);
        Ok(())
    } else {
        set_int(socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)
    }
}

fn set_flag(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    set_int(socket, level, name, 1)
}

fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Send one datagram from the local IPv4 address `from` (`IP_PKTINFO`), on a socket bound to
/// the wildcard address.
pub fn send_from(socket: &impl AsRawFd, data: &[u8], from: Ipv4Addr, to: SocketAddr) -> io::Result<usize> {
    let mut addr = MaybeUninit::uninit();
    let addr_len = write_sockaddr(to, &mut addr);
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: msghdr is plain old data; zero is a valid starting value for every field.
    let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    hdr.msg_name = addr.as_mut_ptr().cast();
    hdr.msg_namelen = addr_len;
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    hdr.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as _;
    // SAFETY: msg_control points at `control`, which is larger than msg_controllen (one
    // in_pktinfo cmsg), so FIRSTHDR is non-null and the header and data written lie within it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const hdr);
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = libc::IP_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(from.octets()) },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
    }
    // SAFETY: hdr points at the address, iovec and control buffer on this frame and at `data`,
    // all alive for the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const hdr, 0) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// The receive time and destination address in a received message's ancillary data.
fn ancillary(header: &libc::msghdr) -> Ancillary {
    let mut found = Ancillary::default();
    // SAFETY: `header` is a msghdr the kernel filled: msg_control points at a live buffer of
    // msg_controllen bytes holding well-formed cmsgs (or msg_controllen is 0, and FIRSTHDR is null).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(header) };
    while !cmsg.is_null() {
        // SAFETY: non-null cmsg pointers from CMSG_FIRSTHDR/NXTHDR lie within the control buffer.
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS cmsg carries one timespec; read_unaligned makes no
            // assumption about the data's alignment.
            let ts: libc::timespec = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                found.received_at = Some(Duration::new(secs, nanos));
            }
        } else if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
            // SAFETY: an IP_PKTINFO cmsg carries one in_pktinfo; read unaligned as above.
            let info: libc::in_pktinfo = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            found.destination = Some(IpAddr::V4(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes())));
        } else if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
            // SAFETY: an IPV6_PKTINFO cmsg carries one in6_pktinfo; read unaligned as above.
            let info: libc::in6_pktinfo = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            found.destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).to_canonical());
        }
        // SAFETY: as above; NXTHDR returns null past the end of the buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(header, cmsg) };
    }
    found
}

/// Read up to [`BATCH`] datagrams without blocking. `Ok(0)`: nothing to read. Fewer than asked
/// for means the socket is drained.
pub fn recv_batch(socket: &impl AsRawFd, batch: &mut RecvBatch) -> io::Result<usize> {
    recv_up_to(socket, batch, BATCH)
}

/// [`recv_batch`] for at most `max` datagrams (at most [`BATCH`]): for sockets that rarely hold
/// more than a few, such as one listener's in the load generator.
pub fn recv_up_to(socket: &impl AsRawFd, batch: &mut RecvBatch, max: usize) -> io::Result<usize> {
    let max = max.clamp(1, BATCH);
    let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    let mut headers: [MaybeUninit<libc::mmsghdr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    for i in 0..max {
        iovecs[i].write(libc::iovec { iov_base: batch.bufs[i].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM });
        // SAFETY: msghdr is plain old data; zero is a valid starting value for every field.
        let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        hdr.msg_name = (&raw mut batch.addrs[i]).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = iovecs[i].as_mut_ptr();
        hdr.msg_iovlen = 1;
        hdr.msg_control = batch.control[i].as_mut_ptr().cast();
        hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
        headers[i].write(libc::mmsghdr { msg_hdr: hdr, msg_len: 0 });
    }
    // SAFETY: every header points at a live buffer of MAX_DATAGRAM bytes, a sockaddr_storage and
    // a control buffer owned by `batch`, which outlives the call; the first `max` entries of
    // `headers` are initialised and the kernel reads no more than `max`.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr().cast(),
            max as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        batch.count = 0;
        return if err.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(err) };
    }
    let n = n as usize;
    for (i, header) in headers.iter().enumerate().take(n) {
        // SAFETY: the kernel filled the first `n` headers, and all were initialised above.
        let header = unsafe { header.assume_init_ref() };
        batch.lens[i] = (header.msg_len as usize).min(MAX_DATAGRAM);
        batch.ancillary[i] = ancillary(&header.msg_hdr);
    }
    batch.count = n;
    Ok(n)
}

/// Buffers kept for reuse at most, and the largest kept: a voice datagram is well under 256 bytes;
/// together at most 4 MiB per shard.
const SPARE_BUFFERS: usize = 8192;
const SPARE_CAPACITY: usize = 512;

/// Outgoing datagrams gathered during one loop turn, sent with as few `sendmmsg` calls as possible.
#[derive(Default)]
pub struct SendBatch {
    queue: Vec<(SocketAddr, Vec<u8>)>,
    /// Buffers of datagrams already sent, handed out again by [`SendBatch::buffer`]: once a shard
    /// has warmed up, fanning out a packet allocates nothing per listener.
    spare: Vec<Vec<u8>>,
    /// Datagrams and bytes handed to the kernel since the last [`SendBatch::take_counts`].
    sent: (u64, u64),
    dropped: u64,
    /// The socket is IPv6 (dual-stack): IPv4 destinations go out as mapped addresses.
    ipv6_socket: bool,
}

impl SendBatch {
    /// Whether the batch is sent on an IPv6 socket, which reaches IPv4 peers by their mapped
    /// addresses (`::ffff:a.b.c.d`); false by default.
    pub fn set_ipv6_socket(&mut self, ipv6: bool) {
        self.ipv6_socket = ipv6;
    }

    pub fn push(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.queue.push((to, datagram));
    }

    /// An empty buffer to write a datagram into and [`SendBatch::push`]: a reused one if any.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(256))
    }

    /// Take the queued datagrams without sending them (in-memory drivers: tests, benchmarks).
    pub fn drain(&mut self) -> impl Iterator<Item = (SocketAddr, Vec<u8>)> + '_ {
        self.queue.drain(..)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// (datagrams sent, bytes sent, datagrams dropped) since the last call.
    pub fn take_counts(&mut self) -> (u64, u64, u64) {
        let (p, b) = std::mem::take(&mut self.sent);
        (p, b, std::mem::take(&mut self.dropped))
    }

    /// Send everything queued. A full socket buffer drops the rest of the turn (audio is
    /// real-time: a late packet is worth nothing); other errors drop the offending datagram.
    pub fn flush(&mut self, socket: &impl AsRawFd) {
        let mut start = 0;
        while start < self.queue.len() {
            let end = (start + BATCH).min(self.queue.len());
            match send_chunk(socket, &self.queue[start..end], self.ipv6_socket) {
                Ok(n) => {
                    self.sent.0 += n as u64;
                    self.sent.1 +=
                        self.queue[start..start + n].iter().map(|(_, d)| d.len() as u64).sum::<u64>();
                    start += n.max(1);
                    if n == 0 {
                        self.dropped += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dropped += (self.queue.len() - start) as u64;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, to = %self.queue[start].0, "send failed; datagram dropped");
                    self.dropped += 1;
                    start += 1;
                }
            }
        }
        self.recycle();
    }

    /// Send everything queued to `to` instead of where it was addressed (benchmarks that compare
    /// with a sink at one address).
    pub fn retarget(&mut self, to: SocketAddr) {
        for (addr, _) in &mut self.queue {
            *addr = to;
        }
    }

    /// Drop everything queued unsent, keeping the buffers (benchmarks that measure without
    /// the socket).
    pub fn discard(&mut self) {
        self.recycle();
    }

    fn recycle(&mut self) {
        for (_, mut datagram) in self.queue.drain(..) {
            if self.spare.len() < SPARE_BUFFERS && datagram.capacity() <= SPARE_CAPACITY {
                datagram.clear();
                self.spare.push(datagram);
            }
        }
    }
}

fn send_chunk(
    socket: &impl AsRawFd,
    chunk: &[(SocketAddr, Vec<u8>)],
    ipv6_socket: bool,
) -> io::Result<usize> {
    let count = chunk.len().min(BATCH);
    let mut addrs: [MaybeUninit<libc::sockaddr_storage>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    let mut addr_lens = [0 as libc::socklen_t; BATCH];
    let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    let mut headers: [MaybeUninit<libc::mmsghdr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    for (i, (to, data)) in chunk.iter().take(count).enumerate() {
        let to = match to {
            SocketAddr::V4(v4) if ipv6_socket => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            other => *other,
        };
        addr_lens[i] = write_sockaddr(to, &mut addrs[i]);
        iovecs[i].write(libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() });
        // SAFETY: msghdr is plain old data; zero is a valid starting value for every field.
        let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        hdr.msg_name = addrs[i].as_mut_ptr().cast();
        hdr.msg_namelen = addr_lens[i];
        hdr.msg_iov = iovecs[i].as_mut_ptr();
        hdr.msg_iovlen = 1;
        headers[i].write(libc::mmsghdr { msg_hdr: hdr, msg_len: 0 });
    }
    // SAFETY: the first `count` headers are initialised and point at addresses and iovecs on this
    // stack frame and at datagrams borrowed from `chunk`, all alive for the call; the kernel only
    // reads the iovec buffers.
    let n =
        unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr().cast(), count as libc::c_uint, 0) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

fn write_sockaddr(addr: SocketAddr, out: &mut MaybeUninit<libc::sockaddr_storage>) -> libc::socklen_t {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid, and it is large and aligned
    // enough for both sockaddr_in and sockaddr_in6, which we write through casts of its pointer.
    let storage = out.write(unsafe { MaybeUninit::zeroed().assume_init() });
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: see above: storage is big and aligned enough for sockaddr_in.
            unsafe { (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: see above: storage is big and aligned enough for sockaddr_in6.
            unsafe { (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in, as ss_family says; storage is large and
            // aligned enough for it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // An IPv4 peer of a dual-stack socket: given as the IPv4 address it is.
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::V4(SocketAddrV4::new(v4, u16::from_be(sin6.sin6_port))));
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_and_comes_back() -> io::Result<()> {
        let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
        b.set_nonblocking(true)?;
        let to = b.local_addr()?;
        let mut out = SendBatch::default();
        for i in 0..100u8 {
            out.push(to, vec![i; 10 + usize::from(i)]);
        }
        out.flush(&a);
        assert_eq!(out.take_counts().0, 100);
        let mut got = Vec::new();
        let mut batch = RecvBatch::default();
        while got.len() < 100 {
            if recv_batch(&b, &mut batch)? == 0 {
                std::thread::yield_now();
                continue;
            }
            for (from, data) in batch.iter() {
                assert_eq!(from, a.local_addr()?);
                got.push(data.to_vec());
            }
        }
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), 10 + i);
            assert!(d.iter().all(|&x| x as usize == i));
        }
        Ok(())
    }

    #[test]
    fn the_kernel_says_when_each_datagram_arrived_where_asked() -> io::Result<()> {
        let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let timed = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let plain = std::net::UdpSocket::bind("127.0.0.1:0")?;
        enable_receive_times(&timed)?;
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        a.send_to(b"timed", timed.local_addr()?)?;
        a.send_to(b"plain", plain.local_addr()?)?;
        let mut batch = RecvBatch::default();
        // Loopback delivers within the sender's call: both are there already.
        assert_eq!(recv_batch(&timed, &mut batch)?, 1);
        // The kernel turns stamping on at arrival lazily, a moment after the first socket asks;
        // until then it stamps at the read. Either way, between the send and now.
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (_, data, meta) = batch.iter_ancillary().next().expect("one datagram");
        assert_eq!(data, b"timed");
        let at = meta.received_at.expect("a receive time");
        assert!(before <= at && at <= after, "{before:?} <= {at:?} <= {after:?}");
        assert_eq!(recv_batch(&plain, &mut batch)?, 1);
        let (_, data, meta) = batch.iter_ancillary().next().expect("one datagram");
        assert_eq!((data, meta), (&b"plain"[..], Ancillary::default()));
        Ok(())
    }

    #[test]
    fn sent_buffers_come_back_empty_for_the_next_datagrams() -> io::Result<()> {
        let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let to = b.local_addr()?;
        let mut out = SendBatch::default();
        for round in 0..2u8 {
            for i in 0..3u8 {
                let mut d = out.buffer();
                assert!(d.is_empty());
                d.extend_from_slice(&[round, i]);
                out.push(to, d);
            }
            out.flush(&a);
            assert_eq!(out.take_counts().0, 3);
            assert_eq!(out.spare.len(), 3, "round {round}: the three buffers are kept");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..6 {
            let (n, _) = b.recv_from(&mut buf)?;
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        Ok(())
    }

    #[test]
    fn one_wildcard_socket_serves_many_loopback_addresses() -> io::Result<()> {
        let relay = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let shared = std::net::UdpSocket::bind("0.0.0.0:0")?;
        enable_destination_address(&shared)?;
        let port = shared.local_addr()?.port();
        let (a, b) = (Ipv4Addr::new(127, 64, 0, 1), Ipv4Addr::new(127, 64, 1, 2));
        // Each address talks from itself, and is answered at itself.
        send_from(&shared, b"from a", a, relay.local_addr()?)?;
        send_from(&shared, b"from b", b, relay.local_addr()?)?;
        let mut buf = [0u8; 16];
        for (ip, text) in [(a, &b"from a"[..]), (b, &b"from b"[..])] {
            let (n, from) = relay.recv_from(&mut buf)?;
            assert_eq!((&buf[..n], from), (text, SocketAddr::from((ip, port))));
            relay.send_to(text, from)?;
        }
        let mut batch = RecvBatch::default();
        assert_eq!(recv_batch(&shared, &mut batch)?, 2);
        let got: Vec<_> = batch.iter_ancillary().map(|(_, d, m)| (d.to_vec(), m.destination)).collect();
        assert_eq!(got, vec![(b"from a".to_vec(), Some(a.into())), (b"from b".to_vec(), Some(b.into()))]);
        Ok(())
    }

    /// A relay's media socket on `[::]`: IPv4 peers are seen (and answered) at their IPv4
    /// addresses, and each datagram says which local address it reached.
    #[test]
    fn a_dual_stack_socket_serves_ipv4_peers_and_says_where_they_sent() -> io::Result<()> {
        // Where the machine has IPv6 at all (std binds `[::]` dual-stack on Linux by default).
        let Ok(relay) = std::net::UdpSocket::bind("[::]:0") else { return Ok(()) };
        enable_destination_address_v6(&relay)?;
        relay.set_nonblocking(true)?;
        let port = relay.local_addr()?.port();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
        peer.send_to(b"hello", (Ipv4Addr::LOCALHOST, port))?;
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        while got.is_empty() {
            recv_batch(&relay, &mut batch)?;
            got.extend(batch.iter_ancillary().map(|(from, d, m)| (from, d.to_vec(), m.destination)));
        }
        let expected: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert_eq!(got, vec![(peer.local_addr()?, b"hello".to_vec(), Some(expected))]);
        let mut out = SendBatch::default();
        out.set_ipv6_socket(true);
        out.push(peer.local_addr()?, b"answer".to_vec());
        out.flush(&relay);
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf)?;
        assert_eq!((&buf[..n], from), (&b"answer"[..], SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        Ok(())
    }

    #[test]
    fn media_datagrams_carry_dont_fragment() -> io::Result<()> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        set_dont_fragment(&socket, false)?;
        let mut value: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are live and len is value's size.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!((rc, value), (0, libc::IP_PMTUDISC_PROBE));
        // Where the machine has IPv6 at all.
        if let Ok(v6) = std::net::UdpSocket::bind("[::]:0") {
            set_dont_fragment(&v6, true)?;
        }
        Ok(())
    }
}
