//! BigBlueButton connector: an event's floor taken from a BBB meeting. Tolk joins the meeting as a
//! listen-only bot through BBB's API (`api.rs`, signed with `checksum.rs`), opens bbb-webrtc-sfu's
//! websocket (`sfu.rs`), receives the meeting's listen-only mix over WebRTC (`peer.rs`) and hands
//! it to the media shards as the event's floor; `floor.rs` keeps that going for the event's life
//! (waits for the meeting, reconnects, leaves). Tolk never sends audio into the meeting.
//! A meeting whose audio runs on LiveKit (BBB 4.0) is taken from its LiveKit room instead
//! (`livekit/`), mixed by Tolk. `session.rs` asks bbb-web who a participant's session token belongs to (the BBB plugin's
//! calls).

pub(crate) mod api;
pub(crate) mod checksum;
pub(crate) mod floor;
pub mod livekit;
pub(crate) mod peer;
pub(crate) mod session;
pub(crate) mod sfu;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use checksum::Algorithm;
pub use floor::{BbbFloor, FloorStatus};

/// Who puts the SDP offer on bbb-webrtc-sfu's websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfferFlow {
    /// BBB 3.x default: the server offers in `startResponse`, Tolk answers.
    #[default]
    Server,
    /// Older servers: Tolk offers in `start`.
    Client,
}

impl std::str::FromStr for OfferFlow {
    type Err = BbbError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "server" => Ok(OfferFlow::Server),
            "client" => Ok(OfferFlow::Client),
            other => Err(BbbError::Config(format!("bbb_offer '{other}' must be 'server' or 'client'"))),
        }
    }
}

/// How to reach the BBB server and behave there.
#[derive(Debug, Clone)]
pub struct BbbConfig {
    /// The API base, e.g. `https://bbb.example.org/bigbluebutton/` (always ends with '/').
    pub url: url::Url,
    /// BBB's shared secret (`bbb-conf --secret`): it signs every API call.
    pub secret: String,
    /// The checksum algorithm that signs API calls (default: SHA-256).
    pub checksum: Algorithm,
    /// The bot's name in the meeting.
    pub bot_name: String,
    /// Who puts the SDP offer on bbb-webrtc-sfu's websocket (default: the server, BBB 3.x).
    pub offer: OfferFlow,
    /// How often a meeting that is not running is asked about again; also the first retry delay.
    pub poll: Duration,
    /// Websocket keep-alive period; three without any answer count as a drop.
    pub keepalive: Duration,
    /// Where bbb-web answers who a session token belongs to (None: `connection/
    /// checkGraphqlAuthorization` under `url`; on the BBB host itself, bbb-web's own port
    /// `http://127.0.0.1:8090/bigbluebutton/connection/checkGraphqlAuthorization` saves nginx).
    pub session_check: Option<url::Url>,
    /// Which bridge carries a meeting's audio to Tolk (default: auto).
    pub audio: livekit::AudioBridge,
    /// The BBB server's LiveKit (None: LiveKit meetings cannot be heard).
    pub livekit: Option<livekit::LiveKitConfig>,
}

impl BbbConfig {
    /// A configuration with the defaults, checking the URL and the secret.
    pub fn new(url: &str, secret: &str) -> Result<Self, BbbError> {
        let mut url = url.trim().to_owned();
        if !url.ends_with('/') {
            url.push('/');
        }
        let url = url::Url::parse(&url)
            .map_err(|e| BbbError::Config(format!("bbb_url '{url}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(BbbError::Config(format!(
                "bbb_url '{url}' must be an http(s) URL such as https://bbb.example.org/bigbluebutton/"
            )));
        }
        if secret.trim().is_empty() {
            return Err(BbbError::Config(
                "bbb_secret is empty: give BBB's shared secret (`bbb-conf --secret`)".into(),
            ));
        }
        Ok(Self {
            url,
            secret: secret.trim().to_owned(),
            checksum: Algorithm::default(),
            bot_name: "Interpretation".into(),
            offer: OfferFlow::default(),
            poll: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
            session_check: None,
            audio: livekit::AudioBridge::default(),
            livekit: None,
        })
    }
}

