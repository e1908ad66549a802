//! A minimal LiveKit client in Rust, for the tests (and Tolk's own tests later): the signalling
//! websocket ([`SignalClient`]: join, send, receive, wait for a message, leave), what a refused
//! connection answered ([`refusal`]), and a subscribe-only str0m peer ([`SubscriberPeer`]) that
//! answers the server's subscriber offers and counts, per track, the Opus packets and RFC 6464
//! audio levels that arrive, decoding the audio.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::audio::RATE;

/// The signalling URL for `token` (`url` is the server's `ws://…`), as livekit-client builds it
/// for the `/rtc` path.
pub fn rtc_url(url: &str, token: &str) -> String {
    format!("{}/rtc?access_token={token}&protocol=16&sdk=rust&version=0.0.0", url.trim_end_matches('/'))
}

/// Try to connect with `token` and return what a refused upgrade answered (HTTP status, body).
pub async fn refusal(url: &str, token: &str) -> anyhow::Result<(u16, String)> {
    match tokio_tungstenite::connect_async(rtc_url(url, token)).await {
        Ok(_) => bail!("the connection was accepted"),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Ok((response.status().as_u16(), body))
        }
        Err(e) => Err(e.into()),
    }
}

/// A joined participant's signalling connection.
pub struct SignalClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for another.
    backlog: VecDeque<Resp>,
}

impl SignalClient {
    /// Join: connect and read the first message, which must be the join response.
    pub async fn connect(
        url: &str,
        token: &str,
        auto_subscribe: bool,
    ) -> anyhow::Result<(Self, proto::JoinResponse)> {
        let url = format!("{}&auto_subscribe={}", rtc_url(url, token), u8::from(auto_subscribe));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.context("signal connection")?;
        let mut client = Self { ws, backlog: VecDeque::new() };
        match client.read().await? {
            Some(Resp::Join(join)) => Ok((client, join)),
            other => bail!("the first message was not a join response: {other:?}"),
        }
    }

    pub async fn send(&mut self, message: Req) -> anyhow::Result<()> {
        let frame = proto::SignalRequest { message: Some(message) }.encode_to_vec();
        self.ws.send(Message::Binary(frame.into())).await?;
        Ok(())
    }

    /// The next message from the websocket (`None` once it closed).
    async fn read(&mut self) -> anyhow::Result<Option<Resp>> {
        while let Some(frame) = self.ws.next().await {
            match frame? {
                Message::Binary(bytes) => {
                    if let Some(message) = proto::SignalResponse::decode(bytes.as_ref())?.message {
                        return Ok(Some(message));
                    }
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The next message (`None` once the connection closed).
    pub async fn next(&mut self) -> anyhow::Result<Option<Resp>> {
        if let Some(message) = self.backlog.pop_front() {
            return Ok(Some(message));
        }
        self.read().await
    }

    /// Wait for a message `matches` accepts; the others stay for [`SignalClient::next`].
    pub async fn wait_for(
        &mut self,
        mut matches: impl FnMut(&Resp) -> bool,
        within: Duration,
    ) -> anyhow::Result<Resp> {
        if let Some(at) = self.backlog.iter().position(&mut matches) {
            return self.backlog.remove(at).context("backlog");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.read()).await {
                Err(_) => bail!("no such message within {within:?}; read meanwhile: {:?}", self.backlog),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => bail!("the connection closed"),
                Ok(Ok(Some(m))) if matches(&m) => return Ok(m),
                Ok(Ok(Some(m))) => self.backlog.push_back(m),
            }
        }
    }

    /// Say goodbye and close.
    pub async fn leave(mut self) -> anyhow::Result<()> {
        self.send(Req::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::ClientInitiated as i32,
            ..Default::default()
        }))
        .await?;
        let _ = self.ws.close(None).await;
        Ok(())
    }
}

/// What one subscribed track brought.
#[derive(Debug, Clone, Default)]
pub struct PeerTrack {
    pub packets: u64,
    /// Packets with an RFC 6464 audio level.
    pub with_audio_level: u64,
    /// The last level (-dBov).
    pub last_level: Option<i8>,
    /// The decoded audio (the last 10 s at most).
    pub samples: Vec<f32>,
    /// When a packet rose above -50 dBFS after one below -60 dBFS (someone started talking).
    pub onsets: Vec<Instant>,
    /// Whether the last packet was below -60 dBFS.
    pub quiet: bool,
}

/// A subscribe-only peer on str0m, answering the server's offers on a [`SignalClient`].
pub struct SubscriberPeer {
    tracks: watch::Receiver<HashMap<String, PeerTrack>>,
    requests: mpsc::UnboundedSender<Req>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<SignalClient>>,
}

impl SubscriberPeer {
    /// Take over `signal`'s connection and answer what the server offers.
    pub fn start(signal: SignalClient) -> Self {
        let (tx, tracks) = watch::channel(HashMap::new());
        let (stop, stopped) = oneshot::channel();
        let (requests, pending) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(signal, tx, pending, stopped));
        Self { tracks, requests, stop: Some(stop), task }
    }

