//! Capacity: whether an event fits on this node at every instant of its window.
//!
//! A node offers `listeners` and `channels` (channel units: a pass-through channel is one unit, a
//! mixed channel [`MIXED_CHANNEL_UNITS`], since it decodes, mixes and encodes). An event needs its
//! `expected_listeners` and its channels (floor included) over its half-open window
//! `[starts_at, ends_at)`. A new or changed event fits when, at every instant of its window, the
//! events overlapping it plus itself stay within the node's capacity. Pure functions over a list
//! of reservations; the app serialises the check with the write so two requests racing for the
//! last capacity cannot both win.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Channel units of a mixed channel (a pass-through channel is 1).
pub const MIXED_CHANNEL_UNITS: u32 = 10;

/// What one event holds over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// When the event starts holding capacity (its `starts_at`).
    pub starts_at: DateTime<Utc>,
    /// When it stops holding capacity (its `ends_at`; the window is half-open).
    pub ends_at: DateTime<Utc>,
    /// The listeners it expects.
    pub listeners: u32,
    /// Its channel units (see [`channel_units`]).
    pub channels: u32,
}

/// Channel units of an event: the floor, and each interpretation language (mixed or not).
pub fn channel_units(languages: usize, mixed: bool) -> u32 {
    1 + languages as u32 * if mixed { MIXED_CHANNEL_UNITS } else { 1 }
}

/// What the node offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Capacity {
    /// Listeners the node carries at once, over all its events.
    pub listeners: u32,
    /// Channel units the node carries at once: a pass-through channel counts 1, a mixed
    /// channel [`MIXED_CHANNEL_UNITS`].
    pub channels: u32,
}

/// What is free over one stretch of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FreeSegment {
    /// Where the stretch begins.
    pub from: DateTime<Utc>,
    /// Where the stretch ends (excluded).
    pub to: DateTime<Utc>,
    /// Listeners still free over the stretch (negative if the node is overbooked).
    pub free_listeners: i64,
    /// Channel units still free over the stretch (negative if the node is overbooked).
    pub free_channels: i64,
    /// How many events hold capacity during the stretch.
    pub events: usize,
}

/// Free capacity over `[from, to)`, in stretches where it is constant.
pub fn free_over(
    capacity: Capacity,
    reserved: &[Reservation],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<FreeSegment> {
    let mut cuts: Vec<DateTime<Utc>> = vec![from, to];
    for r in reserved {
        for t in [r.starts_at, r.ends_at] {
            if t > from && t < to {
                cuts.push(t);
            }
        }
    }
    cuts.sort();
    cuts.dedup();
    let mut segments: Vec<FreeSegment> = Vec::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Half-open windows: an event holds [starts_at, ends_at); check at the segment's start.
        let active: Vec<&Reservation> =
            reserved.iter().filter(|r| r.starts_at <= a && r.ends_at > a).collect();
        let segment = FreeSegment {
            from: a,
            to: b,
            free_listeners: i64::from(capacity.listeners)
                - active.iter().map(|r| i64::from(r.listeners)).sum::<i64>(),
            free_channels: i64::from(capacity.channels)
                - active.iter().map(|r| i64::from(r.channels)).sum::<i64>(),
            events: active.len(),
        };
        match segments.last_mut() {
            Some(last)
                if last.free_listeners == segment.free_listeners
                    && last.free_channels == segment.free_channels
                    && last.events == segment.events =>
            {
                last.to = b;
            }
            _ => segments.push(segment),
        }
    }
    segments
}

/// Why an event does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Shortfall {
    /// Where and by how much the node is short, and what would fit, in a sentence.
    pub detail: String,
    /// The largest `expected_listeners` that would fit with the event's channels as asked.
    pub largest_fit: u32,
}

