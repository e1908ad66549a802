//! A BigBlueButton stand-in for the integration tests. It owns what a BBB server shows the relay's
//! BBB connector, written from BBB's documented API and bbb-webrtc-sfu's websocket protocol, and
//! served on 127.0.0.1 so that the real client talks to it over the network:
//!
//! - the HTTP API under `/bigbluebutton/api/`: `isMeetingRunning`, `getMeetingInfo`, `join`,
//!   `create` and `end`, each with its checksum checked as bbb-web checks it, and `stuns` (by
//!   session token). XML answers with HTTP 200, also when they say FAILED, as BBB does;
//! - the bbb-webrtc-sfu websocket at `/bbb-webrtc-sfu`, opened only with a session token from
//!   `join` and the `JSESSIONID` cookie issued with it: ping/pong and listen-only audio (`start`,
//!   `subscriberAnswer`, `stop`), the server offering (BBB 3.x) or the client offering;
//! - the media: one real WebRTC peer per audio session (str0m, ICE-lite with a host candidate,
//!   like mediasoup), on its own thread and UDP socket, sending the meeting's floor: an Opus sine
//!   at the meeting's tone;
//! - what happened, as [`StandInStats`], with an event-driven [`BbbStandIn::wait_until`];
//! - what BBB's HTML5 client and its plugins see ([`client`]): bbb-web's session check, the
//!   `enter` API, the meeting's users and plugins, and a client page that loads plugins.

mod client;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure};
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use serde_json::{Value, json};
use sha1::Digest;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Input, Rtc};
use tokio::sync::{mpsc, watch};

use crate::audio::{FRAME, OpusTone};
use crate::client::{bind_rtc, drain, opus_pt, step};

/// The checksum algorithms BBB knows, by the names [`StandInConfig::algorithms`] takes.
pub const ALGORITHMS: [&str; 4] = ["sha1", "sha256", "sha384", "sha512"];

/// A media peer that has not connected this long after its negotiation fails (ICE).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connected media peer whose ICE stays disconnected this long fails.
const LOST_TIMEOUT: Duration = Duration::from_secs(5);

/// Who offers the SDP on the websocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferFlow {
    /// The SFU offers in `startResponse.sdpAnswer`; the client answers in
    /// `subscriberAnswer.sdpOffer` (BBB 3.x listen-only).
    Server,
    /// The client offers in `start.sdpOffer`; `startResponse.sdpAnswer` is the answer.
    Client,
}

#[derive(Clone, Debug)]
pub struct StandInConfig {
    /// The shared secret (`bbb-conf --secret`).
    pub secret: String,
    /// Checksum algorithms accepted, of [`ALGORITHMS`] (bbb-web's `supportedChecksumAlgorithms`).
    pub algorithms: Vec<&'static str>,
    pub offer: OfferFlow,
}

impl Default for StandInConfig {
    fn default() -> Self {
        Self { secret: "tolk-test-secret".into(), algorithms: ALGORITHMS.to_vec(), offer: OfferFlow::Server }
    }
}

/// What the stand-in saw and did.
#[derive(Clone, Debug, Default)]
pub struct StandInStats {
    /// API calls refused for their checksum (wrong, missing, or of an algorithm not accepted).
    pub checksum_failures: u32,
    /// API call names in order, e.g. "isMeetingRunning", "join", "stuns" (also refused ones).
    pub calls: Vec<String>,
    /// Decoded query parameters of each successful join (without the checksum).
    pub joins: Vec<HashMap<String, String>>,
    pub websockets_open: usize,
    pub websockets_refused: u32,
    /// Audio sessions started (`startResponse` accepted sent).
    pub media_started: u32,
    /// Media peers connected and sending the tone now.
    pub media_flowing: usize,
    pub pings: u32,
}

/// A participant joined through [`BbbStandIn::join_participant`].
#[derive(Debug, Clone)]
pub struct StandInUser {
    /// The session token BBB's client has in its address (`?sessionToken=`).
    pub token: String,
    /// `JSESSIONID=…`, the cookie that came with it.
    pub cookie: String,
    /// BBB's internal user id.
    pub user_id: String,
}

