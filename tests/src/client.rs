//! Real WebRTC clients for the tests, on str0m: a WHIP publisher that sends an Opus tone, and a WHEP
//! listener that decodes what it receives and counts packets and sequence gaps per track. Each runs
//! on its own thread with its own UDP socket, as a remote client would.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tolk_relay::media::rtp::RtpHeader;

use crate::audio::{FRAME, OpusTone, RATE};

/// What one listener track received.
#[derive(Debug, Default, Clone)]
pub struct TrackStats {
    pub packets: u64,
    pub first_seq: Option<u64>,
    pub highest_seq: u64,
    /// Decoded audio (the last minute at most).
    pub samples: Vec<f32>,
    pub first_packet_at: Option<Instant>,
    pub last_packet_at: Option<Instant>,
    /// Longest time between two consecutive packets.
    pub max_gap: Duration,
    /// Arrival time and sample offset of every packet (for switch and handover timing).
    pub arrivals: Vec<(Instant, usize)>,
    /// A fingerprint of every payload and when it arrived (to match with what a sender sent).
    pub payloads: Vec<(u64, Instant)>,
}

impl TrackStats {
    /// Packets the sequence numbers say were sent but never arrived.
    pub fn missing(&self) -> u64 {
        match self.first_seq {
            Some(first) => (self.highest_seq - first + 1).saturating_sub(self.packets),
            None => 0,
        }
    }

    /// The decoded audio received after `since`.
    pub fn samples_since(&self, since: Instant) -> &[f32] {
        let start = self.arrivals.iter().find(|(at, _)| *at >= since).map_or(self.samples.len(), |(_, s)| *s);
        &self.samples[start..]
    }

    /// The last `seconds` of decoded audio.
    pub fn last_seconds(&self, seconds: f64) -> &[f32] {
        let n = (seconds * f64::from(RATE)) as usize;
        &self.samples[self.samples.len().saturating_sub(n)..]
    }
}

