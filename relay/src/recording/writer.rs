//! The recording writer: one OS thread per node that owns every open recording file. It takes
//! channel packets from the shards' taps (a bounded queue the media threads never wait on, read
//! in batches every 50 ms) and
//! orders from the recordings service; each file is a [`Track`] that decides what goes where,
//! and this thread only writes the bytes. Pages reach the file at least every
//! [`PAGE_EVERY`], so a crash (even `kill -9`) leaves a file that plays to within that of the
//! end; a failed write (a full disk) cuts the file back to its last whole page and ends every
//! file of that recording with the reason.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::ids::{EventId, InterpreterId, RecordingId};
use crate::media::router::ChannelIndex;
use crate::media::tap::Tapped;
use crate::recording::opus::packet_samples;
use crate::recording::track::{PER_MS, Placed, Stretch, Track};
use crate::store::recordings::RecordingState;

/// Pages reach the file at least this often.
pub(crate) const PAGE_EVERY: Duration = Duration::from_millis(500);
/// How often the thread takes the packets waiting and looks at the clock (silence is filled
/// then); well inside the track's lateness (200 ms), so a packet is never overtaken by silence.
const TICK: Duration = Duration::from_millis(50);
/// How often each file's length is reported (and the file synced to disk).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Interpreters of an event who agreed to be recorded; the service keeps it current, the writer
/// reads it for every packet spoken by someone on air.
pub(crate) type Consent = Arc<RwLock<HashSet<InterpreterId>>>;

/// One file to open.
#[derive(Debug, Clone)]
pub(crate) struct FileOrder {
    pub id: RecordingId,
    pub channel: ChannelIndex,
    pub path: PathBuf,
    /// Ogg comments, `KEY=value`.
    pub tags: Vec<String>,
}

/// What the service asks of the writer.
#[derive(Debug)]
pub(crate) enum Order {
    /// Start a recording: its files share the time base `start`.
    Open {
        event: EventId,
        start: Instant,
        files: Vec<FileOrder>,
        consent: Consent,
        opened: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// End an event's recording at `at` (its files end `state`).
    Close {
        event: EventId,
        at: Instant,
        state: RecordingState,
        closed: Option<tokio::sync::oneshot::Sender<()>>,
    },
}

/// What the writer tells the service.
#[derive(Debug)]
pub(crate) enum WriterNote {
    Progress {
        id: RecordingId,
        duration_ms: i64,
        size: i64,
    },
    /// Someone went on air (`to_ms` None) or left it, in a file.
    Stretch {
        id: RecordingId,
        interpreter: InterpreterId,
        consent: bool,
        from_ms: i64,
        to_ms: Option<i64>,
    },
    Ended {
        event: EventId,
        id: RecordingId,
        duration_ms: i64,
        size: i64,
        state: RecordingState,
        problem: Option<String>,
    },
    /// Every note before this one is in the store once `0` is answered (a close that must be
    /// seen in the listing when the switch answers).
    Stored(tokio::sync::oneshot::Sender<()>),
}

/// Counters `/metrics` shows.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    pub bytes: AtomicU64,
    /// Packets a full queue refused (counted by the taps).
    pub dropped: Arc<AtomicU64>,
    /// Packets written after silence had overtaken them, or not Opus.
    pub late: AtomicU64,
    pub failures: AtomicU64,
    pub open_files: AtomicU64,
}

struct OpenFile {
    id: RecordingId,
    file: File,
    track: Track,
    /// Bytes in the file (all whole pages), and the position its last page ends at.
    size: u64,
    written: u64,
    buffer: Vec<u8>,
}

struct OpenRecording {
    start: Instant,
    files: HashMap<ChannelIndex, OpenFile>,
    consent: Consent,
    last_page: Instant,
    last_progress: Instant,
}

/// Start the writer thread.
pub(crate) fn start(
    packets: crossbeam_channel::Receiver<Tapped>,
    orders: crossbeam_channel::Receiver<Order>,
    notes: tokio::sync::mpsc::UnboundedSender<WriterNote>,
    counters: Arc<WriterCounters>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("tolk-recording".into()).spawn(move || {
        let mut writer = Writer { recordings: HashMap::new(), notes, counters };
        writer.run(&packets, &orders);
    })
}

