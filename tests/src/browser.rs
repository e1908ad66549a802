//! Headless browsers driven over WebDriver (fantoccini), with WebRTC on loopback, autoplay allowed
//! and, optionally, a fake microphone fed from a WAV file: Chromium (chromedriver), and Firefox ESR
//! (geckodriver, set up in `firefox.rs`). One API for both, so a page test is written once and run
//! in each (`in_each_browser!`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Which browser a `Browser` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    /// Whether this browser's tests are skipped in this run; says why when they are.
    pub fn skipped(self) -> bool {
        let reason = match self {
            Kind::Chromium => None,
            Kind::Firefox => crate::firefox::skip_reason(),
        };
        if let Some(reason) = reason {
            // Straight to stderr: the test harness shows captured output of failing tests only.
            let _ = writeln!(std::io::stderr(), "skipped in {self:?}: {reason}");
        }
        reason.is_some()
    }
}

pub struct Browser {
    pub client: fantoccini::Client,
    pub kind: Kind,
    driver: Child,
    /// The browser's profile, or for Firefox the session's directory (profile, audio sockets).
    profile: PathBuf,
    /// Firefox's PulseAudio daemon and microphone feeder; stopped after the browser.
    audio: Option<crate::firefox::Audio>,
}

impl Browser {
    /// Start a headless Chromium session; `microphone` feeds the fake microphone.
    pub async fn start(microphone: Option<&Path>) -> anyhow::Result<Self> {
        Self::chromium(microphone).await
    }

    /// Start a headless session of `kind` (Firefox with `firefox::Options::default()`).
    pub async fn start_in(kind: Kind, microphone: Option<&Path>) -> anyhow::Result<Self> {
        match kind {
            Kind::Chromium => Self::chromium(microphone).await,
            Kind::Firefox => Self::firefox(microphone).await,
        }
    }

    /// Start a headless Firefox ESR session for the page tests (loopback ICE candidates on).
    pub async fn firefox(microphone: Option<&Path>) -> anyhow::Result<Self> {
        Self::firefox_with(&crate::firefox::Options::default(), microphone).await
    }

    /// Start a headless Firefox ESR session set up by `options`; `microphone` is what its
    /// microphone plays, in a loop.
    pub async fn firefox_with(
        options: &crate::firefox::Options,
        microphone: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let started = crate::firefox::start(options, microphone).await?;
        Ok(Self {
            client: started.client,
            kind: Kind::Firefox,
            driver: started.driver,
            profile: started.dir,
            audio: Some(started.audio),
        })
    }

    /// Start chromedriver and a headless Chromium session; `microphone` feeds the fake microphone.
    pub async fn chromium(microphone: Option<&Path>) -> anyhow::Result<Self> {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: the browser tests need Debian's chromium and chromium-driver \
                     (./scripts/test installs them)"
                );
            }
        }
        let port = free_tcp_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}"));
        let mut driver = spawn_ready(command, "started successfully", "chromedriver", None).await?;

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
        let client = match connect(caps, port, "Chromium").await {
            Ok(client) => client,
            Err(e) => {
                kill_group(&mut driver);
                return Err(e);
            }
        };
        Ok(Self { client, kind: Kind::Chromium, driver, profile, audio: None })
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

    /// End the session (the browser quits), then stop its driver and its group (`Drop`).
    pub async fn close(self) -> anyhow::Result<()> {
        let result = self.client.clone().close().await;
        drop(self);
        result.context("closing the browser session")
    }
}

impl Drop for Browser {
    /// The browser is its driver's child in the driver's own process group: a browser that was
    /// not closed (a test that failed, or ended without `close`) is killed with its whole group,
    /// so no browser keeps running (and capturing its fake microphone) into the next tests. Then
    /// Firefox's audio daemon goes, and the profile.
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        self.audio = None;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Kill `child`'s process group (it leads one: `spawn_ready`, `process_group(0)`) and reap it.
pub(crate) fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Spawn `command` leading a process group of its own and wait (20 s at most) until a line of its
/// output (stdout or stderr) contains `ready`. Its output is read to the end; with `echo`, every
/// line is printed with that prefix (a failing test shows it), otherwise dropped.
pub(crate) async fn spawn_ready(
    mut command: Command,
    ready: &'static str,
    name: &str,
    echo: Option<&'static str>,
) -> anyhow::Result<Child> {
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {name}"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pipes: [Box<dyn std::io::Read + Send>; 2] = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), Some(err)) => [Box::new(out), Box::new(err)],
        _ => {
            kill_group(&mut child);
            bail!("{name} has no output pipes");
        }
    };
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut last = String::new();
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains(ready) {
                    let _ = tx.send(Ok(()));
                }
                if let Some(prefix) = echo {
                    println!("{prefix}: {line}");
                }
                last = line;
            }
            let _ = tx.send(Err(last));
        });
    }
    drop(tx);
    let mut closed = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = rx.recv().await {
            match line {
                Ok(()) => return Ok(()),
                Err(last) => closed.push(last),
            }
        }
        Err(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(child),
        Ok(Err(())) => {
            kill_group(&mut child);
            bail!("{name} exited before it was ready: {}", closed.join(" / "))
        }
        Err(_) => {
            kill_group(&mut child);
            bail!("{name} was not ready within 20 s")
        }
    }
}

/// Open a WebDriver session with `caps` on the driver listening on `port`.
pub(crate) async fn connect(
    caps: serde_json::Map<String, Value>,
    port: u16,
    browser: &str,
) -> anyhow::Result<fantoccini::Client> {
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .with_context(|| format!("could not open a {browser} session"))
}

/// Run each named page test, an `async fn name(kind: Kind) -> anyhow::Result<()>`, in Chromium
/// and in Firefox: two tests `name::chromium` and `name::firefox` (the Firefox one says it is
/// skipped and passes when `Kind::Firefox.skipped()`).
#[macro_export]
macro_rules! in_each_browser {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chromium() -> anyhow::Result<()> {
                super::$test($crate::browser::Kind::Chromium).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn firefox() -> anyhow::Result<()> {
                if $crate::browser::Kind::Firefox.skipped() {
                    return Ok(());
                }
                super::$test($crate::browser::Kind::Firefox).await
            }
        }
    )+};
}
