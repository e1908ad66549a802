//! Headless Chromium driven over WebDriver (chromedriver + fantoccini), with WebRTC on loopback,
//! autoplay allowed and, optionally, a fake microphone fed from a WAV file.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Start chromedriver and a headless Chromium session; `microphone` feeds the fake microphone.
    pub async fn start(microphone: Option<&Path>) -> anyhow::Result<Self> {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: the browser tests need Debian's chromium and chromium-driver \
                     (./scripts/test installs them)"
                );
            }
        }
        let port = free_tcp_port()?;
        let mut driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start chromedriver")?;
        let stdout = driver.stdout.take().context("no chromedriver stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("chromedriver did not start within 20 s")?
            .context("chromedriver exited before it was ready")?;

        let profile = std::env::temp_dir().join(format!("tolk-chromium-{}", tolk_relay::ids::random_hex(6)));
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--allow-loopback-in-peer-connection".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        if let Some(wav) = microphone {
            args.push(format!("--use-file-for-fake-audio-capture={}", wav.display()));
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        let client =
            fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .context("could not open a Chromium session")?;
        Ok(Self { client, driver, profile })
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await.with_context(|| format!("could not open {url}"))
    }

    /// Evaluate a JavaScript expression (`return …` is added).
    pub async fn eval(&self, expression: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(&format!("return ({expression});"), vec![]).await?)
    }

    /// Await a JavaScript promise expression.
    pub async fn eval_promise(&self, expression: &str) -> anyhow::Result<Value> {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             Promise.resolve({expression}).then(v => done({{ok: v}}), e => done({{error: String(e)}}));"
        );
        let result = self.client.execute_async(&script, vec![]).await?;
        if let Some(e) = result.get("error") {
            bail!("page script failed: {e}");
        }
        Ok(result.get("ok").cloned().unwrap_or(Value::Null))
    }

    /// Wait until `expression` is truthy in the page, checking as the page changes (every 50 ms).
    pub async fn wait_for(&self, expression: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let value = self
                .eval(&format!(
                    "(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()"
                ))
                .await?;
            if value.as_bool() == Some(true) || (value.is_string() && value != "") {
                return Ok(());
            }
            if Instant::now() > deadline {
                let state = self.eval("window.tolkListener ? [window.tolkListener.state, window.tolkListener.message] : 'no test hook'").await?;
                bail!("'{expression}' did not become true within {within:?}; page state: {state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&self, to: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(to, png)?;
        Ok(())
    }

    /// End the session (Chromium quits), then stop chromedriver and its group (`Drop`).
    pub async fn close(self) -> anyhow::Result<()> {
        let result = self.client.clone().close().await;
        drop(self);
        result.context("closing the browser session")
    }
}

impl Drop for Browser {
    /// Chromium is chromedriver's child in chromedriver's own process group: a browser that was
    /// not closed (a test that failed, or ended without `close`) is killed with its whole group,
    /// so no Chromium keeps running (and capturing its fake microphone) into the next tests.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