/// A BBB server on 127.0.0.1 for one test.
pub struct BbbStandIn {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl BbbStandIn {
    /// Serve on 127.0.0.1 at a free port.
    pub async fn start(config: StandInConfig) -> anyhow::Result<Self> {
        for algorithm in &config.algorithms {
            ensure!(ALGORITHMS.contains(algorithm), "unknown checksum algorithm {algorithm}");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            secret: config.secret,
            algorithms: config.algorithms,
            offer: config.offer,
            base: format!("http://{addr}"),
            state: Mutex::new(Registry::default()),
            stats: watch::Sender::new(StandInStats::default()),
        });
        let app = Router::new()
            .route("/bigbluebutton/api", get(index))
            .route("/bigbluebutton/api/", get(index))
            .route("/bigbluebutton/api/{call}", get(api))
            .route("/bbb-webrtc-sfu", get(websocket))
            .merge(client::routes())
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "BBB stand-in server stopped");
            }
        });
        Ok(Self { inner, server })
    }

    /// The value for `TOLK_BBB_URL`: `http://127.0.0.1:PORT/bigbluebutton/`.
    pub fn api_url(&self) -> String {
        format!("{}/bigbluebutton/", self.inner.base)
    }

    pub fn secret(&self) -> &str {
        &self.inner.secret
    }

    /// A running meeting (named as its id) whose floor mix is a sine at `tone_hz`. Creating a
    /// meeting that runs changes its tone for new audio sessions; one that ended runs again.
    pub fn create_meeting(&self, meeting_id: &str, tone_hz: f64) {
        self.inner.create(meeting_id, meeting_id, tone_hz);
    }

    /// A running meeting created as through the API, with `meta_…` parameters (`metadata`, names
    /// without `meta_`) and `pluginManifests` (URLs).
    pub fn create_meeting_with(
        &self,
        meeting_id: &str,
        name: &str,
        metadata: &[(&str, &str)],
        manifests: &[&str],
    ) {
        self.inner.create(meeting_id, name, 440.0);
        if let Some(meeting) = self.inner.registry().meetings.get_mut(meeting_id) {
            meeting.metadata =
                metadata.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())).collect();
            meeting.plugin_manifests = manifests.iter().map(|m| (*m).to_owned()).collect();
        }
    }

    /// BBB's internal id of a meeting.
    pub fn internal_id(&self, meeting_id: &str) -> Option<String> {
        self.inner.registry().meetings.get(meeting_id).map(|m| m.internal_id.clone())
    }

    /// A participant who joined `meeting_id` as a browser does (through a signed `join`): the
    /// session token and the `JSESSIONID` cookie it came with.
    pub fn join_participant(
        &self,
        meeting_id: &str,
        name: &str,
        moderator: bool,
    ) -> anyhow::Result<StandInUser> {
        let mut registry = self.inner.registry();
        ensure!(
            registry.meetings.get(meeting_id).is_some_and(|m| m.running),
            "meeting {meeting_id} does not run"
        );
        let user = StandInUser {
            token: random_token(16),
            cookie: format!("JSESSIONID={}", hex::encode_upper(rand::random::<[u8; 16]>())),
            user_id: format!("w_{}", random_token(12)),
        };
        registry.sessions.insert(
            user.token.clone(),
            Session {
                meeting_id: meeting_id.to_owned(),
                user_id: user.user_id.clone(),
                full_name: name.to_owned(),
                role: if moderator { "MODERATOR" } else { "VIEWER" },
                jsessionid: user.cookie.trim_start_matches("JSESSIONID=").to_owned(),
                left: false,
            },
        );
        Ok(user)
    }

    /// The participant of `token` leaves the meeting (bbb-web keeps their session as removed).
    pub fn leave(&self, token: &str) {
        if let Some(session) = self.inner.registry().sessions.get_mut(token) {
            session.left = true;
        }
    }

    /// A signed `join` URL, as a front-end (Greenlight, Moodle) sends a browser to.
    pub fn join_url(&self, meeting_id: &str, name: &str, moderator: bool) -> anyhow::Result<String> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("fullName", name)
            .append_pair("meetingID", meeting_id)
            .append_pair("role", if moderator { "MODERATOR" } else { "VIEWER" })
            .finish();
        let sum = checksum("sha256", "join", &query, &self.inner.secret)?;
        Ok(format!("{}/bigbluebutton/api/join?{query}&checksum={sum}", self.inner.base))
    }

    /// Like BBB's `end`: the meeting stops running, its session tokens stop working, its
    /// websockets are closed (with a close frame) and its media peers stop.
    pub fn end_meeting(&self, meeting_id: &str) {
        self.inner.end(meeting_id);
    }

    /// A network drop: the meeting's websockets are cut without a close frame and its media
    /// peers stop sending; the meeting keeps running and its session tokens keep working.
    pub fn drop_connections(&self, meeting_id: &str) {
        self.inner.cut(Some(meeting_id));
    }

    pub fn stats(&self) -> StandInStats {
        self.inner.stats.borrow().clone()
    }

    /// Wait until `what` holds for the stats (checked on every change), or fail after `within`
    /// with the last stats.
    pub async fn wait_until(
        &self,
        what: impl Fn(&StandInStats) -> bool,
        within: Duration,
    ) -> anyhow::Result<StandInStats> {
        let mut changes = self.inner.stats.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let stats = changes.borrow_and_update();
                if what(&stats) {
                    return Ok(stats.clone());
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the BBB stand-in stopped"),
                Err(_) => bail!("the BBB stand-in did not get there within {within:?}: {:?}", self.stats()),
            }
        }
    }
}

impl Drop for BbbStandIn {
    fn drop(&mut self) {
        self.server.abort();
        self.inner.cut(None);
    }
}

/// What the server and its websocket tasks and media threads share.
struct Inner {
    secret: String,
    algorithms: Vec<&'static str>,
    offer: OfferFlow,
    /// `http://127.0.0.1:PORT`
    base: String,
    state: Mutex<Registry>,
    stats: watch::Sender<StandInStats>,
}

#[derive(Default)]
struct Registry {
    meetings: HashMap<String, Meeting>,
    /// By session token.
    sessions: HashMap<String, Session>,
    sockets: HashMap<u64, Socket>,
    next_socket: u64,
}

struct Meeting {
    name: String,
    internal_id: String,
    voice_bridge: String,
    attendee_pw: String,
    moderator_pw: String,
    create_time: u128,
    tone_hz: f64,
    running: bool,
    /// `meta_…` create parameters, names without `meta_` in lower case (as bbb-web keeps them).
    metadata: Vec<(String, String)>,
    /// `pluginManifests` of create: the manifest URLs.
    plugin_manifests: Vec<String>,
}

struct Session {
    meeting_id: String,
    user_id: String,
    full_name: String,
    role: &'static str,
    jsessionid: String,
    /// Left the meeting (or was removed): bbb-web still knows the token, as a removed session.
    left: bool,
}

