//! Headless Firefox ESR for the page tests (`Browser::firefox`, `Kind::Firefox`): this file owns
//! finding geckodriver (installed by `scripts/need-geckodriver` into `target/tools/bin`), the
//! capabilities and prefs of a fresh profile that lets WebRTC run offline on loopback, and the
//! audio devices of each Firefox session. `docs/browsers.md` ("Firefox in tests") says why each
//! pref is there.
//!
//! Firefox has no flag that turns a WAV file into a microphone, and headless Firefox plays (and
//! runs its WebAudio graph) through a real audio backend. So **each session gets a PulseAudio
//! daemon of its own**, started here with no configuration but ours (`pulseaudio -n`, a socket in
//! the session's directory, `PULSE_SERVER` given to geckodriver and so to Firefox): a null sink
//! `out` is the default output, and a null sink `mic` whose monitor is the default input. The WAV
//! is played into `mic` in a loop by `pacat` (paced by the sink's clock), so Firefox's real
//! `getUserMedia` (`media.navigator.streams.fake=false`) captures it. Sessions never share a
//! daemon: tests of one binary run in parallel threads, and two Firefox windows in one test (a
//! booth and a listener) neither hear each other's microphone nor each other's output. The daemon
//! and the feeder are killed with the session (`Browser`'s `Drop`).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const FIREFOX: &str = "/usr/bin/firefox-esr";
const PULSEAUDIO: &str = "/usr/bin/pulseaudio";
const PACAT: &str = "/usr/bin/pacat";

/// How a Firefox session is set up; `Options::default()` is what the page tests use.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether Firefox gathers and pairs ICE candidates on 127.0.0.1 (the test relays listen and
    /// offer candidates on loopback only), on by default. Two prefs, both test-only:
    /// `media.peerconnection.ice.loopback=true`, and `permissions.default.microphone=1` — without
    /// a microphone permission (or a capture running) Firefox gathers only the address of its
    /// default route, never loopback, whatever the first pref says. Off: neither, as in a real
    /// Firefox (a page that does not capture gets default-route candidates only).
    pub loopback_candidates: bool,
    /// Whether pages may play sound without a gesture (on by default in tests). Off: Firefox's
    /// own default, audible autoplay blocked until the user clicks or types in the page.
    pub autoplay: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { loopback_candidates: true, autoplay: true }
    }
}

impl Options {
    /// Start Firefox with (`true`, the default) or without loopback ICE candidates.
    pub fn loopback_candidates(mut self, on: bool) -> Self {
        self.loopback_candidates = on;
        self
    }

    /// Start Firefox with autoplay allowed (`true`, the default) or blocked as it comes.
    pub fn autoplay(mut self, on: bool) -> Self {
        self.autoplay = on;
        self
    }
}

/// Why Firefox sessions are not started in this run, if they are not: the PostgreSQL stage of
/// `scripts/test` runs every test binary a second time, and a browser's behaviour does not depend
/// on the store, so the Firefox variants run in the SQLite stage only.
pub fn skip_reason() -> Option<&'static str> {
    std::env::var_os("TOLK_TEST_DATABASE_URL")
        .map(|_| "TOLK_TEST_DATABASE_URL is set: the Firefox page tests run in the SQLite stage only")
}

/// geckodriver: `$TOLK_GECKODRIVER`, else `target/tools/bin/geckodriver` of this checkout (where
/// `scripts/need-geckodriver` puts it), else the first on `PATH`.
fn geckodriver() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TOLK_GECKODRIVER") {
        return Ok(PathBuf::from(path));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/geckodriver");
    if local.exists() {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths).map(|dir| dir.join("geckodriver")).find(|p| p.exists())
        })
        .context(
            "geckodriver is missing: the Firefox page tests need it (./scripts/test installs it into \
             target/tools with scripts/need-geckodriver)",
        )
}

