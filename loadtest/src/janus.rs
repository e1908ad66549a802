//! Janus as the comparison relay: the same load profile can be replayed against Janus (Debian
//! package `janus`, 1.1.x) to compare with Tolk.
//!
//! [`JanusServer`] runs a Janus process of our own (its own config folder in a temp dir, its own
//! ports) with only the streaming plugin and the HTTP (REST) transport, and one Opus RTP
//! mountpoint that is fed the floor's plain Opus RTP. [`JanusWatch`] is one listener's
//! signalling with the streaming plugin over the REST API: `watch` gives Janus's SDP offer
//! (candidates included: Janus runs half-trickle), `start` sends our answer.
//!
//! Things a listener must know:
//! - Janus never gathers loopback candidates (it skips `IFF_LOOPBACK` interfaces) and libnice pins
//!   each ICE socket to its interface (`IP_UNICAST_IF`), so Janus cannot send to `127.0.0.1`: a
//!   listener with a host candidate on 127.0.0.1 gets Janus's checks lost and never connects. Bind
//!   listeners to [`JanusServer::listener_ip`] (the machine's first non-loopback address, the one
//!   in Janus's candidate, e.g. `192.0.2.2`) instead. The floor's RTP still goes to 127.0.0.1.
//! - Sessions expire after `session_timeout` without a request: it is set to an hour here, and
//!   [`JanusWatch::keepalive`] should still be called every ~25 s.
//! - Janus re-stamps what it forwards: its own SSRC (announced in the offer), payload type 111.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The mountpoint's numeric id in the streaming plugin.
const MOUNTPOINT_ID: u64 = 1;
/// The mountpoint's secret: needed to read its RTP port back with an `info` request.
const MOUNTPOINT_SECRET: &str = "tolk-loadtest";
/// How long a Janus session lives without any request (janus.jcfg `session_timeout`).
const SESSION_TIMEOUT_S: u32 = 3600;
/// How long Janus may take to answer `/info` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one plain API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for an asynchronous plugin event (the offer, the `start` answer).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Janus holds a long poll open when it has nothing to say.
const LONG_POLL: Duration = Duration::from_secs(30);

/// How to run Janus.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// The `janus` binary.
    pub binary: PathBuf,
    /// Ports Janus uses for ICE/RTP and for the mountpoint (inclusive).
    pub rtp_port_range: (u16, u16),
    /// If `Some(k)`: run Janus under `taskset -c k` (pinned to core `k`).
    pub cpu: Option<usize>,
    /// Janus's log level, 0-7.
    pub log_level: u8,
}

impl Default for JanusOptions {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("/usr/bin/janus"),
            rtp_port_range: (20000, 40000),
            cpu: None,
            log_level: 3,
        }
    }
}

