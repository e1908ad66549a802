//! The usage report of an event, computed from the usage facts: per channel the peak of
//! simultaneous listeners and the listener-minutes, per interpreter and language the on-air
//! minutes, and the handover and slow-down counts. JSON, or CSV for spreadsheets.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, InterpreterId, Language};
use crate::store::usage::Interval;
use crate::store::{Event, Store, StoreError};

/// One channel in the usage report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChannelUsage {
    /// The channel's language (the floor language for the floor channel).
    pub language: Language,
    /// The most listeners this channel had at once.
    pub peak_listeners: u32,
    /// Minutes listened to this channel, summed over its listeners, rounded to 0.01.
    pub listener_minutes: f64,
}

/// One interpreter's time on air in one language, in the usage report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InterpreterUsage {
    /// The booth link's id (in URLs of the organiser API).
    pub id: InterpreterId,
    /// The interpreter's name (their booth link may since have been revoked).
    pub name: String,
    /// The language they interpreted into.
    pub language: Language,
    /// Minutes on air in this language, muted (cough) time included, rounded to 0.01.
    pub on_air_minutes: f64,
}

/// One interpreter's recorded time in one language, in the usage report: what the recordings hold
/// of them, and what they held silent for want of their consent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RecordedUsage {
    /// The booth link's id.
    pub id: InterpreterId,
    /// The interpreter's name.
    pub name: String,
    /// The channel recorded.
    pub language: Language,
    /// Minutes of their interpretation in recordings (they had agreed), rounded to 0.01.
    pub recorded_minutes: f64,
    /// Minutes on air in a recorded channel without their consent (silence in the file).
    pub withheld_minutes: f64,
}

/// `GET /api/v1/events/{id}/usage`: an event's usage up to now (also as CSV with `?format=csv`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UsageReport {
    /// The event: title and window.
    pub event: UsageEvent,
    /// Every channel of the event, the floor first, then the interpretation languages.
    pub channels: Vec<ChannelUsage>,
    /// Time on air per interpreter and language, ordered by booth link id, then language.
    pub interpreters: Vec<InterpreterUsage>,
    /// How many handovers between interpreters the event had.
    pub handovers: i64,
    /// How many times an interpreter asked the floor to slow down.
    pub slow_downs: i64,
    /// Peer clusters (federation) that relayed the event to their own listeners: each counts as
    /// one subscriber per edge, whatever its listeners.
    #[serde(default)]
    pub peers: Vec<crate::store::peers::PeerUsage>,
    /// Who was on air in recorded channels, per interpreter and language (from the recordings'
    /// on-air stretches).
    #[serde(default)]
    pub recorded: Vec<RecordedUsage>,
}

/// The event a usage report is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UsageEvent {
    /// The event's id (in the URLs of the organiser API and the listener page).
    pub id: EventId,
    /// The event's title.
    pub title: String,
    /// When the event starts.
    pub starts_at: chrono::DateTime<chrono::Utc>,
    /// When the event ends.
    pub ends_at: chrono::DateTime<chrono::Utc>,
}

fn minutes(ms: i64) -> f64 {
    (ms as f64 / 60_000.0 * 100.0).round() / 100.0
}

/// The most intervals open at once.
pub(crate) fn peak(intervals: &[&Interval]) -> u32 {
    let mut edges: Vec<(i64, i32)> = intervals.iter().flat_map(|i| [(i.from, 1), (i.to, -1)]).collect();
    // At equal times, leaving comes before joining (half-open intervals).
    edges.sort();
    let (mut now, mut best) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        best = best.max(now);
    }
    best.max(0) as u32
}

