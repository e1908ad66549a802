//! Embeds the built BBB plugin (`bbb-plugin/dist/`, made by `scripts/build-plugin`) into the
//! `tolk` binary: writes `$OUT_DIR/bbb_plugin.rs`, the list of its files and their bytes. When the
//! plugin has not been built the list is empty and Tolk's `/bbb-plugin/` routes say how to build
//! it; everything else works without it. (The directory is in the repository with its README, so
//! that cargo always has it to watch.)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Read when the script runs, not when it was compiled: one compiled script can serve checkouts
    // at other paths that share a target directory (a worktree), and must read their own plugin.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dist = Path::new(&manifest_dir).join("../bbb-plugin/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dist)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .map(|files: Vec<PathBuf>| files.into_iter().filter(|p| !p.ends_with("README.md")).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::from(
        "/// The built plugin's files: name and bytes.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for path in &files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("bbb_plugin.rs");
    if let Err(e) = std::fs::write(&target, out) {
        println!("cargo:warning=could not write {}: {e}", target.display());
        std::process::exit(1);
    }
}
