//! Run-time admission: who may start listening now. An event's media is open from an hour before
//! its window to an hour after it; an event takes at most `ceil(expected_listeners × headroom)`
//! listeners and the node at most its capacity. A place is held by an [`Admitted`] guard: it is
//! given back when the guard drops, unless the session was created ([`Admitted::keep`]), and
//! then when the session ends ([`Admission::release`]).

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;

use crate::ids::EventId;

/// How long before and after its window an event's media endpoints work.
pub(crate) const MEDIA_MARGIN: Duration = Duration::hours(1);
/// What a refused listener is told to wait, in seconds.
pub(crate) const RETRY_AFTER_SECS: u32 = 60;

/// Why a listener or publisher is turned away.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The event has as many listeners as it reserved (with headroom).
    #[error(
        "this event is full: it was reserved for {expected} listeners and {admitted} are listening; please try again in a minute"
    )]
    EventFull { expected: u32, admitted: u32 },
    /// The node has as many listeners as its capacity.
    #[error("this interpretation service is at its capacity right now; please try again in a minute")]
    NodeFull,
    /// Outside the media window.
    #[error(
        "this event's media is open from {} to {} (one hour before and after {} – {}); it is now {}",
        opens.to_rfc3339(), closes.to_rfc3339(), starts_at.to_rfc3339(), ends_at.to_rfc3339(), now.to_rfc3339()
    )]
    Closed {
        opens: DateTime<Utc>,
        closes: DateTime<Utc>,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
}

impl AdmissionError {
    /// Seconds to wait before trying again, for refusals that pass.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            AdmissionError::EventFull { .. } | AdmissionError::NodeFull => Some(RETRY_AFTER_SECS),
            AdmissionError::Closed { .. } => None,
        }
    }
}

/// An event's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Media stops at the end itself, without [`MEDIA_MARGIN`]: an interpretation of a BBB
    /// meeting, which ends when its meeting ends or a moderator stops it.
    pub sharp_end: bool,
}

impl Window {
    /// When media stops: [`MEDIA_MARGIN`] after the end, or at the end for a sharp end (an event
    /// stored before dates were bounded closes at the end of time rather than panic).
    pub(crate) fn closes(&self) -> DateTime<Utc> {
        if self.sharp_end {
            return self.ends_at;
        }
        self.ends_at.checked_add_signed(MEDIA_MARGIN).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whether media may flow at `now` (from [`MEDIA_MARGIN`] before to [`MEDIA_MARGIN`] after).
    pub(crate) fn check(&self, now: DateTime<Utc>) -> Result<(), AdmissionError> {
        // Checked: an event stored before dates were bounded must not panic here.
        let opens = self.starts_at.checked_sub_signed(MEDIA_MARGIN).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let closes = self.closes();
        if now < opens || now >= closes {
            return Err(AdmissionError::Closed {
                opens,
                closes,
                starts_at: self.starts_at,
                ends_at: self.ends_at,
                now,
            });
        }
        Ok(())
    }
}

/// Listeners admitted per event and on the node.
#[derive(Debug)]
pub(crate) struct Admission {
    admitted: DashMap<EventId, u32>,
    total: AtomicU32,
    headroom: f64,
    capacity: u32,
}

impl Admission {
    /// `headroom`: how far past its expected listeners an event may go (1.2: 20 %);
    /// `capacity`: the node's listeners.
    pub(crate) fn new(headroom: f64, capacity: u32) -> Self {
        Self { admitted: DashMap::new(), total: AtomicU32::new(0), headroom, capacity }
    }

    /// Hold a listener's place in `event` (reserved for `expected` listeners), or say why not.
    pub(crate) fn admit(&self, event: &EventId, expected: u32) -> Result<Admitted<'_>, AdmissionError> {
        let limit = (f64::from(expected) * self.headroom).ceil() as u32;
        let mut admitted = self.admitted.entry(event.clone()).or_insert(0);
        if *admitted >= limit {
            return Err(AdmissionError::EventFull { expected, admitted: *admitted });
        }
        let total = self.total.fetch_add(1, Ordering::SeqCst);
        if total >= self.capacity {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return Err(AdmissionError::NodeFull);
        }
        *admitted += 1;
        Ok(Admitted { admission: self, event: event.clone(), kept: false })
    }

    /// A kept place is given back (its session ended).
    pub(crate) fn release(&self, event: &EventId) {
        if let Some(mut admitted) = self.admitted.get_mut(event)
            && *admitted > 0
        {
            *admitted -= 1;
            self.total.fetch_sub(1, Ordering::SeqCst);
        }
        // An event with nobody admitted holds no entry.
        self.admitted.remove_if(event, |_, admitted| *admitted == 0);
    }