/// An open websocket.
struct Socket {
    meeting_id: String,
    session_token: String,
    out: mpsc::UnboundedSender<Out>,
    /// Stop flags of the media peers it started.
    peers: Vec<Arc<AtomicBool>>,
}

/// What a websocket task is told from outside.
enum Out {
    Json(Value),
    /// Close with a close frame (meeting ended).
    Close,
    /// Cut the connection without a close frame (network drop).
    Cut,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stat(&self, change: impl FnOnce(&mut StandInStats)) {
        self.stats.send_modify(change);
    }

    fn create(&self, meeting_id: &str, name: &str, tone_hz: f64) -> bool {
        let mut registry = self.registry();
        if let Some(meeting) = registry.meetings.get_mut(meeting_id)
            && meeting.running
        {
            meeting.tone_hz = tone_hz;
            return false;
        }
        let create_time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let internal_id = format!("{}-{create_time}", hex::encode(sha1::Sha1::digest(meeting_id.as_bytes())));
        let meeting = Meeting {
            name: name.to_owned(),
            internal_id,
            voice_bridge: rand::rng().random_range(10_000..100_000).to_string(),
            attendee_pw: random_token(8),
            moderator_pw: random_token(8),
            create_time,
            tone_hz,
            running: true,
            metadata: Vec::new(),
            plugin_manifests: Vec::new(),
        };
        registry.meetings.insert(meeting_id.to_owned(), meeting);
        true
    }

    fn end(&self, meeting_id: &str) -> bool {
        let mut registry = self.registry();
        let Some(meeting) = registry.meetings.get_mut(meeting_id) else { return false };
        meeting.running = false;
        registry.sessions.retain(|_, s| s.meeting_id != meeting_id);
        for socket in registry.sockets.values().filter(|s| s.meeting_id == meeting_id) {
            stop_all(&socket.peers);
            let _ = socket.out.send(Out::Close);
        }
        true
    }

    /// Cut the websockets of `meeting_id` (of every meeting for `None`) and stop their media.
    fn cut(&self, meeting_id: Option<&str>) {
        let registry = self.registry();
        for socket in registry.sockets.values().filter(|s| meeting_id.is_none_or(|m| s.meeting_id == m)) {
            stop_all(&socket.peers);
            let _ = socket.out.send(Out::Cut);
        }
    }

    /// Checks a checksum as bbb-web does: the raw query string with the checksum pair taken out,
    /// the algorithm told by the checksum's length. On failure, the message for the response.
    fn check_checksum(&self, call: &str, raw_query: &str, params: &[(String, String)]) -> Result<(), String> {
        let Some(provided) = param(params, "checksum").filter(|c| !c.is_empty()) else {
            return Err("You must provide the checksum".into());
        };
        let without = raw_query
            .replace(&format!("&checksum={provided}"), "")
            .replace(&format!("checksum={provided}&"), "")
            .replace(&format!("checksum={provided}"), "");
        let algorithm = match provided.len() {
            40 => "sha1",
            64 => "sha256",
            96 => "sha384",
            128 => "sha512",
            n => return Err(format!("Checksums do not match (a checksum of {n} characters)")),
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(format!("Checksums do not match ({algorithm} is not accepted)"));
        }
        let expected = checksum(algorithm, call, &without, &self.secret).map_err(|e| e.to_string())?;
        if expected != provided {
            tracing::info!(call, query = without, algorithm, "BBB stand-in: checksum mismatch");
            return Err("Checksums do not match".into());
        }
        Ok(())
    }

    fn is_meeting_running(&self, params: &[(String, String)]) -> Response {
        let Some(meeting_id) = param(params, "meetingID").filter(|m| !m.is_empty()) else {
            return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
        };
        let running = self.registry().meetings.get(meeting_id).is_some_and(|m| m.running);
        xml([tag("returncode", "SUCCESS"), tag("running", running)].concat())
    }

    fn get_meeting_info(&self, params: &[(String, String)]) -> Response {
        let Some(meeting_id) = param(params, "meetingID").filter(|m| !m.is_empty()) else {
            return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
        };
        let registry = self.registry();
        let Some(meeting) = registry.meetings.get(meeting_id).filter(|m| m.running) else {
            return failed(
                "notFound",
                "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?",
            );
        };
        // Users are in the meeting while their client (here: a websocket) is connected.
        let present: HashSet<&str> = registry
            .sockets
            .values()
            .filter(|s| s.meeting_id == meeting_id)
            .map(|s| s.session_token.as_str())
            .collect();
        let listening: HashSet<&str> = registry
            .sockets
            .values()
            .filter(|s| s.meeting_id == meeting_id && s.peers.iter().any(|p| !p.load(Ordering::Relaxed)))
            .map(|s| s.session_token.as_str())
            .collect();
        let attendees: Vec<&Session> = present.iter().filter_map(|t| registry.sessions.get(*t)).collect();
        let moderators = attendees.iter().filter(|s| s.role == "MODERATOR").count();
        let attendee_xml: String = attendees
            .iter()
            .map(|s| {
                let listen_only = registry
                    .sessions
                    .iter()
                    .any(|(t, o)| listening.contains(t.as_str()) && o.user_id == s.user_id);
                let fields = [
                    tag("userID", &s.user_id),
                    tag("fullName", &s.full_name),
                    tag("role", s.role),
                    tag("isPresenter", false),
                    tag("isListeningOnly", listen_only),
                    tag("hasJoinedVoice", false),
                    tag("hasVideo", false),
                    tag("clientType", "HTML5"),
                ];
                format!("<attendee>{}</attendee>", fields.concat())
            })
            .collect();
        xml([
            tag("returncode", "SUCCESS"),
            tag("meetingName", &meeting.name),
            tag("meetingID", meeting_id),
            tag("internalMeetingID", &meeting.internal_id),
            tag("createTime", meeting.create_time),
            tag("voiceBridge", &meeting.voice_bridge),
            tag("dialNumber", "613-555-1234"),
            tag("attendeePW", &meeting.attendee_pw),
            tag("moderatorPW", &meeting.moderator_pw),
            tag("running", meeting.running),
            tag("duration", 0),
            tag("hasUserJoined", !attendees.is_empty()),
            tag("recording", false),
            tag("hasBeenForciblyEnded", false),
            tag("startTime", meeting.create_time),
            tag("endTime", 0),
            tag("participantCount", attendees.len()),
            tag("listenerCount", listening.len()),
            tag("voiceParticipantCount", 0),
            tag("videoCount", 0),
            tag("maxUsers", 0),
            tag("moderatorCount", moderators),
            format!("<attendees>{attendee_xml}</attendees>"),
            client::metadata_xml(&meeting.metadata),
            tag("isBreakout", false),
        ]
        .concat())
    }