/// A Janus process of our own: config folder in a temp dir, HTTP transport on a free port on
/// 127.0.0.1, only the streaming plugin and the HTTP transport loaded (websockets, pfunix, mqtt,
/// rabbitmq, nanomsg, the other plugins, the loggers and the event handlers are disabled), full
/// ICE without STUN or TURN on one address ([`JanusServer::listener_ip`]), half-trickle (the
/// offer carries the candidates), the given RTP port range, and one Opus RTP mountpoint (audio
/// only, pt 111, opus/48000/2) on a free port of that range, bound to 127.0.0.1.
///
/// Stopped (killed, waited for, temp dir removed) by [`JanusServer::stop`] or on drop.
#[derive(Debug)]
pub struct JanusServer {
    /// `http://127.0.0.1:PORT/janus`
    pub http_url: String,
    /// The mountpoint's id, to `watch`.
    pub mountpoint: u64,
    /// Where to send the floor's Opus RTP (pt 111, 48 kHz clock): `127.0.0.1:PORT`.
    pub rtp_in: SocketAddr,
    /// The address listeners must put in their host candidate (bind their UDP socket to): the one
    /// Janus gathers its only ICE candidate on (`ice_enforce_list`): the address the default route
    /// leaves by, else Janus's `local-ip`. Janus's ICE sockets cannot reach
    /// `127.0.0.1` (it gathers no loopback candidate and libnice pins its sockets to their
    /// interface with `IP_UNICAST_IF`, so packets to 127.0.0.1 leave by that interface and are
    /// lost).
    pub listener_ip: IpAddr,
    /// The Janus process.
    pub pid: u32,
    /// Janus's config folder (a temp dir, removed on stop); its log is `janus.log` in it.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl JanusServer {
    /// Write the configuration, start Janus and wait until `GET {http_url}/info` answers and the
    /// mountpoint is there.
    pub async fn start(options: JanusOptions) -> anyhow::Result<Self> {
        if !options.binary.is_file() {
            bail!(
                "Janus is not installed: {} not found (install the Debian package `janus`: \
                 `apt-get install -y janus`; scripts/test installs it)",
                options.binary.display()
            );
        }
        let (low, high) = options.rtp_port_range;
        if low == 0 || low >= high {
            bail!("invalid RTP port range {low}-{high}");
        }
        let lib = lib_dir(&options.binary)?;
        // The HTTP port is found free, then given to Janus: another process may take it in
        // between, so a start that fails on it is tried again with another port.
        let mut last_error = None;
        for _ in 0..3 {
            let dir = make_temp_dir()?;
            match Self::start_in(&options, &lib, dir.clone()).await {
                Ok(server) => return Ok(server),
                Err(StartError::PortTaken(e)) => {
                    let _ = fs::remove_dir_all(&dir);
                    last_error = Some(e);
                }
                Err(StartError::Other(e)) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("Janus did not start")))
    }

