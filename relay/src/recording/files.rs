//! The recording directory on disk: where a file goes, how much room is left, and closing a file
//! a crash left open (cut after its last whole page, that page marked as the stream's end).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::ids::{EventId, Language};
use crate::recording::ogg;
use crate::recording::track::PER_MS;

/// Where a channel's file of a part goes, relative to the recording directory.
pub(crate) fn relative_path(event: &EventId, part: i64, language: &Language) -> PathBuf {
    PathBuf::from(event.as_str()).join(format!("part-{part:02}-{language}.opus"))
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// A file left open by a crash, made whole: cut after its last whole page, which is marked as
/// the end of the stream. Returns its size and length (ms).
pub(crate) fn seal(path: &Path) -> std::io::Result<(u64, i64)> {
    let mut file = std::fs::File::options().read(true).write(true).open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let pages = ogg::pages(&data);
    let Some(last) = pages.last() else {
        file.set_len(0)?;
        return Ok((0, 0));
    };
    let end = (last.at + last.len) as u64;
    if !last.is_last() {
        let sealed = ogg::marked_last(&data[last.at..last.at + last.len]);
        file.seek(SeekFrom::Start(last.at as u64))?;
        file.write_all(&sealed)?;
    }
    file.set_len(end)?;
    file.sync_all()?;
    Ok((end, (last.granule / PER_MS) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::track::Track;

    #[test]
    fn a_file_cut_in_a_page_is_sealed_at_the_page_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cut.opus");
        let mut track = Track::new(3, &[]);
        for i in 0..100u32 {
            track.packet(u64::from(i) * 960, i * 960, &[0xf8, 1, 2, 3], 960, false);
            if i % 25 == 24 {
                track.page();
            }
        }
        let mut bytes = Vec::new();
        track.take_bytes(&mut bytes);
        let whole = bytes.len();
        bytes.extend_from_slice(b"OggS\0\0torn"); // a page the crash cut
        std::fs::write(&path, &bytes).expect("write");
        let (size, ms) = seal(&path).expect("sealed");
        assert_eq!(size as usize, whole);
        assert_eq!(ms, 2000, "100 frames of 20 ms");
        let sealed = std::fs::read(&path).expect("read");
        let pages = ogg::pages(&sealed);
        assert_eq!(pages.iter().map(|p| p.len).sum::<usize>(), sealed.len(), "only whole pages");
        assert!(pages.last().expect("pages").is_last(), "the last page ends the stream");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
    }
}
