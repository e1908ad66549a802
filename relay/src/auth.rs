//! Who is calling: the admin token, an organiser's token, a booth link's token or an event's
//! floor token, each checked against its stored hash in constant time. The admin token is
//! configured, or generated once into the data directory (readable by its owner only). Wrong
//! tokens are throttled per client address ([`Auth::guarded`]): guessing is slow.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use tracing::info;

use crate::config::Settings;
use crate::ids::{EventId, Token};
use crate::limits::{Limiter, Rate};
use crate::store::interpreters::Interpreter;
use crate::store::{Event, Store, StoreError};

/// What can go wrong when checking a caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer token on an organiser call.
    #[error("this call needs 'Authorization: Bearer <admin or organiser token>'")]
    NoOrganiserToken,
    /// A bearer token that is neither the admin's nor a live organiser's.
    #[error("that token is not valid for the organiser API")]
    NotAnOrganiser,
    /// No bearer token on a booth call.
    #[error("the booth needs 'Authorization: Bearer <booth token>' (the token of your booth link)")]
    NoBoothToken,
    /// A booth token that was revoked, or whose event was cancelled.
    #[error("this booth link is not valid (revoked, or its event was cancelled)")]
    NotABoothLink,
    /// No bearer token on a floor publish.
    #[error("publishing the floor needs 'Authorization: Bearer <floor token>'")]
    NoFloorToken,
    /// Not the floor token of this event.
    #[error("that is not the floor token of event {0}")]
    NotTheFloorToken(EventId),
    /// An organiser asked for a BBB meeting its allowances do not cover. Says nothing of whether
    /// the meeting exists.
    #[error(
        "this organiser account may not take BBB meeting '{0}' as a floor; the operator allows \
         meetings per account (tolk organiser allow ID PATTERN)"
    )]
    MeetingNotAllowed(String),
    /// A BBB session token that bbb-web does not vouch for (or cannot be asked about).
    #[error(transparent)]
    BbbSession(#[from] crate::bbb::session::SessionError),
    /// No bearer token on a cascade (a node of this cluster, or a peer cluster's).
    #[error("a cascade needs 'Authorization: Bearer <cluster secret or peering token>'")]
    NoClusterSecret,
    /// Neither this cluster's secret nor a live peering token.
    #[error("that is neither this cluster's secret nor a peering token of this cluster")]
    NotTheClusterSecret,
    /// This client address sent too many wrong tokens: it may try again in this many seconds.
    #[error("too many wrong tokens from this address; try again in {0} s")]
    TooManyFailedChecks(u32),
    /// The admin token file could not be read or written.
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who calls the organiser API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The node's admin: every event, and the events of no organiser.
    Admin,
    /// An organiser: only their own events.
    Organiser(i64),
}

impl Caller {
    /// The organiser's id, None for the admin.
    pub(crate) fn organiser(self) -> Option<i64> {
        match self {
            Caller::Admin => None,
            Caller::Organiser(id) => Some(id),
        }
    }

    /// Whether the caller may manage `event` (others' events are "not found", not "forbidden").
    pub(crate) fn owns(self, event: &Event) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Organiser(me) => event.organiser == Some(me),
        }
    }
}

/// Wrong tokens a client address may send at once, then one per two seconds.
const FAILED_CHECKS: Rate = Rate { burst: 20.0, per_second: 0.5 };

/// Token checks.
pub(crate) struct Auth {
    store: Store,
    admin_hash: String,
    /// Wrong tokens per client address.
    failures: Mutex<Limiter<IpAddr>>,
}

impl Auth {
    /// The admin token from the settings, or the one generated into the data directory.
    pub(crate) fn new(settings: &Settings, store: Store) -> Result<Self, AuthError> {
        let admin = admin_token(settings)?;
        Ok(Self {
            store,
            admin_hash: admin.hash(),
            failures: Mutex::new(Limiter::new(FAILED_CHECKS, 10_000)),
        })
    }

    /// The live peer (federation) holding peering `token`: its name.
    pub(crate) async fn check_peer_token(&self, token: &str) -> Result<String, AuthError> {
        match self.store.peer_by_token(&Token::from_secret(token)).await? {
            Some(peer) => Ok(peer.name),
            None => Err(AuthError::NotTheClusterSecret),
        }
    }

    /// Run a token check for `client`: refused at once while the address is over its allowance
    /// of wrong tokens; a wrong token (not a missing one) uses one up.
    pub(crate) async fn guarded<T>(
        &self,
        client: IpAddr,
        check: impl Future<Output = Result<T, AuthError>>,
    ) -> Result<T, AuthError> {
        let blocked = self.failures.lock().map_or(Ok(()), |f| f.peek(&client, Instant::now()));
        if let Err(wait) = blocked {
            return Err(AuthError::TooManyFailedChecks(wait.as_secs_f64().ceil().max(1.0) as u32));
        }
        let result = check.await;
        if let Err(
            AuthError::NotAnOrganiser
            | AuthError::NotABoothLink
            | AuthError::NotTheFloorToken(_)
            | AuthError::NotTheClusterSecret
            | AuthError::BbbSession(crate::bbb::session::SessionError::Unknown),
        ) = result
            && let Ok(mut failures) = self.failures.lock()
        {
            let _ = failures.check(&client, Instant::now());
        }
        result
    }

