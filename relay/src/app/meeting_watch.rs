//! Following the BBB server's meetings (`getMeetings`, every few seconds): an interpretation
//! started in a meeting ends when the meeting ends and is extended while it runs; a meeting
//! created with `meta_tolk-languages=fr,de` (and optionally `meta_tolk-floor-language`,
//! `meta_tolk-expected-listeners`) gets its interpretation when it starts, without anyone
//! clicking — once: a moderator who stops it has the last word. What to do is decided by
//! [`plan`], a pure function of the meetings, the running interpretations and the time.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::app::App;
use crate::app::meetings::{MEETING_WINDOW, StartInterpretation};
use crate::bbb::api::{BbbApi, ListedMeeting};
use crate::ids::{EventId, Language};
use crate::store::Event;

/// Listeners reserved for an interpretation started from metadata that names none.
const DEFAULT_EXPECTED: u32 = 100;
/// An interpretation whose meeting still runs is extended when it has less than this left.
const EXTEND_WITHIN: chrono::Duration = chrono::Duration::hours(1);

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// The meeting of this interpretation is gone: end it.
    End(EventId),
    /// The meeting still runs and the interpretation ends soon: move its end.
    Extend(EventId, DateTime<Utc>),
    /// A meeting asks for interpretation in its metadata and has none.
    Start { room: String, meeting: String, title: String, request: StartInterpretation },
}

