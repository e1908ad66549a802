//! Every file of an event as one ZIP download, streamed: the files are stored as they are (Ogg
//! Opus does not compress), each followed by a data descriptor with the CRC-32 computed while it
//! is sent, and the central directory at the end. Nothing is held in memory but one chunk.

use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

/// One file to put in the archive.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Its name in the archive.
    pub name: String,
    pub path: PathBuf,
    /// Bytes to send (the file's size when the download started: a file still being written
    /// is cut there, after a whole page).
    pub size: u64,
    /// Its time (Unix ms), as the archive's modification time.
    pub modified_ms: i64,
}

/// Archives above this need ZIP64, which this writer does not make.
pub(crate) const MAX_ARCHIVE: u64 = u32::MAX as u64 - 1_000_000;

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
/// Data descriptor follows; names are UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;

/// DOS time and date of a Unix time in ms (UTC).
fn dos_time(ms: i64) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let year = t.year().clamp(1980, 2107) as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    let date = ((year - 1980) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    (time, date)
}

/// The archive's bytes around the files' contents (pure: tested without files).
#[derive(Debug, Default)]
pub(crate) struct Layout {
    central: Vec<u8>,
    entries: u16,
    offset: u64,
}

impl Layout {
    /// The local header of the next entry.
    pub(crate) fn local_header(&mut self, entry: &Entry) -> Vec<u8> {
        let (time, date) = dos_time(entry.modified_ms);
        let mut out = Vec::with_capacity(30 + entry.name.len());
        out.extend_from_slice(&LOCAL.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&FLAGS.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&time.to_le_bytes());
        out.extend_from_slice(&date.to_le_bytes());
        out.extend_from_slice(&[0; 12]); // CRC and sizes: in the descriptor
        out.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(entry.name.as_bytes());
        out
    }

    /// The descriptor after an entry's `size` bytes with checksum `crc`; records the entry in
    /// the central directory.
    pub(crate) fn descriptor(&mut self, entry: &Entry, size: u64, crc: u32) -> Vec<u8> {
        let (time, date) = dos_time(entry.modified_ms);
        let size32 = size as u32;
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&DESCRIPTOR.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        let c = &mut self.central;
        c.extend_from_slice(&CENTRAL.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // made by
        c.extend_from_slice(&20u16.to_le_bytes()); // needed
        c.extend_from_slice(&FLAGS.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&time.to_le_bytes());
        c.extend_from_slice(&date.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 12]); // extra, comment, disk, internal and external attributes
        c.extend_from_slice(&(self.offset as u32).to_le_bytes());
        c.extend_from_slice(entry.name.as_bytes());
        self.entries += 1;
        self.offset += 30 + entry.name.len() as u64 + size + 16;
        out
    }

    /// The central directory and its end record.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut out = self.central;
        let size = out.len() as u32;
        out.extend_from_slice(&END.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // disk numbers
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(self.offset as u32).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// The archive of `entries` as a stream of chunks (a file that cannot be read ends the stream
/// with an error, which the client sees as a failed download).
pub(crate) fn stream(entries: Vec<Entry>) -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = send(entries, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn send(
    entries: Vec<Entry>,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was cancelled");
    let mut layout = Layout::default();
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in entries {
        tx.send(Ok(layout.local_header(&entry).into())).await.map_err(|_| gone())?;
        let file = tokio::fs::File::open(&entry.path).await?;
        let mut file = file.take(entry.size);
        let mut crc = crc32fast::Hasher::new();
        let mut sent = 0u64;
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            crc.update(&buffer[..n]);
            sent += n as u64;
            tx.send(Ok(Bytes::copy_from_slice(&buffer[..n]))).await.map_err(|_| gone())?;
        }
        tx.send(Ok(layout.descriptor(&entry, sent, crc.finalize()).into())).await.map_err(|_| gone())?;
    }
    tx.send(Ok(layout.finish().into())).await.map_err(|_| gone())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_points_at_each_entry_and_counts_them() {
        let entry = |name: &str| Entry {
            name: name.into(),
            path: PathBuf::new(),
            size: 5,
            modified_ms: 1_700_000_000_000,
        };
        let mut layout = Layout::default();
        let mut archive = Vec::new();
        for name in ["fr.opus", "de.opus"] {
            archive.extend(layout.local_header(&entry(name)));
            archive.extend_from_slice(b"hello");
            let crc = crc32fast::hash(b"hello");
            archive.extend(layout.descriptor(&entry(name), 5, crc));
        }
        let central_at = archive.len();
        archive.extend(layout.finish());
        let end = &archive[archive.len() - 22..];
        assert_eq!(&end[..4], &END.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2, "two entries");
        assert_eq!(u32::from_le_bytes(end[16..20].try_into().unwrap()) as usize, central_at);
        // The second central record points at the second local header.
        let second_local = 30 + 7 + 5 + 16;
        assert_eq!(&archive[second_local..second_local + 4], &LOCAL.to_le_bytes());
        let second_central = central_at + 46 + 7;
        let offset =
            u32::from_le_bytes(archive[second_central + 42..second_central + 46].try_into().unwrap());
        assert_eq!(offset as usize, second_local);
    }
}
