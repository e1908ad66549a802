//! Who a BBB session token belongs to, asked of the BBB server itself. The plugin in a participant's
//! BBB page hands Tolk the participant's session token (and the browser sends BBB's session
//! cookie along, Tolk being served on the BBB host); Tolk asks bbb-web the question BBB's own
//! services ask for every GraphQL connection — `connection/checkGraphqlAuthorization` with the
//! token in `x-session-token` and the session cookie — and learns the meeting, the user and
//! whether they are a moderator. Nothing the browser says about itself is trusted.
//!
//! bbb-web answers 200 with `Meeting-Id`, `Meeting-External-Id`, `User-Id`, `User-Name`
//! (URL-encoded) and `User-Is-Moderator` headers and a JSON body whose `X-Currently-Online` says
//! whether the user is still in the meeting (a user who left or was removed is answered 200 too,
//! with `"false"`: Tolk refuses them); 401 for a token it does not know, or a token whose BBB
//! session cookie is missing. Answers are kept for a few seconds, so a page polling every three
//! seconds costs bbb-web one check per participant and interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};
use url::Url;

/// A participant of a BBB meeting, as bbb-web knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Participant {
    /// BBB's internal meeting id (the LiveKit room, the GraphQL meeting).
    pub meeting: String,
    /// The meeting id the meeting was created with (`meetingID` of the API).
    pub external_meeting: String,
    /// BBB's internal user id (`w_…`), the same the plugin SDK shows.
    pub user: String,
    /// The participant's name in the meeting.
    pub name: String,
    /// A moderator of the meeting.
    pub moderator: bool,
}

/// Why a session token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("this call needs the BBB session token in the X-Session-Token header (the plugin sends it)")]
    NoToken,
    #[error(
        "BBB does not know this session: it ended, or the token is not one of its sessions; rejoin the meeting"
    )]
    Unknown,
    #[error("you are no longer in this BBB meeting; rejoin it to use interpretation")]
    NotInMeeting,
    #[error("BBB sessions cannot be checked: this Tolk node has no BBB server configured (TOLK_BBB_URL)")]
    NoServer,
    #[error("cannot ask the BBB server who this is: {0}")]
    Unreachable(String),
    #[error("the BBB server's answer about this session is not understood: {0}")]
    Answer(String),
}

/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(10);
/// Answers kept at most (then the oldest half goes).
const KEPT_MAX: usize = 20_000;
/// The longest session token or cookie looked at (BBB's are a few dozen characters).
const MAX_SECRET: usize = 512;

/// Checks session tokens with bbb-web, keeping answers briefly.
pub(crate) struct SessionCheck {
    url: Url,
    http: reqwest::Client,
    kept: Mutex<HashMap<[u8; 32], (Participant, Instant)>>,
}

impl std::fmt::Debug for SessionCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCheck").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl SessionCheck {
    /// Checks against `url` (bbb-web's `connection/checkGraphqlAuthorization`).
    pub(crate) fn new(url: Url) -> Result<Self, super::BbbError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(super::tls_config()?.as_ref().clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            // BBB 3.0's first releases answered this endpoint only to its GraphQL engine, told
            // apart by the user agent (ConnectionController: `startsWith('hasura-graphql-engine')`).
            .user_agent(concat!("hasura-graphql-engine (tolk/", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| super::BbbError::Client(e.to_string()))?;
        Ok(Self { url, http, kept: Mutex::new(HashMap::new()) })
    }

    /// Who holds `token`, with the BBB session cookie (`JSESSIONID=…`) the browser sent, if any.
    pub(crate) async fn participant(
        &self,
        token: &str,
        cookie: Option<&str>,
    ) -> Result<Participant, SessionError> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_SECRET || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(if token.is_empty() { SessionError::NoToken } else { SessionError::Unknown });
        }
        let cookie = cookie.filter(|c| c.len() <= MAX_SECRET && c.bytes().all(|b| b.is_ascii_graphic()));
        let key = key(token, cookie);
        let now = Instant::now();
        if let Some((who, at)) = self.kept.lock().ok().and_then(|k| k.get(&key).cloned())
            && now.duration_since(at) < KEEP
        {
            return Ok(who);
        }
        let mut request = self
            .http
            .get(self.url.clone())
            .header("x-session-token", token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let answer =
            request.send().await.map_err(|e| SessionError::Unreachable(e.without_url().to_string()))?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let body =
            answer.bytes().await.map_err(|e| SessionError::Unreachable(e.without_url().to_string()))?;
        let who = read_answer(status, &headers, &body)?;
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= KEPT_MAX {
                kept.retain(|_, (_, at)| now.duration_since(*at) < KEEP);
                if kept.len() >= KEPT_MAX {
                    kept.clear();
                }
            }
            kept.insert(key, (who.clone(), now));
        }
        Ok(who)
    }
}