    async fn start_in(options: &JanusOptions, lib: &Path, dir: PathBuf) -> Result<Self, StartError> {
        let http_port = free_tcp_port().map_err(StartError::Other)?;
        // ICE candidates on one address only: the one the default route leaves by (when there
        // is one), which listeners bind to.
        let ice_ip = default_route_ipv4();
        write_config(&dir, lib, options, http_port, ice_ip).map_err(StartError::Other)?;
        let log_path = dir.join("janus.log");
        let log = fs::File::create(&log_path).context("creating janus.log").map_err(StartError::Other)?;
        let log_err = log.try_clone().context("janus.log").map_err(StartError::Other)?;
        let mut command = match options.cpu {
            Some(k) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(k.to_string()).arg(&options.binary);
                c
            }
            None => Command::new(&options.binary),
        };
        command
            .arg("--config")
            .arg(dir.join("janus.jcfg"))
            .arg("--configs-folder")
            .arg(&dir)
            .arg("--disable-colors")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", options.binary.display()))
            .map_err(StartError::Other)?;
        let mut server = Self {
            http_url: format!("http://127.0.0.1:{http_port}/janus"),
            mountpoint: MOUNTPOINT_ID,
            rtp_in: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            listener_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            pid: child.id(),
            dir,
            child: Some(child),
        };
        tolk_relay::bbb::install_default_crypto();
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                server.child = None;
                let tail = server.log_tail(30);
                let error = anyhow!("Janus exited ({status}) while starting; the end of its log:\n{tail}");
                return Err(if tail.contains("Couldn't start webserver") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Other(error)
                });
            }
            if let Ok(info) = server_info(&http, &server.http_url).await {
                let ip = ice_ip.map(IpAddr::V4).or_else(|| {
                    info.get("local-ip").and_then(Value::as_str).and_then(|ip| ip.parse::<IpAddr>().ok())
                });
                match ip {
                    Some(ip) if !ip.is_loopback() && !ip.is_unspecified() => server.listener_ip = ip,
                    _ => {
                        return Err(StartError::Other(anyhow!(
                            "Janus found no non-loopback address to gather ICE candidates on \
                             (its local-ip: {:?}); Janus never uses loopback for ICE",
                            info.get("local-ip")
                        )));
                    }
                }
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                let tail = server.log_tail(30);
                return Err(StartError::Other(anyhow!(
                    "Janus did not answer {}/info within {START_TIMEOUT:?}; the end of its log:\n{tail}",
                    server.http_url
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let port = mountpoint_port(&http, &server.http_url).await.map_err(|e| {
            StartError::Other(e.context(format!("the end of Janus's log:\n{}", server.log_tail(30))))
        })?;
        server.rtp_in = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        tracing::debug!(url = %server.http_url, rtp_in = %server.rtp_in, pid = server.pid, took = ?started.elapsed(), "janus started");
        Ok(server)
    }

    /// The last `lines` lines of Janus's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kill Janus, wait for it and remove its temp dir (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.dir.starts_with(std::env::temp_dir()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for JanusServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum StartError {
    /// Janus could not bind its HTTP port (taken since we found it free): worth another try.
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

/// One listener's signalling session with the streaming plugin: a Janus session with one handle
/// attached to `janus.plugin.streaming`, watching a mountpoint.
///
/// Call [`JanusWatch::hangup`] when done: a dropped watch leaves its session in Janus until the
/// session times out.
#[derive(Debug)]
pub struct JanusWatch {
    api: Api,
    session: u64,
    handle: u64,
}

impl JanusWatch {
    /// Create a session, attach the streaming plugin and `watch` `mountpoint`; returns the watch
    /// and Janus's SDP offer (with its candidates and `a=end-of-candidates`: Janus does not
    /// trickle when `full_trickle` is off; any candidate that does come as a trickle event while
    /// waiting is appended to the SDP).
    pub async fn watch(
        http: &reqwest::Client,
        server_url: &str,
        mountpoint: u64,
    ) -> anyhow::Result<(Self, String)> {
        let api = Api { http: http.clone(), base: server_url.trim_end_matches('/').to_owned() };
        let (session, handle) = api.attach().await?;
        let watch = Self { api, session, handle };
        match watch.offer(mountpoint).await {
            Ok(sdp) => Ok((watch, sdp)),
            Err(e) => {
                let _ = watch.api.destroy(session).await;
                Err(e)
            }
        }
    }

    async fn offer(&self, mountpoint: u64) -> anyhow::Result<String> {
        let event = self
            .api
            .message(self.session, self.handle, json!({"request": "watch", "id": mountpoint}), None)
            .await
            .with_context(|| format!("watching mountpoint {mountpoint}"))?;
        let jsep = event.value.get("jsep").context("Janus's answer to watch carries no JSEP offer")?;
        if jsep.get("type").and_then(Value::as_str) != Some("offer") {
            bail!("Janus's answer to watch carries a JSEP that is not an offer: {jsep}");
        }
        let mut sdp = jsep.get("sdp").and_then(Value::as_str).context("JSEP offer without sdp")?.to_owned();
        // Candidates sent as trickle events (only with full_trickle) go into the SDP.
        for candidate in event.trickled {
            if !sdp.ends_with("\r\n") {
                sdp.push_str("\r\n");
            }
            let _ = write!(sdp, "a={candidate}\r\n");
        }
        Ok(sdp)
    }

    /// Send `start` with our SDP answer (all our candidates in it: `trickle: false`) and wait for
    /// the plugin's `starting` event.
    pub async fn start(&self, answer_sdp: &str) -> anyhow::Result<()> {
        let jsep = json!({"type": "answer", "sdp": answer_sdp, "trickle": false});
        let event = self
            .api
            .message(self.session, self.handle, json!({"request": "start"}), Some(jsep))
            .await
            .context("starting the stream")?;
        let status = event.value.pointer("/plugindata/data/result/status").and_then(Value::as_str);
        match status {
            Some("starting" | "started") => Ok(()),
            _ => bail!("unexpected answer from Janus to start: {}", event.value),
        }
    }

    /// Keep the session alive (Janus drops sessions idle for `session_timeout`).
    pub async fn keepalive(&self) -> anyhow::Result<()> {
        let reply = self.api.post(&format!("/{}", self.session), json!({"janus": "keepalive"})).await?;
        expect_kind(&reply, "ack", "keepalive")
    }

    /// Detach the handle (Janus hangs up the peer connection) and destroy the session.
    pub async fn hangup(self) -> anyhow::Result<()> {
        let detached = self
            .api
            .post(&format!("/{}/{}", self.session, self.handle), json!({"janus": "detach"}))
            .await
            .and_then(|r| expect_kind(&r, "success", "detach"));
        let destroyed = self.api.destroy(self.session).await;
        detached.and(destroyed)
    }

    /// The Janus session id.
    pub fn session_id(&self) -> u64 {
        self.session
    }

    /// The streaming plugin handle id.
    pub fn handle_id(&self) -> u64 {
        self.handle
    }
}

/// The REST API of one Janus server.
#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    /// `http://host:port/janus`
    base: String,
}

/// A plugin event answering one of our messages, and candidates trickled while waiting for it.
struct PluginEvent {
    value: Value,
    trickled: Vec<String>,
}

impl Api {
    /// POST a Janus API request (a fresh transaction is added); returns the reply, or an error
    /// with Janus's reason when it is a Janus `error` or a plugin error.
    async fn post(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        let what = body.get("janus").and_then(Value::as_str).unwrap_or("request").to_owned();
        body["transaction"] = Value::String(transaction());
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| anyhow!("Janus {what} (POST {url}): {}", describe(&e)))?;
        parse_reply(response, &what, &url).await
    }

    /// Create a session and attach the streaming plugin: (session, handle).
    async fn attach(&self) -> anyhow::Result<(u64, u64)> {
        let created = self.post("", json!({"janus": "create"})).await?;
        expect_kind(&created, "success", "create")?;
        let session =
            created.pointer("/data/id").and_then(Value::as_u64).context("Janus create: no session id")?;
        let attached = self
            .post(&format!("/{session}"), json!({"janus": "attach", "plugin": "janus.plugin.streaming"}))
            .await
            .and_then(|r| {
                expect_kind(&r, "success", "attach")?;
                r.pointer("/data/id").and_then(Value::as_u64).context("Janus attach: no handle id")
            });
        match attached {
            Ok(handle) => Ok((session, handle)),
            Err(e) => {
                let _ = self.destroy(session).await;
                Err(e)
            }
        }
    }

    async fn destroy(&self, session: u64) -> anyhow::Result<()> {
        let reply = self.post(&format!("/{session}"), json!({"janus": "destroy"})).await?;
        expect_kind(&reply, "success", "destroy")
    }

    /// Send a plugin message; returns the plugin's answer: the synchronous reply when it is one,
    /// else the event for this transaction, fetched by long-polling the session.
    async fn message(
        &self,
        session: u64,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<PluginEvent> {
        let transaction = transaction();
        let mut request = json!({"janus": "message", "transaction": transaction, "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let request_name =
            request.pointer("/body/request").and_then(Value::as_str).unwrap_or("message").to_owned();
        let url = format!("{}/{session}/{handle}", self.base);
        let response = self
            .http
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&request)
            .send()
            .await
            .map_err(|e| anyhow!("Janus {request_name} (POST {url}): {}", describe(&e)))?;
        let reply = parse_reply(response, &request_name, &url).await?;
        match reply.get("janus").and_then(Value::as_str) {
            Some("success" | "event") => return Ok(PluginEvent { value: reply, trickled: Vec::new() }),
            Some("ack") => {}
            _ => bail!("Janus {request_name}: unexpected reply {reply}"),
        }
        self.wait_event(session, handle, &transaction, &request_name).await
    }

    /// Long-poll the session's events until the plugin event for `transaction` arrives.
    async fn wait_event(
        &self,
        session: u64,
        handle: u64,
        transaction: &str,
        what: &str,
    ) -> anyhow::Result<PluginEvent> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let url = format!("{}/{session}?maxev=10", self.base);
        let mut trickled = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("Janus {what}: no answer from the plugin within {EVENT_TIMEOUT:?}");
            }
            let response = self
                .http
                .get(&url)
                .timeout(left.min(LONG_POLL + Duration::from_secs(5)))
                .send()
                .await
                .map_err(|e| {
                    anyhow!("Janus {what}: waiting for the plugin's event (GET {url}): {}", describe(&e))
                })?;
            let reply = parse_reply(response, what, &url).await?;
            let events = match reply {
                Value::Array(events) => events,
                one => vec![one],
            };
            for event in events {
                match event.get("janus").and_then(Value::as_str) {
                    Some("event")
                        if event.get("transaction").and_then(Value::as_str) == Some(transaction) =>
                    {
                        plugin_error(&event, what)?;
                        return Ok(PluginEvent { value: event, trickled });
                    }
                    Some("trickle") if event.get("sender").and_then(Value::as_u64) == Some(handle) => {
                        if let Some(c) = event.pointer("/candidate/candidate").and_then(Value::as_str) {
                            trickled.push(c.trim_start_matches("a=").to_owned());
                        }
                    }
                    Some("hangup") if event.get("sender").and_then(Value::as_u64) == Some(handle) => {
                        let reason = event.get("reason").and_then(Value::as_str).unwrap_or("no reason");
                        bail!("Janus {what}: the peer connection was hung up ({reason})");
                    }
                    Some("detached") if event.get("sender").and_then(Value::as_u64) == Some(handle) => {
                        bail!("Janus {what}: the handle was detached");
                    }
                    // keepalive (nothing within the poll), webrtcup, media, other events.
                    _ => {}
                }
            }
        }
    }
}

