//! The relay under test, in-process: a fresh data directory, any free ports, and helpers for the
//! organiser API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tolk_relay::api::{EventView, InterpreterView};
use tolk_relay::config::{ConfigArgs, Settings};
use tolk_relay::server::Server;

pub const ADMIN: &str = "test-admin-token";

pub struct TestRelay {
    pub server: Server,
    pub base: String,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
}

/// Log output for tests (`TOLK_LOG=debug cargo test` for more).
pub fn init_log() {
    let filter = std::env::var("TOLK_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

impl TestRelay {
    /// A relay with `shards` media shards on free ports, in a new data directory.
    pub async fn start(shards: usize) -> anyhow::Result<Self> {
        let data_dir = std::env::temp_dir().join(format!("tolk-test-{}", tolk_relay::ids::random_hex(8)));
        Self::start_in(data_dir, shards).await
    }

    /// A relay whose settings `adjust` changes before it starts (capacity, headroom).
    pub async fn start_with(shards: usize, adjust: impl FnOnce(&mut Settings)) -> anyhow::Result<Self> {
        let data_dir = std::env::temp_dir().join(format!("tolk-test-{}", tolk_relay::ids::random_hex(8)));
        Self::start_configured(data_dir, shards, adjust).await
    }

    /// A second node on the same store as a relay already running (its own media ports).
    pub async fn start_shared(
        data_dir: &std::path::Path,
        shards: usize,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        Self::start_configured(data_dir.to_path_buf(), shards, adjust).await
    }

    /// A relay on an existing data directory (to test a restart).
    pub async fn start_in(data_dir: PathBuf, shards: usize) -> anyhow::Result<Self> {
        Self::start_configured(data_dir, shards, |_| {}).await
    }

    async fn start_configured(
        data_dir: PathBuf,
        shards: usize,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        init_log();
        let args = ConfigArgs {
            listen: Some("127.0.0.1:0".parse()?),
            media_port: Some(0),
            media_shards: Some(shards),
            data_dir: Some(data_dir.clone()),
            admin_token: Some(ADMIN.into()),
            metrics_listen: Some("127.0.0.1:0".into()),
            // Loopback candidates, as the tests' peers are here (a test wanting the defaults sets
            // `settings.public_ips` to `tolk_relay::net::addresses::discover()`).
            public_ip: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let mut settings = Settings::resolve(&args)?;
        settings.connect_timeout = std::time::Duration::from_secs(2);
        settings.database_url = test_database(&data_dir).await?;
        adjust(&mut settings);
        let server = Server::start(settings).await?;
        let base = format!("http://{}", server.addr);
        Ok(Self { server, base, http: reqwest::Client::new(), data_dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/metrics` on the relay's metrics address (not the public one).
    pub fn metrics_url(&self) -> String {
        match self.server.metrics_addr {
            Some(addr) => format!("http://{addr}/metrics"),
            None => self.url("/metrics"),
        }
    }

    /// The text of `/metrics`.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        Ok(self.http.get(self.metrics_url()).send().await?.error_for_status()?.text().await?)
    }

    /// Create an event; returns the 201 body.
    pub async fn create_event(&self, body: Value) -> anyhow::Result<EventView> {
        let response =
            self.http.post(self.url("/api/v1/events")).bearer_auth(ADMIN).json(&body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("create event answered {status}: {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// An event since five minutes, ending in `ends_in`, whose floor is BBB meeting `meeting`
    /// (English, French channel, 50 listeners).
    pub async fn bbb_event(&self, meeting: &str, ends_in: chrono::Duration) -> anyhow::Result<EventView> {
        let now = chrono::Utc::now();
        self.create_event(json!({
            "title": "BBB plenary",
            "floor_language": "en",
            "languages": ["fr"],
            "starts_at": (now - chrono::Duration::minutes(5)).to_rfc3339(),
            "ends_at": (now + ends_in).to_rfc3339(),
            "expected_listeners": 50,
            "floor": {"kind": "bbb", "meeting_id": meeting},
        }))
        .await
    }

    /// Wait until the BBB floor of `event` satisfies `what` (event-driven: the floor's state
    /// channel), at most `within`.
    pub async fn floor_until(
        &self,
        event: &str,
        within: std::time::Duration,
        what: impl Fn(&tolk_relay::api::FloorStatus) -> bool,
    ) -> anyhow::Result<tolk_relay::api::FloorStatus> {
        let mut watch = self
            .server
            .watch_floor(&tolk_relay::ids::EventId::parse(event)?)
            .ok_or_else(|| anyhow::anyhow!("no BBB floor"))?;
        let waited =
            tokio::time::timeout(within, watch.wait_for(|s| what(s))).await.map(|r| r.map(|s| s.clone()));
        match waited {
            Ok(status) => Ok(status?),
            Err(_) => bail!("floor state still {:?} after {within:?}", watch.borrow().clone()),
        }
    }

    /// An event happening now with floor English and the given interpretation languages.
    pub async fn event_now(&self, languages: &[&str], floor_kind: &str) -> anyhow::Result<EventView> {
        let now = chrono_now();
        self.create_event(json!({
            "title": "Test event",
            "floor_language": "en",
            "languages": languages,
            "starts_at": now.0,
            "ends_at": now.1,
            "expected_listeners": 100,
            "floor": {"kind": floor_kind},
        }))
        .await
    }

    /// Issue a booth link (organiser API) for `languages` of an event; the 201 body.
    pub async fn booth_link(
        &self,
        event: &str,
        name: &str,
        languages: &[&str],
    ) -> anyhow::Result<InterpreterView> {
        let response = self
            .http
            .post(self.url(&format!("/api/v1/events/{event}/interpreters")))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name, "languages": languages}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("issuing a booth link answered {status}: {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// Take the air in `language` with a booth token (`POST /api/v1/booth/on-air`); the status.
    pub async fn on_air(&self, token: &str, language: &str) -> anyhow::Result<reqwest::StatusCode> {
        let response = self
            .http
            .post(self.url("/api/v1/booth/on-air"))
            .bearer_auth(token)
            .json(&json!({"language": language}))
            .send()
            .await?;
        Ok(response.status())
    }

    /// GET an organiser API path with the admin token; the body of a success, as `T`.
    pub async fn admin_get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.http.get(self.url(path)).bearer_auth(ADMIN).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", response.text().await?);
        }
        Ok(response.json().await?)
    }

    /// A tone sent as plain Opus RTP to an event's RTP floor (the event from [`Self::event_now`]
    /// with floor kind "rtp").
    pub async fn tone_floor(
        &self,
        event: &EventView,
        frequency: f64,
    ) -> anyhow::Result<crate::client::RtpSender> {
        let to = rtp_url(event)?.trim_start_matches("rtp://").parse()?;
        crate::client::RtpSender::start(to, frequency)
    }

    /// The sum of a metric's samples in `/metrics` (every label set), 0 when it has none.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.metrics_text().await?;
        Ok(text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Wait until a metric reaches `value` (polling `/metrics`, the relay's own report).
    pub async fn wait_metric(
        &self,
        name: &str,
        value: f64,
        within: std::time::Duration,
    ) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            let now = self.metric(name).await?;
            if now >= value {
                return Ok(());
            }
            if start.elapsed() > within {
                bail!("{name} is {now}, not {value}, after {within:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Wait until the metric line starting with `name` (`tolk_sessions `, with its labels) has a
    /// value for which `what` holds, at most 10 s; returns it.
    pub async fn metric_until(&self, name: &str, what: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = self.metrics_text().await?;
            let value =
                text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok());
            if let Some(v) = value.filter(|v| what(*v)) {
                return Ok(v);
            }
            if std::time::Instant::now() > deadline {
                bail!("{name} is {value:?} after 10 s");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stop this relay and start a new one on the same HTTP address, media port and data
    /// directory (a process restart; one media shard, whose port is kept).
    pub async fn restart(self, shards: usize) -> anyhow::Result<Self> {
        let listen = self.server.addr;
        let media_port = self.server.media_addresses().first().map_or(0, |a| a.port());
        let data_dir = self.data_dir.clone();
        self.stop().await;
        let mut tries = 0;
        loop {
            let started = Self::start_configured(data_dir.clone(), shards, |s| {
                s.listen = listen;
                s.media_port = media_port;
            })
            .await;
            match started {
                Ok(relay) => return Ok(relay),
                // The old sockets may take a moment to close.
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error = %e, "restart: not yet");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// RFC 3339 strings for an hour ago and an hour ahead.
fn chrono_now() -> (String, String) {
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    ((now - hour).to_rfc3339(), (now + hour).to_rfc3339())
}

/// The sentence of a problem+json answer.
pub fn problem_detail(body: &Value) -> anyhow::Result<String> {
    let problem: tolk_relay::api::Problem =
        serde_json::from_value(body.clone()).with_context(|| format!("not a problem: {body}"))?;
    Ok(problem.detail)
}

/// The floor token of an event as created (shown only in that answer).
pub fn floor_token(event: &EventView) -> anyhow::Result<&str> {
    event.floor.token.as_deref().with_context(|| format!("no floor token in {event:?}"))
}

/// Where an RTP floor is sent.
pub fn rtp_url(event: &EventView) -> anyhow::Result<&str> {
    event.floor.rtp_url.as_deref().with_context(|| format!("no rtp_url in {event:?}"))
}

/// The token of a booth link as issued (shown only in that answer).
pub fn booth_token(link: &InterpreterView) -> anyhow::Result<&str> {
    link.token.as_deref().with_context(|| format!("no token in {link:?}"))
}

/// The page of a booth link as issued.
pub fn booth_url(link: &InterpreterView) -> anyhow::Result<&str> {
    link.booth_url.as_deref().with_context(|| format!("no booth_url in {link:?}"))
}

/// With `TOLK_TEST_DATABASE_URL` (a PostgreSQL server's URL), each test relay gets its own
/// database, named after its data directory so that a restarted relay finds it again; without it,
/// SQLite in the data directory.
pub async fn test_database(data_dir: &std::path::Path) -> anyhow::Result<Option<String>> {
    let Ok(server) = std::env::var("TOLK_TEST_DATABASE_URL") else { return Ok(None) };
    let name: String = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tolk")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    }
    let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
    Ok(Some(format!("{base}/{name}")))
}
