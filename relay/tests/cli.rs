//! The `tolk` command line: organiser accounts and events, on a fresh data directory.

use std::process::Command;

fn tolk(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_tolk")).args(args).env("TOLK_DATA_DIR", data_dir).output();
    match run {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            (output.status.success(), format!("{stdout}{stderr}"))
        }
        Err(e) => (false, format!("tolk did not run: {e}")),
    }
}

#[test]
fn organisers_and_events_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("tolk-cli-{}", std::process::id()));
    let (ok, out) = tolk(&dir, &["organiser", "add", "Alpha Conferences"]);
    assert!(ok, "{out}");
    assert!(out.contains("Organiser 1 (Alpha Conferences) created"), "{out}");
    let token = out.lines().last().unwrap_or("").trim().to_owned();
    assert_eq!(token.len(), 64, "a 256-bit token: {out}");
    let (ok, out) = tolk(&dir, &["organiser", "list"]);
    assert!(ok && out.contains("Alpha Conferences") && !out.contains("revoked"), "{out}");
    let (ok, out) = tolk(&dir, &["organiser", "revoke", "1"]);
    assert!(ok, "{out}");
    let (_, out) = tolk(&dir, &["organiser", "list"]);
    assert!(out.contains("(revoked)"), "{out}");
    let (ok, out) = tolk(&dir, &["organiser", "revoke", "1"]);
    assert!(!ok && out.contains("no live organiser 1"), "a second revoke says why it fails: {out}");
    let (ok, out) = tolk(&dir, &["events", "list"]);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out) = tolk(&dir, &["events", "cancel", "nosuch"]);
    assert!(!ok && out.contains("no live event nosuch"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