struct Writer {
    recordings: HashMap<EventId, OpenRecording>,
    notes: tokio::sync::mpsc::UnboundedSender<WriterNote>,
    counters: Arc<WriterCounters>,
}

fn samples_since(start: Instant, at: Instant) -> u64 {
    (at.saturating_duration_since(start).as_micros() as u64) * PER_MS / 1000
}

fn ms(samples: u64) -> i64 {
    (samples / PER_MS) as i64
}

impl Writer {
    fn run(
        &mut self,
        packets: &crossbeam_channel::Receiver<Tapped>,
        orders: &crossbeam_channel::Receiver<Order>,
    ) {
        // Packets are taken in batches at each tick, not one wakeup per packet: a wakeup costs
        // more than writing a packet (bench/: ~11 µs against ~0.3 µs).
        let ticks = crossbeam_channel::tick(TICK);
        loop {
            crossbeam_channel::select! {
                recv(orders) -> order => match order {
                    Ok(order) => {
                        self.take(packets);
                        self.order(order);
                    }
                    Err(_) => break,
                },
                recv(ticks) -> _ => {
                    self.take(packets);
                    self.tick(Instant::now());
                }
            }
        }
        self.take(packets);
        let now = Instant::now();
        let open: Vec<EventId> = self.recordings.keys().cloned().collect();
        for event in open {
            self.close(&event, now, RecordingState::Interrupted, None);
        }
    }

    /// Every packet waiting in the queue, in order.
    fn take(&mut self, packets: &crossbeam_channel::Receiver<Tapped>) {
        for packet in packets.try_iter() {
            self.packet(&packet);
        }
    }

    fn order(&mut self, order: Order) {
        match order {
            Order::Open { event, start, files, consent, opened } => {
                let _ = opened.send(self.open(event, start, files, consent));
            }
            Order::Close { event, at, state, closed } => {
                self.close(&event, at, state, None);
                if let Some(closed) = closed {
                    let _ = self.notes.send(WriterNote::Stored(closed));
                }
            }
        }
    }