/// A client thread and what it shares with the test.
pub struct Client {
    pub session_url: String,
    /// When each frame this client sent went out, in order.
    pub frames_sent: Arc<Mutex<Vec<Instant>>>,
    /// Fingerprints of the payloads this client sent, and when.
    pub sent: Arc<Mutex<HashMap<u64, Option<Instant>>>>,
    pub tracks: Arc<Mutex<Vec<TrackStats>>>,
    pub connected: Arc<AtomicBool>,
    pub posted_at: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Client {
    /// A snapshot of track `i`.
    pub fn track(&self, i: usize) -> TrackStats {
        self.tracks.lock().map(|t| t.get(i).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Wait until track `i` has `packets` packets (or fail after `within`).
    pub async fn wait_packets(&self, i: usize, packets: u64, within: Duration) -> anyhow::Result<TrackStats> {
        let deadline = Instant::now() + within;
        loop {
            let t = self.track(i);
            if t.packets >= packets {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("track {i} got {} packets, expected {packets} within {within:?}", t.packets);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the thread; returns its error, if it had one.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("client thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn new_rtc(rtp_mode: bool) -> anyhow::Result<(Rtc, UdpSocket, SocketAddr)> {
    bind_rtc(Rtc::builder().set_rtp_mode(rtp_mode).clear_codecs().enable_opus(true, false))
}

/// An `Rtc` built from `config`, with a host candidate on a new loopback UDP socket.
pub(crate) fn bind_rtc(config: RtcConfig) -> anyhow::Result<(Rtc, UdpSocket, SocketAddr)> {
    bind_rtc_on(config, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// The local address toward the host of `url` (loopback for a name or a loopback address): a
/// client of a node in another network namespace sends from the bridge's address.
fn local_toward(url: &str) -> std::net::IpAddr {
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned));
    let Some(ip) = host.and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok()) else {
        return loopback;
    };
    if ip.is_loopback() {
        return if ip.is_ipv6() { std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) } else { loopback };
    }
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|probe| {
            probe.connect((ip, 9))?;
            Ok(probe.local_addr()?.ip())
        })
        .unwrap_or(loopback)
}

fn bind_rtc_on(config: RtcConfig, ip: std::net::IpAddr) -> anyhow::Result<(Rtc, UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind((ip, 0))?;
    let local = socket.local_addr()?;
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    Ok((rtc, socket, local))
}

/// POST an SDP offer; returns (session URL, answer).
async fn post_offer(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    offer: String,
) -> anyhow::Result<(String, String)> {
    let mut request = http.post(url).header("content-type", "application/sdp").body(offer);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.text().await?;
    if status.as_u16() != 201 {
        bail!("{url} answered {status}: {body}");
    }
    Ok((location.context("201 without Location")?, body))
}

fn accept(rtc: &mut Rtc, pending: SdpPendingOffer, answer: &str) -> anyhow::Result<()> {
    let answer = SdpAnswer::from_sdp_string(answer)?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    Ok(())
}

/// A WHEP listener with `tracks` receive-only audio sections.
pub async fn listen(http: &reqwest::Client, url: &str, tracks: usize) -> anyhow::Result<Client> {
    start(http, url, None, None, tracks).await
}

/// Delay from each onset a gated sender (`gate` frames on, `gate` off) sent to when a track of
/// `receiver` first heard it (a 20 ms frame rising above -50 dBFS after a silent one).
pub fn onset_delays(sender: &Client, receiver: &Client, track: usize, gate: u64) -> Vec<Duration> {
    let frames = sender.frames_sent.lock().map(|f| f.clone()).unwrap_or_default();
    let onsets: Vec<Instant> = frames.iter().step_by((gate * 2) as usize).copied().collect();
    let stats = receiver.track(track);
    let mut delays = Vec::new();
    let mut was_silent = false;
    for (i, (at, offset)) in stats.arrivals.iter().enumerate() {
        let end = stats.arrivals.get(i + 1).map_or(stats.samples.len(), |(_, o)| *o);
        let level = crate::audio::level_db(&stats.samples[*offset..end]);
        if was_silent && level > -50.0 {
            // The onset it belongs to: the latest one sent before it arrived.
            if let Some(sent) = onsets.iter().rev().find(|s| *s <= at) {
                delays.push(*at - *sent);
            }
        }
        was_silent = level < -60.0;
    }
    delays
}

/// Post a WHEP offer and never connect (a client that vanished at once); returns the session URL.
pub async fn offer_and_vanish(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(post_offer(http, url, None, vanishing_offer()?).await?.0)
}

/// A listener's offer from a peer that is dropped at once: it will never connect.
pub fn vanishing_offer() -> anyhow::Result<String> {
    let (mut rtc, _socket, _local) = new_rtc(true)?;
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = change.apply().context("no offer")?;
    Ok(offer.to_sdp_string())
}

/// A WHIP publisher sending a tone of `frequency` Hz.
pub async fn publish(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    frequency: f64,
) -> anyhow::Result<Client> {
    start(http, url, Some(token), Some(OpusTone::new(frequency, 0.5)?), 0).await
}

/// A WHIP publisher sending `tone` (e.g. a gated one, for onset timing).
pub async fn publish_tone(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tone: OpusTone,
) -> anyhow::Result<Client> {
    start(http, url, Some(token), Some(tone), 0).await
}

/// An interpreter's booth session: a tone up, the input and the partner's voice down.
pub async fn booth(http: &reqwest::Client, url: &str, token: &str, frequency: f64) -> anyhow::Result<Client> {
    start(http, url, Some(token), Some(OpusTone::new(frequency, 0.5)?), 2).await
}

async fn start(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    send: Option<OpusTone>,
    receive: usize,
) -> anyhow::Result<Client> {
    let config = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false);
    let (mut rtc, socket, local) = bind_rtc_on(config, local_toward(url))?;
    let mut change = rtc.sdp_api();
    let send_mid =
        send.as_ref().map(|_| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
    let mids: Vec<Mid> = (0..receive)
        .map(|_| change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None))
        .collect();
    let (offer, pending) = change.apply().context("no offer")?;
    let posted_at = Instant::now();
    let (session_url, answer) = post_offer(http, url, token, offer.to_sdp_string()).await?;
    accept(&mut rtc, pending, &answer)?;
    let sender = match (send_mid, send) {
        (Some(mid), Some(tone)) => Some((mid, tone)),
        _ => None,
    };
    Ok(spawn(rtc, socket, local, sender, mids, session_url, posted_at))
}

/// A receive-only client on an `Rtc` the caller negotiated itself (over a BBB websocket, say):
/// decodes and counts what arrives on `mids`, like [`listen`]. `session_url` is left empty.
pub fn receive(rtc: Rtc, socket: UdpSocket, local: SocketAddr, mids: Vec<Mid>) -> Client {
    spawn(rtc, socket, local, None, mids, String::new(), Instant::now())
}

fn spawn(
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    sender: Option<(Mid, OpusTone)>,
    mids: Vec<Mid>,
    session_url: String,
    posted_at: Instant,
) -> Client {
    let receive = mids.len();
    let stats = Arc::new(Mutex::new(vec![TrackStats::default(); receive]));
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let frames_sent = Arc::new(Mutex::new(Vec::new()));
    let connected = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let shared = Shared {
            stats: stats.clone(),
            sent: sent.clone(),
            frames_sent: frames_sent.clone(),
            connected: connected.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || run(rtc, socket, local, sender, mids, shared))
    };
    Client { session_url, sent, frames_sent, tracks: stats, connected, posted_at, stop, thread: Some(thread) }
}

/// A payload's fingerprint (FNV-1a): relayed payloads are forwarded byte for byte.
pub fn fingerprint(payload: &[u8]) -> u64 {
    payload.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Per-packet delay from `sender` to a track of `receiver`, for payloads forwarded unchanged.
pub fn delays(sender: &Client, receiver: &Client, track: usize) -> Vec<Duration> {
    let sent = sender.sent.lock().map(|s| s.clone()).unwrap_or_default();
    receiver
        .track(track)
        .payloads
        .iter()
        .filter_map(|(fp, at)| Some(at.saturating_duration_since((*sent.get(fp)?)?)))
        .collect()
}

/// (p50, p95, max) of a set of durations.
pub fn percentiles(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    let at =
        |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    (at(0.5), at(0.95), at(1.0))
}

/// Drain an Rtc: send transmits, hand events to `on_event`; returns the next deadline.
pub(crate) fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    mut on_event: impl FnMut(&mut Rtc, Event),
) -> anyhow::Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                socket.send_to(&t.contents, t.destination)?;
            }
            Output::Event(e) => on_event(rtc, e),
        }
    }
}

