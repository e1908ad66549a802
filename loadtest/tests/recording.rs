//! Recording under load, small: a tiny profile recording every channel (20 listeners, the floor
//! and two booths with a handover, 10 s) against a relay this test starts. The run must lose no
//! packet, and every channel must have its file, on disk as the relay listed it, ended `done`
//! and about as long as the run.

use std::path::Path;

use tolk_loadtest::profile::Profile;
use tolk_loadtest::run::{RunOptions, run};
use tolk_tests::relay::{ADMIN, TestRelay};

const PROFILE: &str = r#"
name = "recording-smoke"
duration_s = 10
floor_language = "en"
languages = ["fr", "de"]
recording = true

[interpreters]
per_booth = 2
handover_every_s = 4

[listeners]
count = 20
ramp_s = 2
spread = { kind = "uniform" }
decode_every = 10
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_writes_every_channel_and_loses_nothing() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let profile: Profile = toml::from_str(PROFILE)?;
    profile.check()?;
    let options = RunOptions {
        relay_pid: Some(std::process::id()),
        ..RunOptions::tolk(relay.base.clone(), ADMIN.into())
    };
    let report = run(&profile, &options).await?;
    println!("{}", tolk_loadtest::report::markdown_run(&report));
    assert_eq!(report.joins.joined, 20, "{:?}", report.joins);
    assert!(report.loss.expected > 5_000, "too few packets for a run: {:?}", report.loss);
    assert_eq!(report.loss.lost, 0, "listeners lost packets with recording on: {:?}", report.loss);

    let files = report.recording.as_deref().unwrap_or_default();
    let mut languages: Vec<&str> = files.iter().map(|f| f.language.as_str()).collect();
    languages.sort_unstable();
    assert_eq!(languages, ["de", "en", "fr"], "one file per channel: {files:?}");
    for f in files {
        assert_eq!(f.state, "done", "{f:?}");
        assert!(f.duration_ms >= 8_000, "the file is shorter than the run: {f:?}");
        // Speech-like Opus at ~30 kbit/s: several KB a second.
        assert!(f.size as f64 >= f.duration_ms as f64 * 2.0, "too small for its length: {f:?}");
    }
    let mut on_disk = Vec::new();
    opus_files(&relay.data_dir.join("recordings"), &mut on_disk)?;
    let mut sizes: Vec<u64> = on_disk.iter().map(|(_, size)| *size).collect();
    let mut listed: Vec<u64> = files.iter().map(|f| f.size as u64).collect();
    sizes.sort_unstable();
    listed.sort_unstable();
    assert_eq!(sizes, listed, "the files on disk are the ones listed: {on_disk:?}");
    relay.stop().await;
    Ok(())
}

/// Every `.opus` file under `dir`, with its size.
fn opus_files(dir: &Path, found: &mut Vec<(std::path::PathBuf, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            opus_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "opus") {
            found.push((path.clone(), std::fs::metadata(&path)?.len()));
        }
    }
    Ok(())
}