/// Read a Janus reply: HTTP failures and Janus `error` objects become errors with the reason.
async fn parse_reply(response: reqwest::Response, what: &str, url: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| anyhow!("Janus {what} ({url}): reading the reply: {}", describe(&e)))?;
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if let Some(value) = &value {
        janus_error(value, what)?;
        plugin_error(value, what)?;
    }
    if !status.is_success() {
        bail!("Janus {what} ({url}): HTTP {status}: {}", text.trim());
    }
    value.with_context(|| format!("Janus {what} ({url}): not JSON: {}", text.trim()))
}

/// `{"janus": "error", "error": {"code", "reason"}}` as an error.
fn janus_error(value: &Value, what: &str) -> anyhow::Result<()> {
    if value.get("janus").and_then(Value::as_str) == Some("error") {
        let code = value.pointer("/error/code").and_then(Value::as_i64).unwrap_or(0);
        let reason = value.pointer("/error/reason").and_then(Value::as_str).unwrap_or("no reason given");
        bail!("Janus {what}: error {code}: {reason}");
    }
    Ok(())
}

/// A plugin's `{"error_code", "error"}` in `plugindata.data` as an error.
fn plugin_error(value: &Value, what: &str) -> anyhow::Result<()> {
    if let Some(data) = value.pointer("/plugindata/data")
        && let Some(reason) = data.get("error").and_then(Value::as_str)
    {
        let code = data.get("error_code").and_then(Value::as_i64).unwrap_or(0);
        bail!("Janus streaming plugin, {what}: error {code}: {reason}");
    }
    Ok(())
}