    /// Whether `token` is the admin token.
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        constant_time_eq(&Token::from_secret(token).hash(), &self.admin_hash)
    }

    /// Who is calling the organiser API: the admin token, or an organiser's token.
    pub(crate) async fn caller(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let token = token.ok_or(AuthError::NoOrganiserToken)?;
        if self.is_admin(token) {
            return Ok(Caller::Admin);
        }
        match self.store.organiser_by_token(&Token::from_secret(token)).await? {
            Some(o) => Ok(Caller::Organiser(o.id)),
            None => Err(AuthError::NotAnOrganiser),
        }
    }

    /// Whether `caller` may take BBB meeting `meeting` as an event's floor: the admin any meeting;
    /// an organiser only those its allowances cover (a BBB server is shared by many organisers,
    /// and the bot joins with the server's secret).
    pub(crate) async fn may_take_meeting(&self, caller: Caller, meeting: &str) -> Result<(), AuthError> {
        let Caller::Organiser(id) = caller else { return Ok(()) };
        let meeting = meeting.trim();
        if self.store.meeting_allowances(id).await?.iter().any(|p| p.allows(meeting)) {
            Ok(())
        } else {
            Err(AuthError::MeetingNotAllowed(meeting.chars().take(256).collect()))
        }
    }

    /// The interpreter holding a booth token.
    pub(crate) async fn interpreter(&self, token: Option<&str>) -> Result<Interpreter, AuthError> {
        let token = token.ok_or(AuthError::NoBoothToken)?;
        self.store.interpreter_by_token(&Token::from_secret(token)).await?.ok_or(AuthError::NotABoothLink)
    }

    /// Check a floor token against the event's.
    pub(crate) fn check_floor_token(&self, event: &Event, token: Option<&str>) -> Result<(), AuthError> {
        let token = token.ok_or(AuthError::NoFloorToken)?;
        if !constant_time_eq(&Token::from_secret(token).hash(), &event.floor_token_hash) {
            return Err(AuthError::NotTheFloorToken(event.id.clone()));
        }
        Ok(())
    }
}

/// The admin token: configured, or generated once into the data directory and printed.
fn admin_token(settings: &Settings) -> Result<Token, AuthError> {
    if let Some(token) = &settings.admin_token {
        return Ok(Token::from_secret(token));
    }
    let path = settings.data_dir.join("admin-token");
    let data_err = |source| AuthError::DataDir { path: path.display().to_string(), source };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            info!(path = %path.display(), "admin token read from the data directory");
            return Ok(Token::from_secret(existing));
        }
    }
    let token = Token::generate();
    write_private(&path, token.secret()).map_err(data_err)?;
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    match announcement(&token, &path, terminal) {
        Announcement::Terminal(text) => println!("{text}"),
        Announcement::Log(text) => info!("{text}"),
    }
    Ok(token)
}

/// Where the news of a generated admin token goes, and what it says.
#[derive(Debug, PartialEq, Eq)]
enum Announcement {
    /// To the operator's terminal: the token itself.
    Terminal(String),
    /// To the log (a service's stdout ends in the journal): where the token is, never the token.
    Log(String),
}

fn announcement(token: &Token, path: &Path, terminal: bool) -> Announcement {
    if terminal {
        Announcement::Terminal(format!(
            "Generated the organiser API token (kept in {}; set TOLK_ADMIN_TOKEN to choose your own):\n  {}",
            path.display(),
            token.secret()
        ))
    } else {
        Announcement::Log(format!(
            "generated the organiser API token into {} (readable by its owner only; not logged)",
            path.display()
        ))
    }
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")
}

/// Compare two hashes without an early exit.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_admin_token_is_shown_only_on_a_terminal() {
        let token = Token::generate();
        let path = Path::new("/var/lib/tolk/admin-token");
        let Announcement::Terminal(shown) = announcement(&token, path, true) else { panic!("not shown") };
        assert!(shown.contains(token.secret()));
        let Announcement::Log(logged) = announcement(&token, path, false) else { panic!("not logged") };
        assert!(!logged.contains(token.secret()), "the token went to the journal: {logged}");
        assert!(logged.contains("/var/lib/tolk/admin-token"), "says where it is: {logged}");
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(constant_time_eq("", ""));
    }

    #[test]
    fn an_organiser_owns_only_their_events() {
        let now = chrono::Utc::now();
        let event = |organiser| Event {
            id: EventId::parse("e1").unwrap(),
            title: "t".into(),
            floor_language: crate::ids::Language::parse("en").unwrap(),
            languages: vec![],
            starts_at: now,
            ends_at: now,
            expected_listeners: 1,
            floor_kind: crate::store::FloorKind::Whip,
            rtp_port: None,
            floor_token_hash: String::new(),
            floor_under_db: None,
            organiser,
            bbb_meeting_id: None,
            rtp_allow: Default::default(),
            bbb_room: None,
            peer: None,
        };
        assert!(Caller::Admin.owns(&event(None)));
        assert!(Caller::Admin.owns(&event(Some(3))));
        assert!(Caller::Organiser(3).owns(&event(Some(3))));
        assert!(!Caller::Organiser(3).owns(&event(Some(4))));
        assert!(!Caller::Organiser(3).owns(&event(None)));
    }
}
