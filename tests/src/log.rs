//! The relay's log captured in memory, for tests that check what it writes (e.g. that no secret
//! reaches it). The subscriber is process-wide: a test binary that captures keeps to one test.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything logged since [`capture`], as plain text.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// The log so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture the log at `filter` (env-filter syntax) from now on; fails when this process already
/// has a subscriber (call it before starting a relay).
pub fn capture(filter: &str) -> anyhow::Result<CapturedLog> {
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .map_err(|e| anyhow::anyhow!("could not capture the log: {e}"))?;
    Ok(log)
}