    fn join(&self, params: &[(String, String)]) -> Response {
        let Some(meeting_id) = param(params, "meetingID").filter(|m| !m.trim().is_empty()) else {
            return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
        };
        let mut registry = self.registry();
        let Some(meeting) = registry.meetings.get(meeting_id) else {
            return failed(
                "invalidMeetingIdentifier",
                "The meeting ID that you supplied did not match any existing meetings",
            );
        };
        if !meeting.running {
            return failed(
                "meetingForciblyEnded",
                "You can not join a meeting that has already been forcibly ended",
            );
        }
        let Some(full_name) = param(params, "fullName").filter(|n| !n.trim().is_empty()) else {
            return failed("missingParamFullName", "You must provide your name");
        };
        let role = match (
            param(params, "role").map(str::to_ascii_uppercase).as_deref(),
            param(params, "password"),
        ) {
            (Some("VIEWER"), _) => "VIEWER",
            (Some("MODERATOR"), _) => "MODERATOR",
            (_, Some(p)) if p == meeting.attendee_pw => "VIEWER",
            (_, Some(p)) if p == meeting.moderator_pw => "MODERATOR",
            _ => {
                return failed(
                    "invalidPassword",
                    "You either did not supply a password or the password supplied is neither the attendee \
                     or moderator password for this conference.",
                );
            }
        };
        let internal_id = meeting.internal_id.clone();
        let session_token = random_token(16);
        let user_id = format!("w_{}", random_token(12));
        let auth_token = random_token(12);
        let jsessionid = hex::encode_upper(rand::random::<[u8; 16]>());
        let url = format!("{}/html5client/join?sessionToken={session_token}", self.base);
        registry.sessions.insert(
            session_token.clone(),
            Session {
                meeting_id: meeting_id.to_owned(),
                user_id: user_id.clone(),
                full_name: full_name.to_owned(),
                role,
                jsessionid: jsessionid.clone(),
                left: false,
            },
        );
        drop(registry);
        let joined: HashMap<String, String> =
            params.iter().filter(|(k, _)| k != "checksum").map(|(k, v)| (k.clone(), v.clone())).collect();
        self.stat(|s| s.joins.push(joined));
        let cookie = format!("JSESSIONID={jsessionid}; Path=/; HttpOnly");
        let mut response = if param(params, "redirect").is_some_and(|r| r.eq_ignore_ascii_case("false")) {
            xml([
                tag("returncode", "SUCCESS"),
                tag("messageKey", "successfullyJoined"),
                tag("message", "You have joined successfully."),
                tag("meeting_id", &internal_id),
                tag("user_id", &user_id),
                tag("auth_token", &auth_token),
                tag("session_token", &session_token),
                tag("guestStatus", "ALLOW"),
                tag("url", &url),
            ]
            .concat())
        } else {
            // Relative, like a BBB host behind its nginx: the browser stays on the origin it
            // joined through (where Tolk's plugin is served too).
            let relative = format!("/html5client/join?sessionToken={session_token}");
            (StatusCode::FOUND, [(header::LOCATION, relative)]).into_response()
        };
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    fn create_call(&self, params: &[(String, String)]) -> Response {
        let Some(meeting_id) = param(params, "meetingID").filter(|m| !m.trim().is_empty()) else {
            return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
        };
        let name = param(params, "name").unwrap_or(meeting_id);
        let new = self.create(meeting_id, name, 440.0);
        let mut registry = self.registry();
        if new && let Some(meeting) = registry.meetings.get_mut(meeting_id) {
            meeting.metadata = params
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("meta_")?.to_ascii_lowercase(), v.clone())))
                .collect();
            meeting.plugin_manifests =
                param(params, "pluginManifests").map(client::manifest_urls).unwrap_or_default();
        }
        let Some(meeting) = registry.meetings.get(meeting_id) else {
            return failed("notFound", "The meeting could not be created.");
        };
        let (key, message) = if new {
            ("", "")
        } else {
            ("duplicateWarning", "This conference was already in existence and may currently be in progress.")
        };
        xml([
            tag("returncode", "SUCCESS"),
            tag("meetingID", meeting_id),
            tag("internalMeetingID", &meeting.internal_id),
            tag("attendeePW", &meeting.attendee_pw),
            tag("moderatorPW", &meeting.moderator_pw),
            tag("createTime", meeting.create_time),
            tag("voiceBridge", &meeting.voice_bridge),
            tag("hasUserJoined", false),
            tag("duration", 0),
            tag("hasBeenForciblyEnded", false),
            tag("messageKey", key),
            tag("message", message),
        ]
        .concat())
    }

    fn end_call(&self, params: &[(String, String)]) -> Response {
        let Some(meeting_id) = param(params, "meetingID").filter(|m| !m.trim().is_empty()) else {
            return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
        };
        if !self.registry().meetings.get(meeting_id).is_some_and(|m| m.running) {
            return failed("notFound", "We could not find a meeting with that meeting ID");
        }
        self.end(meeting_id);
        xml([
            tag("returncode", "SUCCESS"),
            tag("messageKey", "sentEndMeetingRequest"),
            tag(
                "message",
                "A request to end the meeting was sent.  Please wait a few seconds, and then use the \
                 getMeetingInfo or isMeetingRunning API calls to verify that it was ended.",
            ),
        ]
        .concat())
    }

    fn stuns(&self, params: &[(String, String)]) -> Response {
        let valid = param(params, "sessionToken").is_some_and(|token| {
            let registry = self.registry();
            registry
                .sessions
                .get(token)
                .is_some_and(|s| registry.meetings.get(&s.meeting_id).is_some_and(|m| m.running))
        });
        if !valid {
            let mut response = failed("missingSession", "Invalid session token");
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            return response;
        }
        axum::Json(json!({
            "stunServers": [{"url": "stun:127.0.0.1:3478"}],
            "turnServers": [],
            "remoteIceCandidates": [],
        }))
        .into_response()
    }

    /// The meeting of a session token, if the token was issued by `join` with this `JSESSIONID`
    /// and its meeting has not ended.
    fn authorize(&self, token: Option<&str>, jsessionid: Option<&str>) -> Option<String> {
        let (token, jsessionid) = (token?, jsessionid?);
        let registry = self.registry();
        let session = registry.sessions.get(token).filter(|s| s.jsessionid == jsessionid)?;
        registry.meetings.get(&session.meeting_id).filter(|m| m.running)?;
        Some(session.meeting_id.clone())
    }

    /// Register an open websocket, unless its session ended meanwhile.
    fn register(&self, token: &str, out: mpsc::UnboundedSender<Out>) -> Option<(u64, String)> {
        let mut registry = self.registry();
        let meeting_id = registry.sessions.get(token)?.meeting_id.clone();
        let id = registry.next_socket;
        registry.next_socket += 1;
        let socket = Socket {
            meeting_id: meeting_id.clone(),
            session_token: token.to_owned(),
            out,
            peers: Vec::new(),
        };
        registry.sockets.insert(id, socket);
        drop(registry);
        self.stat(|s| s.websockets_open += 1);
        Some((id, meeting_id))
    }

    fn unregister(&self, id: u64) {
        if let Some(socket) = self.registry().sockets.remove(&id) {
            stop_all(&socket.peers);
        }
        self.stat(|s| s.websockets_open = s.websockets_open.saturating_sub(1));
    }
}

