//! Reading recordings back the way a user's tools would: ffmpeg decodes a file (an independent
//! Opus decoder and Ogg demuxer), and a small Ogg reader of the test's own lists its packets (to
//! compare payloads byte for byte). Plus the measurements the recording tests make on decoded
//! audio: onsets and where a tone changes.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::audio::{RATE, dominant_frequency, level_db};

/// The file decoded by ffmpeg to 48 kHz mono samples; fails on any decoding error.
pub fn decode(path: &Path) -> anyhow::Result<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .context("running ffmpeg")?;
    if !out.status.success() || !out.stderr.is_empty() {
        bail!("ffmpeg could not decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The packets of an Ogg stream's pages after the two Opus headers, in order (no CRC check: the
/// decoder has checked the file).
pub fn ogg_packets(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut packet = Vec::new();
    let mut at = 0;
    while at < data.len() {
        anyhow::ensure!(data.get(at..at + 4) == Some(b"OggS"), "no page at byte {at}");
        let segments = usize::from(*data.get(at + 26).context("short page")?);
        let lacing = data.get(at + 27..at + 27 + segments).context("short lacing")?;
        let mut body = at + 27 + segments;
        for &len in lacing {
            let len = usize::from(len);
            packet.extend_from_slice(data.get(body..body + len).context("short body")?);
            body += len;
            if len < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        at = body;
    }
    anyhow::ensure!(packets.len() >= 2, "no Opus headers");
    anyhow::ensure!(
        packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"),
        "not Ogg Opus"
    );
    Ok(packets.split_off(2))
}

/// Positions (samples) where a burst starts: the first sample louder than `loud` after at least
/// `quiet_for` samples quieter than `quiet`.
pub fn onsets(samples: &[f32], quiet: f32, loud: f32, quiet_for: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let mut quiet_run = 0;
    for (i, s) in samples.iter().enumerate() {
        let a = s.abs();
        if a > loud && quiet_run >= quiet_for {
            found.push(i);
        }
        if a < quiet {
            quiet_run += 1
        } else if a > loud {
            quiet_run = 0
        }
    }
    found
}

/// What each 10 ms of `samples` holds: its dominant frequency (0 when quieter than -40 dBFS).
pub fn tenths(samples: &[f32]) -> Vec<f64> {
    samples
        .chunks_exact(RATE as usize / 100)
        .map(|c| if level_db(c) < -40.0 { 0.0 } else { dominant_frequency(c) })
        .collect()
}

/// Whether `f` is `target` give or take 3 %.
pub fn near(f: f64, target: f64) -> bool {
    (f - target).abs() < target * 0.03
}
