//! Entry points for `bench/benches/recording.rs`, and for nothing else: what recording one
//! channel costs, reached from outside the crate. They add no rules of their own and are no
//! stable API: [`record_channel_seconds`] drives a [`Track`] as the writer does, and
//! [`WriterRun`] runs the writer thread itself, fed through a [`Tap`] as the shards feed it.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::ids::{EventId, RecordingId};
use crate::media::ChannelPacket;
use crate::media::tap::Tap;
use crate::recording::opus::packet_samples;
use crate::recording::track::Track;
use crate::recording::writer::{self, FileOrder, Order, PAGE_EVERY, WriterCounters, WriterNote};
use crate::store::recordings::RecordingState;

/// Packets in 20 ms frames per page the writer closes.
const PACKETS_PER_PAGE: u32 = (PAGE_EVERY.as_millis() / 20) as u32;

/// Record `seconds` of one channel into a new file at `path` as the writer thread does, without
/// its thread: each packet (`payload`, one every 20 ms on a steady line) measured and placed,
/// the clock kept every 100 ms, the open page closed and written to the file every
/// [`PAGE_EVERY`]. Returns the file's size.
pub fn record_channel_seconds(path: &Path, seconds: u32, payload: &[u8]) -> std::io::Result<u64> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    let mut track = Track::new(1, &["LANGUAGE=fr".to_owned()]);
    let mut bytes = Vec::new();
    let mut size = 0u64;
    let mut write = |track: &mut Track, bytes: &mut Vec<u8>| -> std::io::Result<()> {
        track.take_bytes(bytes);
        file.write_all(bytes)?;
        size += bytes.len() as u64;
        bytes.clear();
        Ok(())
    };
    write(&mut track, &mut bytes)?;
    for i in 0..seconds * 50 {
        let samples = packet_samples(payload).ok_or(std::io::ErrorKind::InvalidInput)?;
        let at = u64::from(i) * 960;
        track.packet(at, i.wrapping_mul(960), payload, samples, false);
        if i % 5 == 4 {
            track.keep_time(at);
        }
        if i % PACKETS_PER_PAGE == PACKETS_PER_PAGE - 1 {
            track.page();
            write(&mut track, &mut bytes)?;
        }
    }
    track.finish(u64::from(seconds) * 48_000);
    write(&mut track, &mut bytes)?;
    Ok(size)
}

/// The writer thread (`tolk-recording`) recording `channels` channels of one event into a
/// directory, fed through a tap into its queue as a shard feeds it.
pub struct WriterRun {
    event: EventId,
    tap: Tap,
    orders: crossbeam_channel::Sender<Order>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<WriterCounters>,
    paths: Vec<PathBuf>,
    notes: tokio::sync::mpsc::UnboundedReceiver<WriterNote>,
}

impl std::fmt::Debug for WriterRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterRun").field("event", &self.event).field("paths", &self.paths).finish()
    }
}

impl WriterRun {
    /// Start the thread and open one file per channel in `dir` (`channel-N.opus`).
    pub fn start(dir: &Path, channels: usize) -> Result<Self, String> {
        let (packets, tapped) = crossbeam_channel::bounded(super::TAP_QUEUE);
        let (orders, ordered) = crossbeam_channel::unbounded();
        let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(WriterCounters::default());
        let thread = writer::start(tapped, ordered, notes_tx, counters.clone()).map_err(|e| e.to_string())?;
        let event = EventId::parse("bench").map_err(|e| e.to_string())?;
        let paths: Vec<PathBuf> = (0..channels).map(|c| dir.join(format!("channel-{c}.opus"))).collect();
        let files = paths
            .iter()
            .enumerate()
            .map(|(channel, path)| FileOrder {
                id: RecordingId::generate(),
                channel,
                path: path.clone(),
                tags: vec![format!("TOLK_CHANNEL={channel}")],
            })
            .collect();
        let (opened, answer) = tokio::sync::oneshot::channel();
        let consent = Arc::new(RwLock::new(HashSet::new()));
        let order = Order::Open { event: event.clone(), start: Instant::now(), files, consent, opened };
        orders.send(order).map_err(|_| "the writer stopped".to_owned())?;
        answer.blocking_recv().map_err(|_| "the writer stopped".to_owned())??;
        let tap = Tap::new(event.clone(), vec![true; channels], packets, counters.dropped.clone());
        Ok(Self { event, tap, orders, thread: Some(thread), counters, paths, notes })
    }

    /// Hand one channel packet to the writer, as the shard does (never waits).
    pub fn offer(&self, channel: usize, packet: &ChannelPacket) {
        self.tap.offer(channel, packet, None);
    }

    /// Packets a full queue refused, and packets the writer found late or not Opus.
    pub fn dropped_and_late(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.counters.dropped.load(Relaxed), self.counters.late.load(Relaxed))
    }

    /// Close the files now, stop the thread; returns each file and its size.
    pub fn finish(mut self) -> std::io::Result<Vec<(PathBuf, u64)>> {
        let (closed, _done) = tokio::sync::oneshot::channel();
        let event = self.event.clone();
        let order =
            Order::Close { event, at: Instant::now(), state: RecordingState::Done, closed: Some(closed) };
        if self.orders.send(order).is_ok() {
            // The writer answers a close through its notes, after the files' last notes.
            while let Some(note) = self.notes.blocking_recv() {
                if matches!(note, WriterNote::Stored(_)) {
                    break;
                }
            }
        }
        let (orders, _) = crossbeam_channel::unbounded();
        drop(std::mem::replace(&mut self.orders, orders));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.paths.iter().map(|p| Ok((p.clone(), std::fs::metadata(p)?.len()))).collect()
    }
}