fn stop_all(peers: &[Arc<AtomicBool>]) {
    for stop in peers {
        stop.store(true, Ordering::Relaxed);
    }
}

/// The first value of a query parameter (as a servlet's `getParameter`).
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

fn random_token(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn tag(name: &str, value: impl Display) -> String {
    format!("<{name}>{}</{name}>", escape(&value.to_string()))
}

/// An API answer: `<response>…</response>`, HTTP 200.
fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml;charset=utf-8")],
        format!("<response>{body}</response>"),
    )
        .into_response()
}

fn failed(key: &str, message: &str) -> Response {
    xml([tag("returncode", "FAILED"), tag("messageKey", key), tag("message", message)].concat())
}

/// `GET /bigbluebutton/api`: the version (not a call, not counted).
async fn index() -> Response {
    xml([
        tag("returncode", "SUCCESS"),
        tag("version", "2.0"),
        tag("apiVersion", "2.0"),
        tag("bbbVersion", "3.0"),
    ]
    .concat())
}

/// `GET /bigbluebutton/api/{call}`
async fn api(
    State(inner): State<Arc<Inner>>,
    Path(call): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    inner.stat(|s| s.calls.push(call.clone()));
    let params = query_params(&uri);
    if call == "stuns" {
        return inner.stuns(&params);
    }
    if call == "enter" {
        return inner.enter(&params, jsessionid(&headers).as_deref());
    }
    if !matches!(
        call.as_str(),
        "isMeetingRunning" | "getMeetingInfo" | "getMeetings" | "join" | "create" | "end"
    ) {
        return failed("unsupportedRequest", "This request is not supported.");
    }
    if let Err(message) = inner.check_checksum(&call, uri.query().unwrap_or(""), &params) {
        inner.stat(|s| s.checksum_failures += 1);
        return failed("checksumError", &message);
    }
    match call.as_str() {
        "isMeetingRunning" => inner.is_meeting_running(&params),
        "getMeetingInfo" => inner.get_meeting_info(&params),
        "getMeetings" => inner.get_meetings(),
        "join" => inner.join(&params),
        "create" => inner.create_call(&params),
        _ => inner.end_call(&params),
    }
}

fn jsessionid(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("JSESSIONID=").map(str::to_owned))
}