/// What to do, given the server's `meetings`, the interpretations of meetings that have not ended
/// (`running`) and the time. `refused`: meetings whose metadata was refused before (not retried).
/// `grace`: an interpretation is not ended for its meeting's absence this soon after it started
/// (the meeting list may lag a moment behind a meeting that just began: two turns of the watcher).
pub(crate) fn plan(
    meetings: &[ListedMeeting],
    running: &[Event],
    refused: &HashSet<String>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> (Vec<Step>, Vec<(String, String)>) {
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    for event in running {
        let Some(room) = event.bbb_room.as_deref() else { continue };
        match meetings.iter().find(|m| m.internal_id == room) {
            None if now - event.starts_at > grace => steps.push(Step::End(event.id.clone())),
            None => {}
            Some(_) if event.ends_at - now < EXTEND_WITHIN => {
                steps.push(Step::Extend(event.id.clone(), now + MEETING_WINDOW));
            }
            Some(_) => {}
        }
    }
    for meeting in meetings.iter().filter(|m| m.running && !m.internal_id.is_empty()) {
        let Some(languages) = meeting.meta("tolk-languages") else { continue };
        if refused.contains(&meeting.internal_id)
            || running.iter().any(|e| e.bbb_room.as_deref() == Some(meeting.internal_id.as_str()))
        {
            continue;
        }
        match from_metadata(meeting, languages) {
            Ok(request) => steps.push(Step::Start {
                room: meeting.internal_id.clone(),
                meeting: meeting.id.clone(),
                title: if meeting.name.trim().is_empty() { meeting.id.clone() } else { meeting.name.clone() },
                request,
            }),
            Err(why) => problems.push((meeting.internal_id.clone(), why)),
        }
    }
    (steps, problems)
}

/// The interpretation a meeting's metadata asks for, or why it cannot be had.
fn from_metadata(meeting: &ListedMeeting, languages: &str) -> Result<StartInterpretation, String> {
    let parse = |tag: &str| Language::parse(tag.trim()).map_err(|e| format!("meta_tolk-languages: {e}"));
    let languages: Vec<Language> =
        languages.split(',').filter(|t| !t.trim().is_empty()).map(parse).collect::<Result<_, _>>()?;
    if languages.is_empty() {
        return Err("meta_tolk-languages names no language".into());
    }
    let floor_language = match meeting.meta("tolk-floor-language") {
        Some(tag) => Language::parse(tag.trim()).map_err(|e| format!("meta_tolk-floor-language: {e}"))?,
        None => Language::parse("en").map_err(|e| e.to_string())?,
    };
    let expected_listeners = match meeting.meta("tolk-expected-listeners") {
        Some(n) => n.trim().parse().map_err(|_| {
            format!("meta_tolk-expected-listeners must be a number of listeners, not '{}'", n.trim())
        })?,
        None => DEFAULT_EXPECTED,
    };
    Ok(StartInterpretation { floor_language, languages, expected_listeners })
}

/// The longest wait between two `getMeetings` while BBB refuses or fails them.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The watcher: every `poll` of the BBB configuration, while the relay runs. While BBB refuses
/// or fails the call it backs off (doubling, at most a minute; a refused secret waits the
/// longest at once), so a wrong secret does not fill BBB's log.
pub(crate) async fn watch_meetings(app: Weak<App>, api: Arc<BbbApi>) {
    let every = api.config().poll.max(Duration::from_millis(100));
    let mut refused: HashSet<String> = HashSet::new();
    let mut wait = every;
    let mut failing = false;
    loop {
        tokio::time::sleep(wait).await;
        let Some(app) = app.upgrade() else { return };
        let meetings = match api.meetings().await {
            Ok(meetings) => meetings,
            Err(e) => {
                // Said once per outage, not every few seconds.
                if !failing {
                    warn!(error = %e, "cannot list BBB's meetings; interpretations follow their meetings again once it answers");
                }
                failing = true;
                wait = if e.is_lasting() { MAX_BACKOFF } else { (wait * 2).min(MAX_BACKOFF) };
                continue;
            }
        };
        failing = false;
        wait = every;
        app.follow_meetings(&meetings, &mut refused, every * 2).await;
    }
}

impl App {
    /// Carry out [`plan`] once.
    pub(crate) async fn follow_meetings(
        &self,
        meetings: &[ListedMeeting],
        refused: &mut HashSet<String>,
        grace: Duration,
    ) {
        let now = Utc::now();
        let running = match self.store.events_in_rooms(now).await {
            Ok(running) => running,
            Err(e) => return warn!(error = %e, "cannot read the interpretations of BBB meetings"),
        };
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::seconds(10));
        // Remembered refusals last as long as their meeting: the set never outgrows the server.
        refused.retain(|room| meetings.iter().any(|m| m.internal_id == *room));
        let (steps, problems) = plan(meetings, &running, refused, now, grace);
        for (room, why) in problems {
            warn!(meeting = %room, "the meeting's metadata asks for interpretation, but {why}");
            refused.insert(room);
        }
        for step in steps {
            match step {
                Step::End(id) => match self.events.end_now(&id).await {
                    Ok(()) => info!(event = %id, "the meeting ended: its interpretation ended"),
                    Err(e) => {
                        warn!(event = %id, error = %e, "could not end the interpretation of an ended meeting")
                    }
                },
                Step::Extend(id, ends_at) => match self.events.extend(&id, ends_at).await {
                    Ok(Some(_)) => {
                        debug!(event = %id, %ends_at, "the meeting runs on: its interpretation extended")
                    }
                    Ok(None) => debug!(event = %id, "stopped meanwhile: not extended"),
                    Err(e) => {
                        warn!(event = %id, error = %e, "the meeting runs on, but its interpretation cannot be extended")
                    }
                },
                Step::Start { room, meeting, title, request } => {
                    // Once per meeting: a moderator who stopped it, or an earlier start, counts.
                    match self.store.room_had_interpretation(&room).await {
                        Ok(false) => {}
                        Ok(true) => {
                            refused.insert(room);
                            continue;
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot read the interpretations of BBB meetings");
                            continue;
                        }
                    }
                    let _starting = self.starting.lock().await;
                    match self.start_in_room(&room, &meeting, title, request).await {
                        Ok(event) => {
                            info!(event = %event.id, meeting = %room, "interpretation started from the meeting's metadata")
                        }
                        Err(e) => {
                            warn!(meeting = %room, error = %e, "the meeting's metadata asks for interpretation, but it cannot start");
                            refused.insert(room);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FloorKind;

    const GRACE: chrono::Duration = chrono::Duration::seconds(10);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn meeting(internal: &str, running: bool, meta: &[(&str, &str)]) -> ListedMeeting {
        ListedMeeting {
            id: format!("ext-{internal}"),
            internal_id: internal.into(),
            name: format!("Meeting {internal}"),
            running,
            participants: 3,
            metadata: meta.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        }
    }

    fn interpretation(id: &str, room: &str, starts: i64, ends: i64) -> Event {
        Event {
            id: EventId::parse(id).unwrap(),
            title: "t".into(),
            floor_language: Language::parse("en").unwrap(),
            languages: vec![Language::parse("fr").unwrap()],
            starts_at: at(starts),
            ends_at: at(ends),
            expected_listeners: 10,
            floor_kind: FloorKind::Bbb,
            rtp_port: None,
            floor_token_hash: String::new(),
            floor_under_db: None,
            organiser: None,
            bbb_meeting_id: Some(format!("ext-{room}")),
            rtp_allow: Default::default(),
            bbb_room: Some(room.into()),
            peer: None,
        }
    }

    #[test]
    fn an_interpretation_ends_with_its_meeting_but_not_in_its_first_seconds() {
        let running = [interpretation("evt-a", "room-a", 0, 4 * 3600)];
        let (steps, _) = plan(&[], &running, &HashSet::new(), at(5), GRACE);
        assert!(steps.is_empty(), "the meeting list may lag: {steps:?}");
        let (steps, _) = plan(&[], &running, &HashSet::new(), at(60), GRACE);
        assert_eq!(steps, vec![Step::End(EventId::parse("evt-a").unwrap())]);
        let (steps, _) = plan(&[meeting("room-a", true, &[])], &running, &HashSet::new(), at(60), GRACE);
        assert!(steps.is_empty(), "its meeting runs: {steps:?}");
    }

    #[test]
    fn an_interpretation_whose_meeting_runs_on_is_extended_before_it_ends() {
        let running = [interpretation("evt-a", "room-a", 0, 4 * 3600)];
        let meetings = [meeting("room-a", true, &[])];
        let (steps, _) = plan(&meetings, &running, &HashSet::new(), at(3 * 3600 + 60), GRACE);
        assert_eq!(
            steps,
            vec![Step::Extend(EventId::parse("evt-a").unwrap(), at(3 * 3600 + 60) + MEETING_WINDOW)]
        );
    }

    #[test]
    fn metadata_starts_interpretation_once_the_meeting_runs() {
        let meta =
            [("tolk-languages", "fr, de"), ("tolk-floor-language", "it"), ("tolk-expected-listeners", "40")];
        let (steps, _) = plan(&[meeting("room-b", false, &meta)], &[], &HashSet::new(), at(0), GRACE);
        assert!(steps.is_empty(), "not before the meeting runs");
        let (steps, problems) = plan(&[meeting("room-b", true, &meta)], &[], &HashSet::new(), at(0), GRACE);
        assert!(problems.is_empty());
        let [Step::Start { room, meeting: id, title, request }] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert_eq!((room.as_str(), id.as_str(), title.as_str()), ("room-b", "ext-room-b", "Meeting room-b"));
        assert_eq!(request.floor_language.as_str(), "it");
        assert_eq!(request.languages.iter().map(Language::as_str).collect::<Vec<_>>(), ["fr", "de"]);
        assert_eq!(request.expected_listeners, 40);
        // Already running, or refused before: nothing.
        let running = [interpretation("evt-b", "room-b", 0, 3600 * 4)];
        assert!(
            plan(&[meeting("room-b", true, &meta)], &running, &HashSet::new(), at(10), GRACE).0.is_empty()
        );
        let refused = HashSet::from(["room-b".to_owned()]);
        assert!(plan(&[meeting("room-b", true, &meta)], &[], &refused, at(10), GRACE).0.is_empty());
    }

    #[test]
    fn bad_metadata_is_a_problem_named_not_a_start() {
        for meta in [
            [("tolk-languages", "fr,??"), ("x", "")],
            [("tolk-languages", " , "), ("x", "")],
            [("tolk-languages", "fr"), ("tolk-expected-listeners", "lots")],
        ] {
            let (steps, problems) =
                plan(&[meeting("room-c", true, &meta)], &[], &HashSet::new(), at(0), GRACE);
            assert!(steps.is_empty());
            assert_eq!(problems.len(), 1, "{meta:?}");
            assert_eq!(problems[0].0, "room-c");
            assert!(problems[0].1.contains("meta_tolk-"), "{}", problems[0].1);
        }
    }
}