/// Check that `wanted` fits beside `reserved` (which must not contain the event itself).
pub fn check(capacity: Capacity, reserved: &[Reservation], wanted: &Reservation) -> Result<(), Shortfall> {
    let segments = free_over(capacity, reserved, wanted.starts_at, wanted.ends_at);
    let tightest_listeners = segments.iter().min_by_key(|s| s.free_listeners);
    let tightest_channels = segments.iter().min_by_key(|s| s.free_channels);
    let largest_fit =
        tightest_listeners.map_or(i64::from(capacity.listeners), |s| s.free_listeners).max(0) as u32;
    let channels_fit = tightest_channels.is_none_or(|s| s.free_channels >= i64::from(wanted.channels));
    if let Some(s) = tightest_channels.filter(|_| !channels_fit) {
        return Err(Shortfall {
            detail: format!(
                "not enough channel capacity from {} to {}: {} channel units are free there and this event needs {} \
                 (short by {}; a mixed channel counts {MIXED_CHANNEL_UNITS}). Fewer languages, pass-through instead of \
                 mix, or another time would fit.",
                s.from.to_rfc3339(),
                s.to.to_rfc3339(),
                s.free_channels.max(0),
                wanted.channels,
                i64::from(wanted.channels) - s.free_channels.max(0),
            ),
            largest_fit: 0,
        });
    }
    if let Some(s) = tightest_listeners.filter(|s| s.free_listeners < i64::from(wanted.listeners)) {
        return Err(Shortfall {
            detail: format!(
                "not enough listener capacity from {} to {}: {} listeners are free there and this event expects {} \
                 (short by {}). The largest expected_listeners that fits is {largest_fit}.",
                s.from.to_rfc3339(),
                s.to.to_rfc3339(),
                s.free_listeners.max(0),
                wanted.listeners,
                i64::from(wanted.listeners) - s.free_listeners.max(0),
            ),
            largest_fit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Capacity = Capacity { listeners: 1000, channels: 20 };

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + hour * 3600, 0).expect("valid")
    }

    fn r(from: i64, to: i64, listeners: u32, channels: u32) -> Reservation {
        Reservation { starts_at: at(from), ends_at: at(to), listeners, channels }
    }

    #[test]
    fn touching_windows_do_not_overlap() {
        let reserved = [r(9, 12, 1000, 20)];
        assert_eq!(check(CAP, &reserved, &r(12, 14, 1000, 20)), Ok(()), "half-open: 12:00 is free");
        assert_eq!(check(CAP, &reserved, &r(7, 9, 1000, 20)), Ok(()));
        assert!(check(CAP, &reserved, &r(11, 13, 1, 1)).is_err());
    }

    #[test]
    fn an_exact_fit_fits_and_one_more_does_not() {
        let reserved = [r(9, 12, 600, 10)];
        assert_eq!(check(CAP, &reserved, &r(10, 11, 400, 10)), Ok(()));
        let err = check(CAP, &reserved, &r(10, 11, 401, 10)).expect_err("one too many");
        assert_eq!(err.largest_fit, 400);
        assert!(err.detail.contains("short by 1"), "{}", err.detail);
        assert!(err.detail.contains(&at(10).to_rfc3339()), "names the short window: {}", err.detail);
    }

    #[test]
    fn overlap_chains_are_checked_at_every_instant() {
        // Three events that never overlap all at once, but pairwise: the peak is 700.
        let reserved = [r(9, 11, 300, 2), r(10, 13, 400, 2), r(12, 14, 300, 2)];
        // [10, 11): 700 used; [12, 13): 700 used; [11, 12): 400 used.
        let err = check(CAP, &reserved, &r(9, 14, 301, 2)).expect_err("too many at 10:00");
        assert_eq!(err.largest_fit, 300);
        assert_eq!(check(CAP, &reserved, &r(9, 14, 300, 2)), Ok(()));
        assert_eq!(check(CAP, &reserved, &r(11, 12, 600, 2)), Ok(()), "the gap between the peaks holds 600");
    }

    #[test]
    fn channels_are_capacity_too() {
        let reserved = [r(9, 12, 10, 15)];
        let err = check(CAP, &reserved, &r(10, 11, 10, channel_units(1, true)))
            .expect_err("a mixed channel is 10 units");
        assert!(err.detail.contains("channel"), "{}", err.detail);
        assert_eq!(check(CAP, &reserved, &r(10, 11, 10, channel_units(4, false))), Ok(()));
    }

    #[test]
    fn free_capacity_comes_in_stretches() {
        let reserved = [r(9, 11, 300, 2), r(10, 13, 400, 2)];
        let free = free_over(CAP, &reserved, at(8), at(14));
        let shape: Vec<(i64, i64, i64)> =
            free.iter().map(|s| ((s.from - at(0)).num_hours(), s.free_listeners, s.free_channels)).collect();
        assert_eq!(shape, vec![(8, 1000, 20), (9, 700, 18), (10, 300, 16), (11, 600, 18), (13, 1000, 20)]);
    }
}