    /// Listeners admitted to `event`.
    #[cfg(test)]
    pub(crate) fn admitted(&self, event: &EventId) -> u32 {
        self.admitted.get(event).map_or(0, |a| *a)
    }

    /// Listeners admitted on the node.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u32 {
        self.total.load(Ordering::SeqCst)
    }
}

/// A listener's place, held while their session is being created.
#[derive(Debug)]
#[must_use = "a place is given back when the guard drops; keep() it once the session exists"]
pub(crate) struct Admitted<'a> {
    admission: &'a Admission,
    event: EventId,
    kept: bool,
}

impl Admitted<'_> {
    /// The session exists: the place stays taken until [`Admission::release`].
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.admission.release(&self.event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> EventId {
        EventId::parse(name).unwrap()
    }

    #[test]
    fn an_event_takes_its_listeners_with_headroom_and_no_more() {
        let admission = Admission::new(1.2, 100);
        let e = event("e1");
        for _ in 0..12 {
            admission.admit(&e, 10).unwrap().keep();
        }
        let refused = admission.admit(&e, 10).unwrap_err();
        assert!(matches!(refused, AdmissionError::EventFull { expected: 10, admitted: 12 }), "{refused}");
        assert_eq!(refused.retry_after(), Some(RETRY_AFTER_SECS));
        assert!(refused.to_string().contains("full"));
        admission.release(&e);
        admission.admit(&e, 10).unwrap().keep();
        assert_eq!((admission.admitted(&e), admission.total()), (12, 12));
    }

    #[test]
    fn a_place_not_kept_is_given_back_when_the_guard_drops() {
        let admission = Admission::new(1.0, 100);
        let e = event("e2");
        {
            let _held = admission.admit(&e, 1).unwrap();
            assert_eq!(admission.admitted(&e), 1);
            assert!(admission.admit(&e, 1).is_err(), "held while the session is being made");
        } // the request was cancelled, or the join failed
        assert_eq!((admission.admitted(&e), admission.total()), (0, 0));
        admission.admit(&e, 1).unwrap().keep();
        assert_eq!((admission.admitted(&e), admission.total()), (1, 1));
    }

    #[test]
    fn the_node_capacity_counts_every_event_and_refusals_change_nothing() {
        let admission = Admission::new(1.0, 3);
        let (a, b) = (event("a"), event("b"));
        admission.admit(&a, 10).unwrap().keep();
        admission.admit(&a, 10).unwrap().keep();
        admission.admit(&b, 10).unwrap().keep();
        assert!(matches!(admission.admit(&b, 10), Err(AdmissionError::NodeFull)));
        assert_eq!((admission.admitted(&a), admission.admitted(&b), admission.total()), (2, 1, 3));
        admission.release(&a);
        admission.admit(&b, 10).unwrap().keep();
        assert_eq!(admission.total(), 3);
    }

    #[test]
    fn releasing_more_than_was_admitted_does_not_underflow() {
        let admission = Admission::new(1.0, 3);
        let e = event("e3");
        admission.release(&e);
        admission.admit(&e, 1).unwrap().keep();
        admission.release(&e);
        admission.release(&e);
        assert_eq!((admission.admitted(&e), admission.total()), (0, 0));
    }

    #[test]
    fn media_opens_an_hour_before_and_closes_an_hour_after() {
        let starts_at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let window = Window { starts_at, ends_at: starts_at + Duration::hours(2), sharp_end: false };
        assert!(window.check(starts_at - Duration::minutes(61)).is_err());
        assert!(window.check(starts_at - Duration::minutes(59)).is_ok());
        assert!(window.check(starts_at + Duration::minutes(179)).is_ok());
        let closed = window.check(starts_at + Duration::hours(3)).unwrap_err();
        assert!(closed.to_string().contains("open from"), "{closed}");
        assert_eq!(closed.retry_after(), None);
    }

    #[test]
    fn a_sharp_end_closes_media_at_the_end_itself() {
        let starts_at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let window = Window { starts_at, ends_at: starts_at + Duration::hours(2), sharp_end: true };
        assert!(window.check(starts_at + Duration::minutes(119)).is_ok());
        assert!(window.check(starts_at + Duration::minutes(120)).is_err());
        assert_eq!(window.closes(), starts_at + Duration::hours(2));
    }
}