/// Wait for a datagram until `until`; feed it (or the timeout) to the Rtc.
pub(crate) fn step(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    local: SocketAddr,
    until: Instant,
    buf: &mut [u8],
) -> anyhow::Result<()> {
    let wait = until
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(1), Duration::from_millis(20));
    socket.set_read_timeout(Some(wait))?;
    match socket.recv_from(buf) {
        Ok((n, source)) => {
            let receive = Receive::new(Protocol::Udp, source, local, &buf[..n])?;
            rtc.handle_input(Input::Receive(Instant::now(), receive))?;
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            rtc.handle_input(Input::Timeout(Instant::now()))?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The Opus payload type negotiated on `mid`.
pub(crate) fn opus_pt(rtc: &Rtc, mid: Mid) -> Option<str0m::media::Pt> {
    let media = rtc.media(mid)?;
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::Opus && media.remote_pts().contains(&p.pt()))
        .map(|p| p.pt())
}

/// Sends a tone every 20 ms on its section once connected.
struct Sender {
    mid: Mid,
    tone: OpusTone,
    next: Option<Instant>,
    seq: u64,
    ts: u32,
}

/// What a client thread shares with the test.
struct Shared {
    frames_sent: Arc<Mutex<Vec<Instant>>>,
    stats: Arc<Mutex<Vec<TrackStats>>>,
    sent: Arc<Mutex<HashMap<u64, Option<Instant>>>>,
    connected: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    sender: Option<(Mid, OpusTone)>,
    mids: Vec<Mid>,
    shared: Shared,
) -> anyhow::Result<()> {
    let Shared { stats, sent, frames_sent, connected, stop } = shared;
    let mut sender = sender.map(|(mid, tone)| Sender {
        mid,
        tone,
        next: None,
        seq: rand::random::<u16>() as u64 & 0x3fff,
        ts: rand::random(),
    });
    let mut decoders: Vec<opus::Decoder> =
        mids.iter().map(|_| opus::Decoder::new(RATE, opus::Channels::Mono)).collect::<Result<_, _>>()?;
    let mut pcm = vec![0f32; FRAME * 6];
    let mut buf = vec![0u8; 2048];
    let mut track_of: HashMap<u32, usize> = HashMap::new();
    let mut error = None;
    while !stop.load(Ordering::Relaxed) {
        let mut deadline = drain(&mut rtc, &socket, |rtc, event| match event {
            Event::Connected => connected.store(true, Ordering::Relaxed),
            Event::RtpPacket(p) => {
                let ssrc = *p.header.ssrc;
                let track = *track_of.entry(ssrc).or_insert_with(|| {
                    rtc.direct_api()
                        .stream_rx(&p.header.ssrc)
                        .and_then(|s| mids.iter().position(|m| *m == s.mid()))
                        .unwrap_or(0)
                });
                let Some(decoder) = decoders.get_mut(track) else { return };
                let decoded = match decoder.decode_float(&p.payload, &mut pcm, false) {
                    Ok(n) => n,
                    Err(e) => {
                        error = Some(anyhow!("undecodable Opus payload: {e}"));
                        return;
                    }
                };
                let now = Instant::now();
                if let Ok(mut all) = stats.lock() {
                    all[track].payloads.push((fingerprint(&p.payload), now));
                    record(&mut all[track], *p.seq_no, &pcm[..decoded], now);
                }
            }
            _ => {}
        })?;
        if let Some(e) = error.take() {
            return Err(e);
        }
        if let Some(s) = sender.as_mut()
            && connected.load(Ordering::Relaxed)
        {
            let due = *s.next.get_or_insert_with(Instant::now);
            if Instant::now() >= due {
                let payload = s.tone.next_packet()?;
                let pt = opus_pt(&rtc, s.mid).context("Opus was not negotiated")?;
                let mut direct = rtc.direct_api();
                let stream = direct.stream_tx_by_mid(s.mid, None).context("no send stream")?;
                if let Ok(mut frames) = frames_sent.lock() {
                    frames.push(Instant::now());
                }
                if let Ok(mut sent) = sent.lock() {
                    // A payload sent twice cannot be timed: forget it.
                    sent.entry(fingerprint(&payload))
                        .and_modify(|t| *t = None)
                        .or_insert(Some(Instant::now()));
                }
                stream.write_rtp(RtpWrite::new(pt, s.seq.into(), s.ts, Instant::now(), payload));
                // str0m sends queued media on its next timeout: now.
                rtc.handle_input(Input::Timeout(Instant::now()))?;
                s.seq += 1;
                s.ts = s.ts.wrapping_add(FRAME as u32);
                s.next = Some(due + Duration::from_millis(20));
                continue;
            }
            deadline = deadline.min(due);
        }
        if !rtc.is_alive() {
            break;
        }
        step(&mut rtc, &socket, local, deadline, &mut buf)?;
    }
    Ok(())
}

fn record(t: &mut TrackStats, seq: u64, pcm: &[f32], now: Instant) {
    t.first_seq.get_or_insert(seq);
    t.highest_seq = t.highest_seq.max(seq);
    t.packets += 1;
    if let Some(last) = t.last_packet_at {
        t.max_gap = t.max_gap.max(now - last);
    }
    t.first_packet_at.get_or_insert(now);
    t.last_packet_at = Some(now);
    let offset = t.samples.len();
    t.arrivals.push((now, offset));
    t.samples.extend_from_slice(pcm);
    let keep = 60 * RATE as usize;
    if t.samples.len() > keep + RATE as usize * 10 {
        let cut = t.samples.len() - keep;
        t.samples.drain(..cut);
        t.arrivals.retain_mut(|(_, s)| {
            *s = s.saturating_sub(cut);
            *s > 0
        });
    }
}

/// Plain RTP Opus tone to `to` every 20 ms, like `ffmpeg -re … -f rtp`.
pub struct RtpSender {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RtpSender {
    pub fn start(to: SocketAddr, frequency: f64) -> anyhow::Result<Self> {
        Self::start_mapped(to, frequency, |payload| payload)
    }

    /// [`RtpSender::start`], each Opus payload passed through `map` before it is sent (e.g. to
    /// stamp it with its send time).
    pub fn start_mapped(
        to: SocketAddr,
        frequency: f64,
        mut map: impl FnMut(Vec<u8>) -> Vec<u8> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let mut tone = OpusTone::new(frequency, 0.5)?;
        let socket = UdpSocket::bind(if to.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let ssrc: u32 = rand::random();
            let start = Instant::now();
            let mut n: u32 = 0;
            while !flag.load(Ordering::Relaxed) {
                let payload = map(tone.next_packet()?);
                let header = RtpHeader {
                    payload_type: 97,
                    marker: false,
                    seq: n as u16,
                    timestamp: n.wrapping_mul(FRAME as u32),
                    ssrc,
                    extension: None,
                };
                let mut packet = Vec::with_capacity(12 + payload.len());
                header.write(&mut packet);
                packet.extend_from_slice(&payload);
                socket.send_to(&packet, to)?;
                n += 1;
                std::thread::sleep(
                    (start + Duration::from_millis(20) * n).saturating_duration_since(Instant::now()),
                );
            }
            Ok(())
        });
        Ok(Self { stop, thread: Some(thread) })
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("RTP sender panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RtpSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