/// The prefs of every test profile: media without prompts or autoplay blocking, the
/// microphone from PulseAudio, and nothing fetched from the network in the background.
fn prefs(options: &Options) -> Value {
    let mut prefs = json!({
        // Media: no permission prompt, real devices (our PulseAudio ones), sound without a gesture.
        "media.navigator.permission.disabled": true,
        "media.navigator.streams.fake": false,
        // 0 allowed, 1 audible autoplay blocked (Firefox's default).
        "media.autoplay.default": if options.autoplay { 0 } else { 1 },
        "media.autoplay.blocking_policy": 0,
        "media.cubeb.backend": "pulse",
        // WebRTC on loopback, host addresses in the clear (no mDNS names to resolve).
        "media.peerconnection.ice.loopback": options.loopback_candidates,
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        // Page console messages on stdout (shown with a failing test's output).
        "devtools.console.stdout.content": true,
    });
    // (Three maps: one would pass `json!`'s recursion limit.)
    let updates = json!({
        // Quiet offline: no telemetry, updates, safe browsing, captive-portal or connectivity
        // checks, remote settings, plugin (OpenH264) downloads, DNS-over-HTTPS, push, prefetch.
        "app.update.auto": false,
        "app.update.disabledForTesting": true,
        "app.normandy.enabled": false,
        "app.shield.optoutstudies.enabled": false,
        "datareporting.healthreport.uploadEnabled": false,
        "datareporting.policy.dataSubmissionEnabled": false,
        "toolkit.telemetry.enabled": false,
        "toolkit.telemetry.unified": false,
        "toolkit.telemetry.server": "",
        "browser.ping-centre.telemetry": false,
        "browser.safebrowsing.malware.enabled": false,
        "browser.safebrowsing.phishing.enabled": false,
        "browser.safebrowsing.downloads.enabled": false,
        "browser.safebrowsing.provider.mozilla.updateURL": "",
        "browser.search.update": false,
    });
    let network = json!({
        "browser.region.network.url": "",
        "browser.region.update.enabled": false,
        "browser.newtabpage.enabled": false,
        "browser.startup.page": 0,
        "browser.aboutwelcome.enabled": false,
        "extensions.update.enabled": false,
        "extensions.getAddons.cache.enabled": false,
        "extensions.blocklist.enabled": false,
        "services.settings.server": "",
        "media.gmp-manager.updateEnabled": false,
        "media.gmp-manager.url": "",
        "media.gmp-gmpopenh264.enabled": false,
        "network.captive-portal-service.enabled": false,
        "network.connectivity-service.enabled": false,
        "captivedetect.canonicalURL": "",
        "network.trr.mode": 5,
        "network.dns.disablePrefetch": true,
        "network.prefetch-next": false,
        "network.predictor.enabled": false,
        "dom.push.connection.enabled": false,
        "geo.provider.network.url": "",
        "security.OCSP.enabled": 0,
    });
    if let (Some(all), Value::Object(updates), Value::Object(network)) =
        (prefs.as_object_mut(), updates, network)
    {
        all.extend(updates);
        all.extend(network);
        if options.loopback_candidates {
            all.insert("permissions.default.microphone".into(), json!(1));
        }
    }
    prefs
}

/// A started Firefox session's parts, for `Browser`.
pub(crate) struct Started {
    pub client: fantoccini::Client,
    pub driver: Child,
    pub dir: PathBuf,
    pub audio: Audio,
}

/// Start geckodriver and a headless Firefox with a fresh profile under a fresh directory, and
/// its own PulseAudio daemon (whose input plays `microphone` in a loop, if given).
pub(crate) async fn start(options: &Options, microphone: Option<&Path>) -> anyhow::Result<Started> {
    for tool in [FIREFOX, PULSEAUDIO, PACAT] {
        if !Path::new(tool).exists() {
            bail!(
                "{tool} is missing: the Firefox page tests need Debian's firefox-esr, pulseaudio and \
                 pulseaudio-utils (./scripts/test installs them)"
            );
        }
    }
    let geckodriver = geckodriver()?;
    let dir = std::env::temp_dir().join(format!("tolk-firefox-{}", tolk_relay::ids::random_hex(6)));
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).with_context(|| format!("could not create {}", profile.display()))?;
    // From here on the directory is removed with the session, or below if the start fails.
    let started = start_in(&dir, &profile, &geckodriver, options, microphone).await;
    if started.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

async fn start_in(
    dir: &Path,
    profile: &Path,
    geckodriver: &Path,
    options: &Options,
    microphone: Option<&Path>,
) -> anyhow::Result<Started> {
    let audio = Audio::start(dir, microphone).await?;
    let port = crate::browser::free_tcp_port()?;
    let mut command = Command::new(geckodriver);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--binary", FIREFOX])
        // Firefox inherits geckodriver's environment: our PulseAudio daemon, our home directory.
        .env("PULSE_SERVER", audio.server())
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .env("MOZ_CRASHREPORTER_DISABLE", "1")
        // The window Chromium gets too (`--window-size=1280,900`).
        .env("MOZ_HEADLESS_WIDTH", "1280")
        .env("MOZ_HEADLESS_HEIGHT", "900")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    let mut driver =
        crate::browser::spawn_ready(command, "Listening on", "geckodriver", Some("firefox")).await?;
    let caps = json!({
        "browserName": "firefox",
        "moz:firefoxOptions": {
            "binary": FIREFOX,
            "args": ["-headless", "-no-remote", "-profile", profile],
            "prefs": prefs(options),
        },
    });
    let Value::Object(caps) = caps else { bail!("capabilities are not an object") };
    // Once the session is open, `Browser`'s `Drop` kills the driver's group; until then, here.
    match crate::browser::connect(caps, port, "Firefox").await {
        Ok(client) => Ok(Started { client, driver, dir: dir.to_owned(), audio }),
        Err(e) => {
            crate::browser::kill_group(&mut driver);
            Err(e)
        }
    }
}

