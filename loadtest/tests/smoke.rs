//! CI's load check: the `smoke` profile (200 real WebRTC listeners, booths with handovers,
//! channel switches, 30 s) against a relay this test starts. A functional check, not a speed
//! gate: it fails only if the run does not complete or loses more than 1 % of the packets. The
//! figures are printed (and the report written) for whoever reads the log.

use std::path::Path;

use tolk_loadtest::profile::Profile;
use tolk_loadtest::run::{RunOptions, run};
use tolk_tests::relay::{ADMIN, TestRelay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_profile_completes_without_loss() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let profile = Profile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/smoke.toml"))?;
    let dir = std::env::temp_dir().join(format!("tolk-loadtest-{}", tolk_relay::ids::random_hex(4)));
    let options = RunOptions {
        report_dir: Some(dir.clone()),
        relay_pid: Some(std::process::id()),
        progress: true,
        ..RunOptions::tolk(relay.base.clone(), ADMIN.into())
    };
    let report = run(&profile, &options).await?;
    println!("{}", tolk_loadtest::report::markdown_run(&report));
    assert!(report.duration_s >= profile.duration_s - 1.5, "the run stopped at {} s", report.duration_s);
    assert!(report.loss.expected > 100_000, "too few packets for a run: {:?}", report.loss);
    assert!(report.loss.percent <= 1.0, "lost {:.2}% of the packets", report.loss.percent);
    for file in ["report.json", "report.md"] {
        assert!(dir.join(file).exists(), "{file} not written");
    }
    let _ = std::fs::remove_dir_all(&dir);
    relay.stop().await;
    Ok(())
}