/// The key an answer is kept under: neither secret is kept as it is.
fn key(token: &str, cookie: Option<&str>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(token.as_bytes());
    hash.update([0]);
    hash.update(cookie.unwrap_or("").as_bytes());
    hash.finalize().into()
}

/// The `JSESSIONID=…` pair of a browser's `Cookie` header: the one cookie bbb-web needs, and the
/// only one passed on.
pub(crate) fn bbb_session_cookie(header: &str) -> Option<String> {
    header
        .split(';')
        .map(str::trim)
        .find(|pair| pair.starts_with("JSESSIONID=") && pair.len() > "JSESSIONID=".len())
        .map(str::to_owned)
}

/// bbb-web's answer, read. Public for the fuzz target.
pub(crate) fn read_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Participant, SessionError> {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(SessionError::Unknown);
    }
    if !status.is_success() {
        return Err(SessionError::Answer(format!("HTTP {status}")));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    let meeting = header("Meeting-Id");
    let user = header("User-Id");
    if meeting.is_empty() || user.is_empty() {
        return Err(SessionError::Answer("no Meeting-Id or User-Id header".into()));
    }
    // The JSON body (BBB 3.0+) says whether the user is still in the meeting; older answers are
    // plain text, where a 200 is all there is.
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        if json.get("response").and_then(|r| r.as_str()) == Some("unauthorized") {
            return Err(SessionError::Unknown);
        }
        if json.get("X-Currently-Online").and_then(|o| o.as_str()) == Some("false") {
            return Err(SessionError::NotInMeeting);
        }
    }
    let name = url::form_urlencoded::parse(format!("n={}", header("User-Name")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Ok(Participant {
        meeting: meeting.to_owned(),
        external_meeting: header("Meeting-External-Id").to_owned(),
        user: user.to_owned(),
        name: name.chars().take(200).collect(),
        moderator: header("User-Is-Moderator").eq_ignore_ascii_case("true"),
    })
}

/// bbb-web's check endpoint for a BBB API base (`…/bigbluebutton/`).
pub(crate) fn check_url(api_base: &Url) -> Result<Url, super::BbbError> {
    api_base
        .join("connection/checkGraphqlAuthorization")
        .map_err(|e| super::BbbError::Config(format!("bad BBB URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    const ANA: [(&str, &str); 5] = [
        ("Meeting-Id", "183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1733480000000"),
        ("Meeting-External-Id", "random-123"),
        ("User-Id", "w_ana"),
        ("User-Name", "Ana+Mar%C3%ADa"),
        ("User-Is-Moderator", "true"),
    ];

    #[test]
    fn an_answer_names_the_meeting_the_user_and_the_role() {
        let body = br#"{"response": "authorized", "X-Currently-Online": "true", "X-Moderator": "true"}"#;
        let who = read_answer(StatusCode::OK, &headers(&ANA), body).unwrap();
        assert_eq!(who.meeting, "183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1733480000000");
        assert_eq!(who.external_meeting, "random-123");
        assert_eq!(who.user, "w_ana");
        assert_eq!(who.name, "Ana María");
        assert!(who.moderator);
        let mut viewer = ANA;
        viewer[4] = ("User-Is-Moderator", "false");
        assert!(!read_answer(StatusCode::OK, &headers(&viewer), b"authorized").unwrap().moderator);
    }

    #[test]
    fn unknown_gone_and_garbled_sessions_are_refused() {
        assert_eq!(read_answer(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""), Err(SessionError::Unknown));
        let gone = br#"{"response": "authorized", "X-Currently-Online": "false"}"#;
        assert_eq!(read_answer(StatusCode::OK, &headers(&ANA), gone), Err(SessionError::NotInMeeting));
        assert!(matches!(
            read_answer(StatusCode::OK, &HeaderMap::new(), b"{}"),
            Err(SessionError::Answer(_))
        ));
        assert!(matches!(
            read_answer(StatusCode::BAD_GATEWAY, &headers(&ANA), b"<html>"),
            Err(SessionError::Answer(_))
        ));
    }

    #[test]
    fn only_the_bbb_session_cookie_is_passed_on() {
        assert_eq!(
            bbb_session_cookie("_ga=1; JSESSIONID=ABC123; tolk=x").as_deref(),
            Some("JSESSIONID=ABC123")
        );
        assert_eq!(bbb_session_cookie("JSESSIONID=; other=1"), None);
        assert_eq!(bbb_session_cookie("_ga=1"), None);
    }

    #[test]
    fn the_check_hangs_off_the_api_base() {
        let base = Url::parse("https://bbb.example.org/bigbluebutton/").unwrap();
        assert_eq!(
            check_url(&base).unwrap().as_str(),
            "https://bbb.example.org/bigbluebutton/connection/checkGraphqlAuthorization"
        );
    }
}