    /// Send a request on the peer's signalling connection (e.g. `update_subscription`).
    pub fn send(&self, request: Req) -> anyhow::Result<()> {
        self.requests.send(request).map_err(|_| anyhow::anyhow!("the subscriber peer stopped"))
    }

    /// What arrived so far, by track sid.
    pub fn tracks(&self) -> HashMap<String, PeerTrack> {
        self.tracks.borrow().clone()
    }

    /// Wait until `condition` holds for the tracks (checked as packets arrive).
    pub async fn wait_until(
        &self,
        mut condition: impl FnMut(&HashMap<String, PeerTrack>) -> bool,
        within: Duration,
    ) -> anyhow::Result<HashMap<String, PeerTrack>> {
        let mut rx = self.tracks.clone();
        match tokio::time::timeout(within, rx.wait_for(|t| condition(t))).await {
            Ok(Ok(t)) => Ok(t.clone()),
            Ok(Err(_)) => bail!("the subscriber peer stopped"),
            Err(_) => bail!("not within {within:?}; tracks: {:?}", summary(&self.tracks())),
        }
    }

    /// Stop the peer; its signalling connection back.
    pub async fn stop(mut self) -> anyhow::Result<SignalClient> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await?
    }
}

fn summary(tracks: &HashMap<String, PeerTrack>) -> Vec<(String, u64, u64)> {
    tracks.iter().map(|(k, t)| (k.clone(), t.packets, t.with_audio_level)).collect()
}

fn candidate_init(candidate: &Candidate) -> String {
    serde_json::json!({ "candidate": candidate.to_sdp_string().trim_start_matches("a="), "sdpMLineIndex": 0 })
        .to_string()
}

async fn run(
    mut signal: SignalClient,
    tracks: watch::Sender<HashMap<String, PeerTrack>>,
    mut requests: mpsc::UnboundedReceiver<Req>,
    mut stopped: oneshot::Receiver<()>,
) -> anyhow::Result<SignalClient> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local: SocketAddr = socket.local_addr()?;
    let candidate = Candidate::host(local, "udp")?;
    let mut rtc =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(candidate.clone());
    let mut mid_to_track: HashMap<String, String> = HashMap::new();
    let mut decoders: HashMap<String, opus::Decoder> = HashMap::new();
    let mut pcm = vec![0f32; 5760];
    let mut buf = vec![0u8; 2000];
    // What the peer does not handle, for whoever gets the connection back.
    let mut others = VecDeque::new();
    loop {
        let mut deadline = Instant::now() + Duration::from_millis(100);
        loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => {
                    deadline = deadline.min(t);
                    break;
                }
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    let Some(mid) = rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid()) else {
                        continue;
                    };
                    let track =
                        mid_to_track.get(&mid.to_string()).cloned().unwrap_or_else(|| mid.to_string());
                    let decoder = match decoders.entry(track.clone()) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(opus::Decoder::new(RATE, opus::Channels::Mono)?)
                        }
                    };
                    let decoded = decoder.decode_float(&p.payload, &mut pcm, false).unwrap_or(0);
                    tracks.send_modify(|all| {
                        let t = all.entry(track).or_default();
                        t.packets += 1;
                        if let Some(level) = p.header.ext_vals.audio_level {
                            t.with_audio_level += 1;
                            t.last_level = Some(level);
                        }
                        let level = crate::audio::level_db(&pcm[..decoded]);
                        if t.quiet && level > -50.0 {
                            t.onsets.push(Instant::now());
                        }
                        t.quiet = level < -60.0;
                        t.samples.extend_from_slice(&pcm[..decoded]);
                        let keep = 10 * RATE as usize;
                        if t.samples.len() > keep * 2 {
                            t.samples.drain(..t.samples.len() - keep);
                        }
                    });
                }
                Output::Event(_) => {}
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            Some(request) = requests.recv() => signal.send(request).await?,
            received = socket.recv_from(&mut buf) => {
                let (n, source) = received?;
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                }
            }
            message = signal.next() => match message? {
                None => break,
                Some(Resp::Offer(offer)) => {
                    mid_to_track.extend(offer.mid_to_track_id.clone());
                    let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offer.sdp)?)?;
                    signal.send(Req::Answer(proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer.to_sdp_string(),
                        id: offer.id,
                        ..Default::default()
                    })).await?;
                    signal.send(Req::Trickle(proto::TrickleRequest {
                        candidate_init: candidate_init(&candidate),
                        target: proto::SignalTarget::Subscriber as i32,
                        r#final: false,
                    })).await?;
                }
                Some(Resp::Trickle(t)) if t.target == proto::SignalTarget::Subscriber as i32 => {
                    let line = serde_json::from_str::<serde_json::Value>(&t.candidate_init)
                        .ok()
                        .and_then(|v| v.get("candidate")?.as_str().map(str::to_owned));
                    if let Some(c) = line.and_then(|l| Candidate::from_sdp_string(&l).ok()) {
                        rtc.add_remote_candidate(c);
                    }
                }
                Some(other) => others.push_back(other),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    }
    signal.backlog.extend(others);
    Ok(signal)
}