/// `GET /bbb-webrtc-sfu?sessionToken=…` with the `JSESSIONID` cookie: the SFU's websocket.
async fn websocket(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let params = query_params(&uri);
    let token = param(&params, "sessionToken").map(str::to_owned);
    if inner.authorize(token.as_deref(), jsessionid(&headers).as_deref()).is_none() {
        inner.stat(|s| s.websockets_refused += 1);
        tracing::info!(token, "BBB stand-in: websocket refused");
        return (StatusCode::FORBIDDEN, "Forbidden").into_response();
    }
    let token = token.unwrap_or_default();
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |ws| serve_socket(inner, ws, token)),
        Err(rejection) => rejection.into_response(),
    }
}

async fn serve_socket(inner: Arc<Inner>, mut ws: WebSocket, token: String) {
    let (out, mut told) = mpsc::unbounded_channel();
    let Some((id, meeting_id)) = inner.register(&token, out.clone()) else { return };
    let mut conn = Conn {
        inner: inner.clone(),
        socket: id,
        connection_id: connection_id(),
        meeting_id,
        out,
        pending: None,
        current: None,
    };
    'serve: loop {
        tokio::select! {
            incoming = ws.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(data))) => String::from_utf8_lossy(&data).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                for reply in conn.handle(&text) {
                    if ws.send(Message::Text(reply.to_string().into())).await.is_err() {
                        break 'serve;
                    }
                }
            }
            told = told.recv() => match told {
                Some(Out::Json(message)) => {
                    if ws.send(Message::Text(message.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) => {
                    let frame = CloseFrame { code: 1000, reason: "meeting ended".into() };
                    if ws.send(Message::Close(Some(frame))).await.is_ok() {
                        // Let the client answer the close before the connection goes.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(message)) = ws.recv().await {
                                if matches!(message, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                    }
                    break;
                }
                // Dropping the socket closes the TCP connection without a close frame.
                Some(Out::Cut) | None => break,
            }
        }
    }
    conn.stop_media();
    drop(ws);
    inner.unregister(id);
}

/// A connection id like bbb-webrtc-sfu's (a UUID v4).
fn connection_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// The SFU's side of one websocket.
struct Conn {
    inner: Arc<Inner>,
    socket: u64,
    connection_id: String,
    meeting_id: String,
    out: mpsc::UnboundedSender<Out>,
    /// The server's offer waiting for `subscriberAnswer` (server-offers flow).
    pending: Option<Pending>,
    /// The running media peer's stop flag.
    current: Option<Arc<AtomicBool>>,
}

struct Pending {
    rtc: Rtc,
    udp: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    offer: SdpPendingOffer,
    role: String,
}

/// A media failure: `webRTCAudioError` with bbb-webrtc-sfu's code and reason.
struct Failure {
    code: u32,
    reason: &'static str,
    detail: String,
}

impl Failure {
    fn generic(e: impl Display) -> Self {
        Self { code: 2200, reason: "MEDIA_GENERIC_ERROR", detail: e.to_string() }
    }

    fn sdp(e: impl Display) -> Self {
        Self { code: 2202, reason: "MEDIA_INVALID_SDP", detail: e.to_string() }
    }

    fn ice(detail: &str) -> Self {
        Self { code: 2022, reason: "ICE_STATE_FAILED", detail: detail.into() }
    }
}

