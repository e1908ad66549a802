//! Recording under load: a profile with `recording = true` creates its event recording every
//! channel, waits until the files are being written before anything is sent, and at the end
//! switches recording off and lists the files in the report. [`compare_recording`] runs one
//! profile twice back to back against the same relay, recording off then on, for what recording
//! costs the listeners (latency, loss) and the relay (CPU).

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tolk_relay::api::{RecordingFileView, RecordingStatusView, RecordingsView};

use crate::profile::Profile;
use crate::results::{RecordedFile, RecordingCompareReport};
use crate::run::{RunOptions, run};

/// How long recording may take to start once the event is made (the relay looks every second).
const START_WITHIN: Duration = Duration::from_secs(15);
/// The pause between the two runs of a comparison (the relay settles, the first event is gone).
const BETWEEN_RUNS: Duration = Duration::from_secs(5);

/// Wait until the event's files are being written.
pub(crate) async fn until_recording(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + START_WITHIN;
    loop {
        let status: RecordingStatusView =
            get_json(http, &format!("{base}/api/v1/events/{id}/recording"), token).await?;
        if status.recording {
            return Ok(());
        }
        if let Some(problem) = status.problem {
            bail!("the event's recording did not start: {problem}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the event's recording did not start within {} s", START_WITHIN.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Switch the event's recording off (its files end now) and list them.
pub(crate) async fn stop_and_list(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> anyhow::Result<Vec<RecordedFile>> {
    http.post(format!("{base}/api/v1/events/{id}/recording"))
        .bearer_auth(token)
        .json(&json!({"on": false}))
        .send()
        .await?
        .error_for_status()
        .context("switching recording off")?;
    // The files end on the writer's thread, and their rows a moment later: wait for them.
    let deadline = tokio::time::Instant::now() + START_WITHIN;
    loop {
        let listed: RecordingsView =
            get_json(http, &format!("{base}/api/v1/events/{id}/recordings"), token).await?;
        let files: Vec<RecordedFile> = listed.recordings.into_iter().map(recorded_file).collect();
        if files.iter().all(|f| f.state != "recording") || tokio::time::Instant::now() > deadline {
            return Ok(files);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An organiser's GET of `url`, its JSON answer read as `T`.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<T> {
    let response = http.get(url).bearer_auth(token).send().await?.error_for_status()?;
    response.json().await.with_context(|| format!("the relay's answer to GET {url}"))
}

fn recorded_file(f: RecordingFileView) -> RecordedFile {
    let state = serde_json::to_value(f.state).ok().and_then(|s| s.as_str().map(str::to_owned));
    RecordedFile {
        language: f.language.to_string(),
        state: state.unwrap_or_default(),
        duration_ms: f.duration_ms,
        size: f.size,
        problem: f.problem,
    }
}

/// Run `profile` twice against the same relay, recording off then on; each run's report goes to
/// `recording-off/` and `recording-on/` of the report directory, the comparison to
/// `recording.md` and `recording.json`.
pub async fn compare_recording(
    profile: &Profile,
    options: &RunOptions,
) -> anyhow::Result<RecordingCompareReport> {
    let mut reports = Vec::new();
    for on in [false, true] {
        if on {
            tokio::time::sleep(BETWEEN_RUNS).await;
        }
        let profile = Profile { recording: on, ..profile.clone() };
        let mut options = options.clone();
        options.report_dir =
            options.report_dir.map(|d| d.join(if on { "recording-on" } else { "recording-off" }));
        let report = run(&profile, &options)
            .await
            .with_context(|| format!("the run with recording {}", if on { "on" } else { "off" }))?;
        reports.push(report);
    }
    let (Some(on), Some(off)) = (reports.pop(), reports.pop()) else { bail!("a run is missing") };
    let mut notes = vec![format!(
        "Recording off ran first, then on, {} s apart, on the same relay process.",
        BETWEEN_RUNS.as_secs()
    )];
    if off.relay_usage.is_none() {
        notes.push("The relay's process was not watched: no CPU figures.".into());
    }
    let report = RecordingCompareReport { off, on, notes };
    if let Some(dir) = &options.report_dir {
        crate::report::write_recording_compare(dir, &report)?;
    }
    Ok(report)
}