fn expect_kind(value: &Value, kind: &str, what: &str) -> anyhow::Result<()> {
    match value.get("janus").and_then(Value::as_str) {
        Some(k) if k == kind => Ok(()),
        _ => bail!("Janus {what}: expected \"{kind}\", got {value}"),
    }
}

/// A reqwest error with its causes (timeouts and refused connections say so).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

fn transaction() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `GET {url}/info`: Janus's server info.
async fn server_info(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = http.get(format!("{url}/info")).timeout(Duration::from_secs(2)).send().await?;
    let info = parse_reply(response, "info", url).await?;
    expect_kind(&info, "server_info", "info")?;
    Ok(info)
}

/// The RTP port the mountpoint listens on (read back with its secret), through a short session.
async fn mountpoint_port(http: &reqwest::Client, url: &str) -> anyhow::Result<u16> {
    let api = Api { http: http.clone(), base: url.to_owned() };
    let (session, handle) = api.attach().await?;
    let info = api
        .message(
            session,
            handle,
            json!({"request": "info", "id": MOUNTPOINT_ID, "secret": MOUNTPOINT_SECRET}),
            None,
        )
        .await;
    let _ = api.destroy(session).await;
    let info = info.context("reading the mountpoint's port")?.value;
    let port = info
        .pointer("/plugindata/data/info/media/0/port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .with_context(|| format!("the mountpoint's info has no RTP port: {info}"))?;
    Ok(port)
}

/// The folder holding Janus's `plugins/`, `transports/`, `events/` and `loggers/`, next to the
/// binary's prefix (`/usr/lib/x86_64-linux-gnu/janus` for the Debian package).
fn lib_dir(binary: &Path) -> anyhow::Result<PathBuf> {
    let binary = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_owned());
    let prefix = binary.parent().and_then(Path::parent).unwrap_or(Path::new("/usr"));
    let mut candidates = Vec::new();
    for lib in ["lib", "lib64"] {
        let base = prefix.join(lib);
        candidates.push(base.join("janus"));
        if let Ok(entries) = fs::read_dir(&base) {
            let mut arch: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("janus")).collect();
            arch.sort();
            candidates.extend(arch);
        }
    }
    candidates
        .iter()
        .find(|dir| {
            dir.join("plugins/libjanus_streaming.so").exists()
                && dir.join("transports/libjanus_http.so").exists()
        })
        .cloned()
        .with_context(|| {
            format!(
                "Janus's streaming plugin and HTTP transport not found under {}/lib*/ \
                 (is the Debian package `janus` complete? scripts/test installs it)",
                prefix.display()
            )
        })
}