/// The usage report of `event`, up to now.
pub(crate) async fn report(store: &Store, event: Event) -> Result<UsageReport, StoreError> {
    let id: &EventId = &event.id;
    let now = crate::store::now_ms();
    let listening = store.listening_intervals(id, now).await?;
    let on_air = store.on_air_intervals(id, now).await?;
    let counts = store.usage_counts(id).await?;
    let (handovers, slow_downs) = (counts.handovers, counts.slow_downs);
    let mut peers = store.peer_usage(id, now).await?;
    for p in &mut peers {
        p.minutes = (p.minutes * 100.0).round() / 100.0;
    }
    let names: BTreeMap<InterpreterId, String> =
        store.all_interpreters(id).await?.into_iter().map(|i| (i.id, i.name)).collect();
    let channels = crate::events::channels(&event)
        .map(|(language, _)| {
            let here: Vec<&Interval> = listening.iter().filter(|i| &i.language == language).collect();
            ChannelUsage {
                language: language.clone(),
                peak_listeners: peak(&here),
                listener_minutes: minutes(here.iter().map(|i| i.to - i.from).sum()),
            }
        })
        .collect();
    let mut per_interpreter: BTreeMap<(InterpreterId, Language), i64> = BTreeMap::new();
    for i in &on_air {
        if let Some(who) = i.interpreter {
            *per_interpreter.entry((who, i.language.clone())).or_default() += i.to - i.from;
        }
    }
    let interpreters = per_interpreter
        .into_iter()
        .map(|((id, language), ms)| InterpreterUsage {
            id,
            name: names.get(&id).cloned().unwrap_or_default(),
            language,
            on_air_minutes: minutes(ms),
        })
        .collect();
    let files = store.recordings(id).await?;
    let mut per_recorded: BTreeMap<(InterpreterId, Language), (i64, i64)> = BTreeMap::new();
    for stretch in store.recording_stretches(id).await? {
        let Some(file) = files.iter().find(|f| f.id == stretch.recording) else { continue };
        let ms = stretch.to_ms.unwrap_or(file.duration_ms).max(stretch.from_ms) - stretch.from_ms;
        let entry = per_recorded.entry((stretch.interpreter, file.language.clone())).or_default();
        if stretch.consent { entry.0 += ms } else { entry.1 += ms }
    }
    let recorded = per_recorded
        .into_iter()
        .map(|((id, language), (recorded, withheld))| RecordedUsage {
            id,
            name: names.get(&id).cloned().unwrap_or_default(),
            language,
            recorded_minutes: minutes(recorded),
            withheld_minutes: minutes(withheld),
        })
        .collect();
    Ok(UsageReport {
        event: UsageEvent {
            id: event.id,
            title: event.title,
            starts_at: event.starts_at,
            ends_at: event.ends_at,
        },
        channels,
        interpreters,
        handovers,
        slow_downs,
        peers,
        recorded,
    })
}

/// The report as CSV: one row per channel and per interpreter and language, then per recorded
/// interpreter and language (on-air minutes recorded; `count`: minutes withheld for want of
/// consent), then the counts.
pub(crate) fn to_csv(report: &UsageReport) -> String {
    let mut out = String::from(
        "row,language,interpreter_id,interpreter,peak_listeners,listener_minutes,on_air_minutes,count\n",
    );
    for c in &report.channels {
        let _ = writeln!(out, "channel,{},,,{},{},,", c.language, c.peak_listeners, c.listener_minutes);
    }
    for i in &report.interpreters {
        let _ = writeln!(
            out,
            "interpreter,{},{},{},,,{},",
            i.language,
            i.id,
            csv_field(&i.name),
            i.on_air_minutes
        );
    }
    for r in &report.recorded {
        let _ = writeln!(
            out,
            "recorded,{},{},{},,,{},{}",
            r.language,
            r.id,
            csv_field(&r.name),
            r.recorded_minutes,
            r.withheld_minutes
        );
    }
    let _ = writeln!(out, "handovers,,,,,,,{}", report.handovers);
    let _ = writeln!(out, "slow_downs,,,,,,,{}", report.slow_downs);
    out
}

/// A CSV field, quoted when needed (and defused against spreadsheet formulas).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r', '|']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(from: i64, to: i64) -> Interval {
        Interval { language: Language::parse("fr").expect("valid"), interpreter: None, from, to }
    }

    #[test]
    fn peak_counts_overlaps_with_half_open_intervals() {
        let all = [at(0, 10), at(5, 15), at(10, 20), at(12, 13)];
        let refs: Vec<&Interval> = all.iter().collect();
        assert_eq!(
            peak(&refs),
            3,
            "5–10: two; 12–13: three (5–15, 10–20, 12–13); 10: one leaves as one joins"
        );
        assert_eq!(peak(&[]), 0);
    }

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("Ana"), "Ana");
        assert_eq!(csv_field("Smith, Ana"), "\"Smith, Ana\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("\tcmd"), "'\tcmd");
        assert_eq!(csv_field("|cmd"), "'|cmd");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
    }
}
