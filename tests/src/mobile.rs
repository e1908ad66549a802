//! Headless Chromium as a phone: chromedriver started with `goog:chromeOptions.mobileEmulation`
//! (an iPhone's 390 × 844 CSS-pixel viewport at 3×, touch, Safari's user agent) and, unlike
//! [`crate::browser::Browser`], with Chromium's default autoplay policy: sound waits for a tap, as
//! it does on a phone. WebRTC on loopback and the fake microphone as in `Browser`.
//!
//! A type of its own because `Browser`'s constructor takes no options; scripts run in the page
//! through [`Phone::run`] (an async function body), and waits happen in the page too
//! ([`Phone::wait_for`]), so the test side never polls.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The CSS width of the emulated phone (an iPhone 12 to 15).
pub const PHONE_WIDTH: u32 = 390;
const PHONE_HEIGHT: u32 = 844;
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

pub struct Phone {
    pub client: fantoccini::Client,
    chromedriver: Child,
    user_data: PathBuf,
}

impl Phone {
    /// chromedriver on a free port and a Chromium session emulating the phone.
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut chromedriver = Command::new("/usr/bin/chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start chromedriver (Debian's chromium-driver)")?;
        let output = chromedriver.stdout.take().context("no chromedriver output")?;
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(output).lines().map_while(Result::ok);
            let _ = ready_tx.send(lines.any(|l| l.contains("started successfully")));
            lines.for_each(drop); // drained to the end: chromedriver never writes into a closed pipe
        });
        if !tokio::time::timeout(Duration::from_secs(20), ready).await.unwrap_or(Ok(false)).unwrap_or(false) {
            bail!("chromedriver did not start within 20 s");
        }
        let user_data = std::env::temp_dir().join(format!("tolk-phone-{}", tolk_relay::ids::random_hex(6)));
        let client = Self::session(port, &user_data).await?;
        Ok(Self { client, chromedriver, user_data })
    }

    async fn session(port: u16, user_data: &std::path::Path) -> anyhow::Result<fantoccini::Client> {
        let flags = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
                     --no-first-run --disable-background-networking --disable-component-update --disable-sync \
                     --allow-loopback-in-peer-connection --use-fake-ui-for-media-stream \
                     --use-fake-device-for-media-stream";
        let mut args: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
        args.push(format!("--window-size={PHONE_WIDTH},{PHONE_HEIGHT}"));
        args.push(format!("--user-data-dir={}", user_data.display()));
        let options = json!({
            "binary": "/usr/bin/chromium",
            "args": args,
            "mobileEmulation": {
                "deviceMetrics": {"width": PHONE_WIDTH, "height": PHONE_HEIGHT, "pixelRatio": 3.0, "touch": true},
                "userAgent": SAFARI,
            },
        });
        let caps = serde_json::Map::from_iter([("goog:chromeOptions".to_owned(), options)]);
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("could not open an emulated phone session in Chromium")
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await.with_context(|| format!("the phone could not open {url}"))
    }

    /// Runs `body` as an async function in the page; what it returns (a rejection is an error).
    pub async fn run(&self, body: &str) -> anyhow::Result<Value> {
        let script = format!(
            "const reply = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then((ok) => reply({{ ok: ok === undefined ? null : ok }}),
                                               (e) => reply({{ error: String(e) }}));"
        );
        let answer = self.client.execute_async(&script, vec![]).await?;
        match answer.get("error") {
            Some(e) => bail!("page script failed: {e}"),
            None => Ok(answer.get("ok").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Waits in the page (checking every 20 ms) until `expression` is truthy.
    pub async fn wait_for(&self, expression: &str, within: Duration) -> anyhow::Result<()> {
        let ms = within.as_millis();
        let body = format!(
            "const test = () => {{ try {{ return Boolean({expression}); }} catch (_) {{ return false; }} }};
             const until = performance.now() + {ms};
             while (!test()) {{
               if (performance.now() > until) throw new Error('not true within {ms} ms');
               await new Promise((r) => setTimeout(r, 20));
             }}
             return true;"
        );
        self.run(&body).await.with_context(|| format!("waiting for '{expression}'"))?;
        Ok(())
    }

    /// A real tap (WebDriver element click: a user gesture) on the element `css` selects.
    pub async fn tap(&self, css: &str) -> anyhow::Result<()> {
        let element =
            self.client.find(fantoccini::Locator::Css(css)).await.with_context(|| format!("no {css}"))?;
        element.click().await.with_context(|| format!("tapping {css}"))
    }

    /// Ends the session (Chromium quits); chromedriver and its group go in `Drop`.
    pub async fn close(self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        drop(self);
        closed.context("closing the phone session")
    }
}

impl Drop for Phone {
    /// Chromium runs in chromedriver's process group: the whole group goes, whatever the test did.
    fn drop(&mut self) {
        let group = -(self.chromedriver.id() as i32);
        let _ =
            Command::new("kill").arg("-KILL").arg("--").arg(group.to_string()).stderr(Stdio::null()).status();
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        let _ = std::fs::remove_dir_all(&self.user_data);
    }
}