/// What can go wrong talking to BBB.
#[derive(Debug, thiserror::Error)]
pub enum BbbError {
    /// A BBB setting (URL, secret, offer flow) is missing or malformed; the sentence says which.
    #[error("BigBlueButton configuration: {0}")]
    Config(String),
    /// An event asks for a BBB floor, but this node has no BBB server configured.
    #[error("this node has no BigBlueButton server: set TOLK_BBB_URL and TOLK_BBB_SECRET")]
    NotConfigured,
    /// The HTTP client for BBB could not be built (its TLS setup failed).
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// BBB could not be reached, or its answer could not be read.
    #[error("BBB at {url} is unreachable ({call}): {detail}")]
    Unreachable {
        /// The API call (`isMeetingRunning`, `join`, `stuns`, …).
        call: String,
        /// The configured API base.
        url: String,
        /// The transport error and its causes.
        detail: String,
    },
    /// BBB answered an API call with an HTTP error status.
    #[error("BBB answered {call} with HTTP {status}: {body}")]
    Http {
        /// The API call (`isMeetingRunning`, `join`, `stuns`, …).
        call: String,
        /// The HTTP status code of the answer.
        status: u16,
        /// The start of the answer's body (at most 200 characters).
        body: String,
    },
    /// BBB's answer is not the XML (or, for `stuns`, the JSON) its API documents.
    #[error("BBB's answer to {call} is not what its API documents: {detail}")]
    Xml {
        /// The API call (`isMeetingRunning`, `join`, `stuns`, …).
        call: String,
        /// What is missing or malformed in the answer.
        detail: String,
    },
    /// BBB refused an API call (`<returncode>FAILED</returncode>`).
    #[error("{}", failed(call, key, message, *algorithm))]
    Failed {
        /// The API call (`isMeetingRunning`, `join`, …).
        call: String,
        /// BBB's `messageKey`, e.g. `checksumError` or `notFound`.
        key: String,
        /// BBB's `message`, in its words.
        message: String,
        /// The checksum algorithm the call was signed with (named when BBB refuses the checksum).
        algorithm: Algorithm,
    },
    /// bbb-webrtc-sfu's websocket failed, refused listen-only audio, or sent an unusable SDP.
    #[error("bbb-webrtc-sfu: {0}")]
    Signalling(String),
    /// The WebRTC media from BBB failed (sockets, candidates, the connection itself).
    #[error("media from BBB: {0}")]
    Media(String),
    /// The meeting's LiveKit room could not be joined or heard.
    #[error(transparent)]
    LiveKit(#[from] livekit::LiveKitError),
}

fn failed(call: &str, key: &str, message: &str, algorithm: Algorithm) -> String {
    if key == "checksumError" {
        format!(
            "BBB refused the checksum of '{call}' ({message}): check the shared secret (TOLK_BBB_SECRET) \
             and that BBB accepts {algorithm} checksums (TOLK_BBB_CHECKSUM)"
        )
    } else {
        format!("BBB refused '{call}': {message} ({key})")
    }
}

impl BbbError {
    /// A configuration or secret problem: retrying soon will not help.
    pub fn is_lasting(&self) -> bool {
        matches!(self, BbbError::Failed { key, .. } if key == "checksumError")
            || matches!(self, BbbError::Config(_) | BbbError::NotConfigured)
            || matches!(self, BbbError::LiveKit(e) if e.is_lasting())
    }
}

/// Make aws-lc-rs the process's TLS provider (for HTTP clients built without a TLS config of
/// their own); a provider installed before stays.
pub fn install_default_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An HTTP client for BBB's servers: Tolk's TLS, no redirects, 5 s to connect, `timeout` per
/// request.
pub(crate) fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, BbbError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config()?.as_ref().clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .user_agent(concat!("tolk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BbbError::Client(e.to_string()))
}

/// TLS for the API and the websocket: aws-lc-rs (already in the binary for DTLS) and the
/// system's root certificates.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, BbbError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!("no system root certificates found: https BBB servers cannot be verified");
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| BbbError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}
