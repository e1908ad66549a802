//! A `tolk serve` process of the test's own, on this machine's loopback: started, killed as in a
//! crash (SIGKILL), and started again on the same data directory, ports and database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster::tolk_binary;
use crate::relay::{ADMIN, test_database};

pub struct TolkProcess {
    /// `serve` or `demo`.
    command: &'static str,
    pub base: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// SIGKILL a child process, if there is one, and reap it.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Wait until `healthz` answers 2xx (30 s at most); the error says `who` and ends with `log`'s tail.
pub(crate) async fn until_healthy(
    http: &reqwest::Client,
    healthz: &str,
    log: &Path,
    who: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(healthz).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{who} did not start:\n{}", log_tail(log, 30));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on loopback (bound and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TolkProcess {
    /// Start `tolk serve` in a fresh data directory with `extra` environment; returns once it
    /// answers `/healthz`.
    pub async fn start(extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_command("serve", extra).await
    }

    /// [`TolkProcess::start`] for `tolk demo` (its demo event is `demo`, its floor a voice).
    pub async fn start_demo(extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_command("demo", extra).await
    }

    async fn start_command(command: &'static str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        tolk_relay::bbb::install_default_crypto();
        let data_dir = std::env::temp_dir().join(format!("tolk-proc-{}", tolk_relay::ids::random_hex(8)));
        std::fs::create_dir_all(&data_dir)?;
        let port = free_port()?;
        let mut env: Vec<(String, String)> = vec![
            ("TOLK_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("TOLK_DATA_DIR".into(), data_dir.display().to_string()),
            ("TOLK_ADMIN_TOKEN".into(), ADMIN.into()),
            ("TOLK_MEDIA_PORT".into(), free_port()?.to_string()),
            ("TOLK_MEDIA_SHARDS".into(), "1".into()),
            ("TOLK_METRICS_LISTEN".into(), "off".into()),
            ("TOLK_LOG".into(), "info".into()),
            // Loopback candidates; `("TOLK_PUBLIC_IP", "")` in `extra` gives the relay's defaults.
            ("TOLK_PUBLIC_IP".into(), "127.0.0.1".into()),
        ];
        if let Some(url) = test_database(&data_dir).await? {
            env.push(("TOLK_DATABASE_URL".into(), url));
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut process =
            Self { command, base: format!("http://127.0.0.1:{port}"), data_dir, env, child: None };
        process.spawn().await?;
        Ok(process)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: the process dies as in a crash, with no chance to close anything.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Start it again after [`TolkProcess::kill`]: same data directory, ports and database.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.data_dir.join("tolk.log"), lines)
    }

    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.data_dir.join(relative)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::options().create(true).append(true).open(self.data_dir.join("tolk.log"))?;
        let mut command = Command::new(tolk_binary()?);
        command
            .arg(self.command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(command.spawn().context("starting tolk serve")?);
        until_healthy(
            &reqwest::Client::new(),
            &self.url("/healthz"),
            &self.data_dir.join("tolk.log"),
            "tolk serve",
        )
        .await
    }
}

impl Drop for TolkProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