/// A session's PulseAudio daemon and, when there is a microphone, the `pacat` that plays the WAV
/// into its `mic` sink. Both in process groups of their own, killed on `Drop`.
pub(crate) struct Audio {
    socket: PathBuf,
    daemon: Child,
    feeder: Option<Child>,
}

impl Audio {
    async fn start(dir: &Path, microphone: Option<&Path>) -> anyhow::Result<Self> {
        // Read and check the WAV before starting anything.
        let wav = microphone.map(Wav::read).transpose()?;
        let socket = dir.join("pulse-native");
        let script = dir.join("pulse.pa");
        // The socket last: once a client can connect, both sinks and the defaults are there.
        std::fs::write(
            &script,
            format!(
                "load-module module-null-sink sink_name=out rate=48000 sink_properties=device.description=tolk-output\n\
                 load-module module-null-sink sink_name=mic rate=48000 channels=1 channel_map=mono sink_properties=device.description=tolk-microphone\n\
                 set-default-sink out\n\
                 set-default-source mic.monitor\n\
                 load-module module-native-protocol-unix auth-anonymous=1 socket={}\n",
                socket.display()
            ),
        )?;
        let mut command = Command::new(PULSEAUDIO);
        command
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--log-target=stderr"])
            .args(["--log-level=info", "--disable-shm=yes", "-F"])
            .arg(&script)
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", dir)
            .env("PULSE_RUNTIME_PATH", dir.join("pulse-runtime"))
            .env("PULSE_STATE_PATH", dir.join("pulse-state"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY");
        let daemon =
            crate::browser::spawn_ready(command, "Daemon startup complete", "pulseaudio", None).await?;
        let mut audio = Self { socket, daemon, feeder: None };
        if let Some(wav) = wav {
            audio.feeder = Some(audio.feed(wav)?);
        }
        Ok(audio)
    }

    /// `PULSE_SERVER` for the clients of this daemon.
    fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Play the WAV's samples into the `mic` sink, over and over, until `pacat` is killed.
    fn feed(&self, wav: Wav) -> anyhow::Result<Child> {
        let mut feeder = Command::new(PACAT)
            .process_group(0)
            .args(["--playback", "--raw", "--device=mic", "--format=s16le", "--latency-msec=40"])
            .arg(format!("--rate={}", wav.rate))
            .arg(format!("--channels={}", wav.channels))
            .arg(format!("--server={}", self.server()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start pacat")?;
        let mut stdin = feeder.stdin.take().context("no pacat stdin")?;
        std::thread::spawn(move || {
            // Ends when pacat is gone (the write fails).
            while stdin.write_all(&wav.pcm).is_ok() {}
        });
        Ok(feeder)
    }
}

impl Drop for Audio {
    fn drop(&mut self) {
        if let Some(feeder) = &mut self.feeder {
            crate::browser::kill_group(feeder);
        }
        crate::browser::kill_group(&mut self.daemon);
    }
}

/// A WAV file's 16-bit PCM samples, rate and channel count.
struct Wav {
    rate: u32,
    channels: u16,
    pcm: Vec<u8>,
}

impl Wav {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{} is not a 16-bit PCM WAV file", path.display()))
    }

    fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            bail!("no RIFF/WAVE header");
        }
        let mut format = None;
        let mut at = 12;
        while let Some(header) = bytes.get(at..at + 8) {
            let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let body = bytes.get(at + 8..).unwrap_or(&[]);
            let body = &body[..size.min(body.len())];
            match &header[0..4] {
                b"fmt " if body.len() >= 16 => {
                    let tag = u16::from_le_bytes([body[0], body[1]]);
                    let channels = u16::from_le_bytes([body[2], body[3]]);
                    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                    let bits = u16::from_le_bytes([body[14], body[15]]);
                    if tag != 1 || bits != 16 || channels == 0 || rate == 0 {
                        bail!("format {tag}, {bits} bits, {channels} channels, {rate} Hz");
                    }
                    format = Some((rate, channels));
                }
                b"data" => {
                    let (rate, channels) = format.context("data before the fmt chunk")?;
                    let frame = 2 * usize::from(channels);
                    let pcm = body[..body.len() - body.len() % frame].to_vec();
                    if pcm.is_empty() {
                        bail!("no samples");
                    }
                    return Ok(Self { rate, channels, pcm });
                }
                _ => {}
            }
            // Chunks are padded to an even size.
            at += 8 + size + size % 2;
        }
        bail!("no data chunk")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_wav_parses_and_bad_input_is_an_error() {
        let wav = Wav::parse(&crate::audio::tone_wav(880.0, 0.5, 1)).expect("a tone WAV parses");
        assert_eq!((wav.rate, wav.channels, wav.pcm.len()), (48_000, 1, 96_000));
        for bad in [&b""[..], b"RIFF\0\0\0\0WAVE", b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff"] {
            assert!(Wav::parse(bad).is_err());
        }
    }
}