/// The `*.so` file names in `dir` other than `keep`, comma-separated (Janus's `disable` lists).
fn others(dir: &Path, keep: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.ends_with(".so") && name != keep)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(",")
}

fn write_config(
    dir: &Path,
    lib: &Path,
    options: &JanusOptions,
    http_port: u16,
    ice_ip: Option<Ipv4Addr>,
) -> anyhow::Result<()> {
    let (low, high) = options.rtp_port_range;
    let quoted = |p: &Path| p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    let janus = format!(
        r#"# Written by tolk-loadtest: Janus with the streaming plugin and the HTTP transport only.
general: {{
	configs_folder = "{configs}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = {level}
	debug_timestamps = true
	debug_colors = false
	server_name = "tolk-loadtest"
	session_timeout = {SESSION_TIMEOUT_S}
	hide_dependencies = true
	# Handles share one event loop (and thread) instead of one thread each: Janus's best
	# setting for many peers on one core (with a thread per handle, 1,000 listeners on one
	# core lose 18 % of the packets).
	event_loops = 1
}}
media: {{
	rtp_port_range = "{low}-{high}"
}}
nat: {{
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ignore_mdns = true
{enforce}}}
plugins: {{
	disable = "{plugins}"
}}
transports: {{
	disable = "{transports}"
}}
loggers: {{
	disable = "{loggers}"
}}
events: {{
	broadcast = false
	disable = "{events}"
}}
"#,
        configs = quoted(dir),
        lib = quoted(lib),
        level = options.log_level.min(7),
        enforce = ice_ip.map(|ip| format!("\tice_enforce_list = \"{ip}\"\n")).unwrap_or_default(),
        plugins = others(&lib.join("plugins"), "libjanus_streaming.so"),
        transports = others(&lib.join("transports"), "libjanus_http.so"),
        loggers = others(&lib.join("loggers"), ""),
        events = others(&lib.join("events"), ""),
    );
    let http = format!(
        r#"general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {http_port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
"#
    );
    // port = 0: the plugin takes a free port of the range; it is read back with an info request.
    let streaming = format!(
        r#"general: {{
	rtp_port_range = "{low}-{high}"
	events = false
}}
floor: {{
	type = "rtp"
	id = {MOUNTPOINT_ID}
	description = "Tolk load test floor"
	secret = "{MOUNTPOINT_SECRET}"
	media = (
		{{
			type = "audio"
			mid = "a"
			label = "floor"
			port = 0
			iface = "127.0.0.1"
			pt = 111
			codec = "opus"
		}}
	)
}}
"#
    );
    fs::write(dir.join("janus.jcfg"), janus).context("writing janus.jcfg")?;
    fs::write(dir.join("janus.transport.http.jcfg"), http).context("writing janus.transport.http.jcfg")?;
    fs::write(dir.join("janus.plugin.streaming.jcfg"), streaming)
        .context("writing janus.plugin.streaming.jcfg")?;
    Ok(())
}

fn make_temp_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let dir = base.join(format!("tolk-janus-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a temp dir for Janus under {}", base.display())
}

/// The local IPv4 address the default route leaves by (a connected UDP socket sends nothing).
fn default_route_ipv4() -> Option<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(198, 51, 100, 1), 9)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
}