impl Conn {
    /// Replies to one text message.
    fn handle(&mut self, text: &str) -> Vec<Value> {
        let message: Value = match serde_json::from_str(text) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => return vec![self.invalid(None, "the message is not a JSON object")],
            Err(e) => return vec![self.invalid(None, &format!("malformed JSON: {e}"))],
        };
        let role = message.get("role").and_then(Value::as_str).map(str::to_owned);
        let id = message.get("id").and_then(Value::as_str).unwrap_or_default();
        if id == "ping" {
            self.inner.stat(|s| s.pings += 1);
            return vec![json!({"id": "pong"})];
        }
        if id == "close" {
            return Vec::new();
        }
        if message.get("type").and_then(Value::as_str) != Some("audio") {
            return vec![self.invalid(role.as_deref(), "only type \"audio\" is served")];
        }
        match id {
            "start" => vec![self.start(&message)],
            "subscriberAnswer" => self.answer(&message).into_iter().collect(),
            "stop" => {
                self.stop_media();
                Vec::new()
            }
            // Non-trickle: the candidates are in the SDP; late ones change nothing.
            "iceCandidate" => Vec::new(),
            other => vec![self.invalid(role.as_deref(), &format!("unknown message id {other:?}"))],
        }
    }

    /// `{"id":"error",…}` for a request the SFU cannot take (`SFU_INVALID_REQUEST`).
    fn invalid(&self, role: Option<&str>, detail: &str) -> Value {
        tracing::info!(detail, "BBB stand-in: invalid websocket request");
        json!({
            "type": "audio",
            "connectionId": self.connection_id,
            "id": "error",
            "role": role,
            "code": 2300,
            "reason": "SFU_INVALID_REQUEST",
            "message": "SFU_INVALID_REQUEST",
            "rawMessage": detail,
        })
    }

    fn media_error(&self, role: &str, failure: &Failure) -> Value {
        media_error(&self.connection_id, role, failure)
    }

    fn start(&mut self, message: &Value) -> Value {
        let role = message.get("role").and_then(Value::as_str);
        let Some(role) = role.filter(|r| matches!(*r, "recv" | "recvonly")) else {
            return self.invalid(role, "role must be \"recv\" (this stand-in serves listen-only audio)");
        };
        let role = role.to_owned();
        if !message.get("clientSessionNumber").and_then(Value::as_f64).is_some_and(|n| n >= 0.0) {
            return self.invalid(Some(&role), "clientSessionNumber must be a number >= 0");
        }
        let offer = match message.get("sdpOffer") {
            None | Some(Value::Null) => None,
            Some(Value::String(sdp)) if !sdp.is_empty() => Some(sdp.as_str()),
            Some(_) => return self.invalid(Some(&role), "sdpOffer must be an SDP string"),
        };
        let tone_hz = {
            let registry = self.inner.registry();
            registry.meetings.get(&self.meeting_id).filter(|m| m.running).map(|m| m.tone_hz)
        };
        let Some(tone_hz) = tone_hz else {
            return self.invalid(Some(&role), "the meeting is not running");
        };
        // As bbb-webrtc-sfu: a new start replaces the session this connection had.
        self.stop_media();
        let result = match (self.inner.offer, offer) {
            (OfferFlow::Server, Some(_)) => {
                return self.invalid(Some(&role), "this SFU offers: start must not carry an sdpOffer");
            }
            (OfferFlow::Client, None) => {
                return self.invalid(Some(&role), "this SFU answers: start must carry the client's sdpOffer");
            }
            (OfferFlow::Server, None) => self.offer(&role),
            (OfferFlow::Client, Some(sdp)) => self.answer_offer(sdp, &role, tone_hz),
        };
        match result {
            Ok(sdp) => {
                self.inner.stat(|s| s.media_started += 1);
                json!({
                    "type": "audio",
                    "connectionId": self.connection_id,
                    "id": "startResponse",
                    "role": role,
                    "response": "accepted",
                    "sdpAnswer": sdp,
                })
            }
            Err(failure) => self.media_error(&role, &failure),
        }
    }

    /// Server-offers flow: the SFU's offer (the reply carries it as `sdpAnswer`).
    fn offer(&mut self, role: &str) -> Result<String, Failure> {
        let (mut rtc, udp, local) = new_peer_rtc()?;
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or_else(|| Failure::generic("no offer to make"))?;
        let sdp = offer.to_sdp_string();
        self.pending = Some(Pending { rtc, udp, local, mid, offer: pending, role: role.to_owned() });
        Ok(sdp)
    }

    /// Client-offers flow: the answer to the client's offer; the media starts at once.
    fn answer_offer(&mut self, sdp: &str, role: &str, tone_hz: f64) -> Result<String, Failure> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(Failure::sdp)?;
        let (mut rtc, udp, local) = new_peer_rtc()?;
        let answer = rtc.sdp_api().accept_offer(offer).map_err(Failure::sdp)?;
        let mid = answer
            .media_lines
            .iter()
            .map(|line| line.mid())
            .find(|mid| {
                rtc.media(*mid).is_some_and(|m| {
                    m.kind() == MediaKind::Audio
                        && !m.disabled()
                        && matches!(m.direction(), Direction::SendOnly | Direction::SendRecv)
                })
            })
            .ok_or_else(|| Failure::sdp("the offer has no audio section that receives"))?;
        let pt = opus_pt(&rtc, mid).ok_or_else(|| Failure {
            code: 2203,
            reason: "MEDIA_NO_AVAILABLE_CODEC",
            detail: "the offer has no Opus".into(),
        })?;
        self.spawn(Peer { rtc, udp, local, mid, pt, tone_hz, role: role.to_owned() })?;
        Ok(answer.to_sdp_string())
    }

    /// `subscriberAnswer` (server-offers flow): the client's answer, in its `sdpOffer` field.
    fn answer(&mut self, message: &Value) -> Option<Value> {
        let role = message.get("role").and_then(Value::as_str);
        let Some(sdp) = message.get("sdpOffer").and_then(Value::as_str) else {
            return Some(self.invalid(role, "subscriberAnswer must carry the answer in sdpOffer"));
        };
        let Some(pending) = self.pending.take() else {
            return Some(self.invalid(role, "no offer of this SFU is waiting for an answer"));
        };
        let Pending { mut rtc, udp, local, mid, offer, role } = pending;
        let tone_hz = self.inner.registry().meetings.get(&self.meeting_id).map_or(440.0, |m| m.tone_hz);
        let started = (|| {
            let answer = SdpAnswer::from_sdp_string(sdp).map_err(Failure::sdp)?;
            rtc.sdp_api().accept_answer(offer, answer).map_err(Failure::sdp)?;
            let pt = opus_pt(&rtc, mid).ok_or_else(|| Failure {
                code: 2203,
                reason: "MEDIA_NO_AVAILABLE_CODEC",
                detail: "the answer has no Opus on the audio section".into(),
            })?;
            self.spawn(Peer { rtc, udp, local, mid, pt, tone_hz, role: role.clone() })
        })();
        started.err().map(|failure| self.media_error(&role, &failure))
    }

    /// Start a media peer's thread and register its stop flag.
    fn spawn(&mut self, peer: Peer) -> Result<(), Failure> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = PeerShared {
            inner: self.inner.clone(),
            out: self.out.clone(),
            stop: stop.clone(),
            connection_id: self.connection_id.clone(),
        };
        std::thread::Builder::new()
            .name("bbb-stand-in-media".into())
            .spawn(move || peer.run(shared))
            .map_err(Failure::generic)?;
        if let Some(socket) = self.inner.registry().sockets.get_mut(&self.socket) {
            socket.peers.push(stop.clone());
        }
        self.current = Some(stop);
        Ok(())
    }

    fn stop_media(&mut self) {
        self.pending = None;
        if let Some(stop) = self.current.take() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

fn media_error(connection_id: &str, role: &str, failure: &Failure) -> Value {
    tracing::info!(code = failure.code, detail = failure.detail, "BBB stand-in: media failure");
    json!({
        "type": "audio",
        "connectionId": connection_id,
        "id": "webRTCAudioError",
        "role": role,
        "code": failure.code,
        "reason": failure.reason,
        "message": failure.reason,
        "rawMessage": failure.detail,
    })
}

/// An ICE-lite peer like mediasoup's, Opus only, with a host candidate on its own UDP socket.
fn new_peer_rtc() -> Result<(Rtc, UdpSocket, SocketAddr), Failure> {
    bind_rtc(
        Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .set_stats_interval(None),
    )
    .map_err(Failure::generic)
}

/// A negotiated media peer, ready to run on its thread.
struct Peer {
    rtc: Rtc,
    udp: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pt: Pt,
    tone_hz: f64,
    role: String,
}

/// What a media thread shares with its websocket and the stand-in.
struct PeerShared {
    inner: Arc<Inner>,
    out: mpsc::UnboundedSender<Out>,
    stop: Arc<AtomicBool>,
    connection_id: String,
}

/// Counts a peer in `media_flowing` while it sends, until it is dropped.
struct Flowing {
    inner: Arc<Inner>,
    counted: bool,
}

impl Flowing {
    fn start(&mut self) {
        if !self.counted {
            self.counted = true;
            self.inner.stat(|s| s.media_flowing += 1);
        }
    }
}

impl Drop for Flowing {
    fn drop(&mut self) {
        if self.counted {
            self.inner.stat(|s| s.media_flowing = s.media_flowing.saturating_sub(1));
        }
    }
}

impl Peer {
    fn run(mut self, shared: PeerShared) {
        let mut flowing = Flowing { inner: shared.inner.clone(), counted: false };
        let outcome = self.drive(&shared, &mut flowing);
        if let Err(failure) = outcome
            && !shared.stop.load(Ordering::Relaxed)
        {
            let _ = shared.out.send(Out::Json(media_error(&shared.connection_id, &self.role, &failure)));
        }
    }

    /// Connect, then send the tone every 20 ms until told to stop.
    fn drive(&mut self, shared: &PeerShared, flowing: &mut Flowing) -> Result<(), Failure> {
        let mut tone = OpusTone::new(self.tone_hz, 0.5).map_err(Failure::generic)?;
        let started = Instant::now();
        let mut connected = false;
        let mut lost_since: Option<Instant> = None;
        let mut next: Option<Instant> = None;
        let mut seq = u64::from(rand::random::<u16>() & 0x3fff);
        let mut ts: u32 = rand::random();
        let mut buf = vec![0u8; 2048];
        while !shared.stop.load(Ordering::Relaxed) {
            let mut deadline = drain(&mut self.rtc, &self.udp, |_, event| {
                if matches!(event, Event::Connected) {
                    connected = true;
                } else if let Event::IceConnectionStateChange(state) = event {
                    match state {
                        IceConnectionState::Disconnected => {
                            lost_since.get_or_insert_with(Instant::now);
                        }
                        IceConnectionState::Connected | IceConnectionState::Completed => lost_since = None,
                        _ => {}
                    }
                }
            })
            .map_err(Failure::generic)?;
            let now = Instant::now();
            if !connected && now >= started + CONNECT_TIMEOUT {
                return Err(Failure::ice("ICE and DTLS did not connect within 10 s"));
            }
            if lost_since.is_some_and(|t| now >= t + LOST_TIMEOUT) {
                return Err(Failure::ice("ICE disconnected for 5 s"));
            }
            if !self.rtc.is_alive() {
                return Err(Failure::generic("the peer connection closed"));
            }
            if connected {
                let due = *next.get_or_insert(now);
                if now >= due {
                    let payload = tone.next_packet().map_err(Failure::generic)?;
                    let mut direct = self.rtc.direct_api();
                    let stream = direct
                        .stream_tx_by_mid(self.mid, None)
                        .ok_or_else(|| Failure::generic("no send stream on the audio section"))?;
                    stream.write_rtp(RtpWrite::new(self.pt, seq.into(), ts, now, payload));
                    // str0m sends queued media on its next timeout: now.
                    self.rtc.handle_input(Input::Timeout(now)).map_err(Failure::generic)?;
                    seq += 1;
                    ts = ts.wrapping_add(FRAME as u32);
                    next = Some(due + Duration::from_millis(20));
                    if !flowing.counted {
                        flowing.start();
                        let _ = shared.out.send(Out::Json(json!({
                            "type": "audio",
                            "connectionId": shared.connection_id,
                            "id": "webRTCAudioSuccess",
                            "success": "MEDIA_FLOWING",
                        })));
                    }
                    continue;
                }
                deadline = deadline.min(due);
            } else {
                deadline = deadline.min(started + CONNECT_TIMEOUT);
            }
            step(&mut self.rtc, &self.udp, self.local, deadline, &mut buf).map_err(Failure::generic)?;
        }
        Ok(())
    }
}

/// A checksum as a BBB client computes it, for tests: lowercase hex of
/// `algorithm(call + query + secret)`, `algorithm` one of [`ALGORITHMS`].
pub fn checksum(algorithm: &str, call: &str, query: &str, secret: &str) -> anyhow::Result<String> {
    let data = format!("{call}{query}{secret}");
    Ok(match algorithm {
        "sha1" => hex::encode(sha1::Sha1::digest(data.as_bytes())),
        "sha256" => hex::encode(sha2::Sha256::digest(data.as_bytes())),
        "sha384" => hex::encode(sha2::Sha384::digest(data.as_bytes())),
        "sha512" => hex::encode(sha2::Sha512::digest(data.as_bytes())),
        other => return Err(anyhow!("unknown checksum algorithm {other}")),
    })
}
