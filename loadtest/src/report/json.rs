//! The JSON of the reports: the data of `results.rs` as it is, pretty-printed, to read back
//! (`serde_json::from_str` gives the same report).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

/// Writes `value` as pretty JSON, with a final newline, to `dir/name`.
pub(super) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> anyhow::Result<PathBuf> {
    let mut text = serde_json::to_string_pretty(value).context("serialising the report")?;
    text.push('\n');
    super::write_text(dir, name, &text)
}