    fn open(
        &mut self,
        event: EventId,
        start: Instant,
        files: Vec<FileOrder>,
        consent: Consent,
    ) -> Result<(), String> {
        if self.recordings.contains_key(&event) {
            return Err("the event is being recorded already".into());
        }
        let mut open = HashMap::new();
        for order in files {
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&order.path)
                .map_err(|e| format!("cannot create {}: {e}", order.path.display()))?;
            let serial = rand::random();
            let track = Track::new(serial, &order.tags);
            open.insert(
                order.channel,
                OpenFile { id: order.id, file, track, size: 0, written: 0, buffer: Vec::new() },
            );
        }
        self.counters.open_files.fetch_add(open.len() as u64, Ordering::Relaxed);
        info!(%event, files = open.len(), "recording started");
        let now = Instant::now();
        let mut recording = OpenRecording { start, files: open, consent, last_page: now, last_progress: now };
        // The headers reach the disk at once: a file that exists plays.
        if let Err(problem) = write_out(&mut recording, &self.counters, true) {
            self.fail(&event, recording, &problem);
            return Err(problem);
        }
        self.recordings.insert(event, recording);
        Ok(())
    }

    fn packet(&mut self, packet: &Tapped) {
        let Some(recording) = self.recordings.get_mut(&*packet.event) else { return };
        let start = recording.start;
        let Some(open) = recording.files.get_mut(&packet.channel) else { return };
        let Some(samples) = packet_samples(&packet.payload) else {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let arrived = samples_since(start, packet.received_at);
        let consent = packet.on_air.map(|who| recording.consent.read().is_ok_and(|c| c.contains(&who)));
        let before = open.track.open_stretch().cloned();
        open.track.on_air(packet.on_air.zip(consent), open.track.position());
        let changed = open.track.open_stretch() != before.as_ref();
        if changed {
            for stretch in open.track.take_closed() {
                let _ = self.notes.send(stretch_note(&open.id, &stretch));
            }
            if let Some(stretch) = open.track.open_stretch() {
                if !stretch.consent {
                    info!(event = %packet.event, interpreter = %stretch.interpreter, file = %open.id,
                        "on air without consent to be recorded: the recording holds silence while they speak");
                }
                let _ = self.notes.send(stretch_note(&open.id, stretch));
            }
        }
        let withhold = consent == Some(false);
        if open.track.packet(arrived, packet.ts, &packet.payload, samples, withhold) == Placed::Late {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn tick(&mut self, now: Instant) {
        let events: Vec<EventId> = self.recordings.keys().cloned().collect();
        for event in events {
            let Some(mut recording) = self.recordings.remove(&event) else { continue };
            let position = samples_since(recording.start, now);
            for open in recording.files.values_mut() {
                open.track.keep_time(position);
            }
            let page = now.duration_since(recording.last_page) >= PAGE_EVERY;
            if page {
                recording.last_page = now;
            }
            let progress = now.duration_since(recording.last_progress) >= PROGRESS_EVERY;
            if let Err(problem) = write_out(&mut recording, &self.counters, page) {
                self.fail(&event, recording, &problem);
                continue;
            }
            if progress {
                recording.last_progress = now;
                for open in recording.files.values() {
                    let _ = open.file.sync_data();
                    let _ = self.notes.send(WriterNote::Progress {
                        id: open.id.clone(),
                        duration_ms: ms(open.written),
                        size: open.size as i64,
                    });
                }
            }
            self.recordings.insert(event, recording);
        }
    }

    fn close(&mut self, event: &EventId, at: Instant, state: RecordingState, problem: Option<&str>) {
        let Some(mut recording) = self.recordings.remove(event) else { return };
        // Every file of the part ends at the same position: the close's, or the furthest any
        // channel's line reached (a line anchored a few ms late runs a little past the clock).
        let furthest = recording.files.values().map(|f| f.track.position()).max().unwrap_or(0);
        let end = samples_since(recording.start, at).max(furthest);
        for open in recording.files.values_mut() {
            open.track.finish(end);
            for stretch in open.track.take_closed() {
                let _ = self.notes.send(stretch_note(&open.id, &stretch));
            }
        }
        if let Err(problem) = write_out(&mut recording, &self.counters, false) {
            self.fail(event, recording, &problem);
            return;
        }
        self.ended(event, recording, state, problem);
    }

    /// A write failed: every file of the recording ends where its last whole page ends.
    fn fail(&mut self, event: &EventId, recording: OpenRecording, problem: &str) {
        warn!(%event, problem, "recording stopped");
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.ended(event, recording, RecordingState::Failed, Some(problem));
    }

    fn ended(
        &mut self,
        event: &EventId,
        recording: OpenRecording,
        state: RecordingState,
        problem: Option<&str>,
    ) {
        for open in recording.files.into_values() {
            let _ = open.file.sync_all();
            self.counters.open_files.fetch_sub(1, Ordering::Relaxed);
            let _ = self.notes.send(WriterNote::Ended {
                event: event.clone(),
                id: open.id,
                duration_ms: ms(open.written),
                size: open.size as i64,
                state,
                problem: problem.map(str::to_owned),
            });
        }
        info!(%event, ?state, "recording ended");
    }
}

fn stretch_note(id: &RecordingId, stretch: &Stretch) -> WriterNote {
    WriterNote::Stretch {
        id: id.clone(),
        interpreter: stretch.interpreter,
        consent: stretch.consent,
        from_ms: ms(stretch.from),
        to_ms: stretch.to.map(ms),
    }
}

/// Write what each file's track has ready (closing the open page first when `page`); on a
/// failure the file is cut back to its last whole page and the reason returned.
fn write_out(recording: &mut OpenRecording, counters: &WriterCounters, page: bool) -> Result<(), String> {
    for open in recording.files.values_mut() {
        if page {
            open.track.page();
        }
        open.track.take_bytes(&mut open.buffer);
        if open.buffer.is_empty() {
            continue;
        }
        if let Err(e) = open.file.write_all(&open.buffer) {
            let _ = open.file.set_len(open.size);
            let full = e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull;
            return Err(if full { "the disk is full".into() } else { format!("cannot write the file: {e}") });
        }
        open.size += open.buffer.len() as u64;
        open.written = open.track.paged();
        counters.bytes.fetch_add(open.buffer.len() as u64, Ordering::Relaxed);
        open.buffer.clear();
    }
    Ok(())
}
