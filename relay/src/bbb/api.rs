//! The BigBlueButton API client: signed calls (`isMeetingRunning`, `getMeetingInfo`, `getMeetings`,
//! `join`), XML responses read into plain values, and the ICE servers of a joined session
//! (`/api/stuns`).

use std::time::Duration;

use reqwest::header::{HeaderMap, SET_COOKIE};
use url::Url;

use super::{BbbConfig, BbbError};

/// A joined bot: what the websocket needs.
#[derive(Clone)]
pub struct BotSession {
    pub session_token: String,
    /// `JSESSIONID=…`, which bbb-webrtc-sfu's proxy requires beside the session token.
    pub cookie: Option<String>,
    pub user_id: Option<String>,
}

impl std::fmt::Debug for BotSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSession").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

/// What `getMeetingInfo` says of a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingInfo {
    pub name: String,
    pub running: bool,
    pub participants: u32,
    /// BBB's internal id (`internalMeetingID`): the name of the meeting's LiveKit room.
    pub internal_id: String,
}

/// A meeting as `getMeetings` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedMeeting {
    /// The id it was created with (`meetingID`).
    pub id: String,
    /// BBB's internal id (`internalMeetingID`).
    pub internal_id: String,
    pub name: String,
    pub running: bool,
    pub participants: u32,
    /// Its `meta_…` create parameters, by name without `meta_`, names in lower case.
    pub metadata: Vec<(String, String)>,
}

impl ListedMeeting {
    /// The value of metadata `name` (lower case, without `meta_`), if set.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.metadata.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A parsed `<response>`: its fields by element name.
#[derive(Debug)]
pub(crate) struct Response {
    fields: Vec<(String, String)>,
}

impl Response {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub struct BbbApi {
    config: BbbConfig,
    http: reqwest::Client,
}

impl BbbApi {
    pub fn new(config: BbbConfig) -> Result<Self, BbbError> {
        let http = super::http_client(Duration::from_secs(15))?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &BbbConfig {
        &self.config
    }

    /// The signed URL of an API call.
    pub fn call_url(&self, call: &str, params: &[(&str, &str)]) -> Result<Url, BbbError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            query.append_pair(name, value);
        }
        let query = query.finish();
        let checksum = self.config.checksum.sign(call, &query, &self.config.secret);
        let mut url = self.endpoint(&format!("api/{call}"))?;
        url.set_query(Some(&if query.is_empty() {
            format!("checksum={checksum}")
        } else {
            format!("{query}&checksum={checksum}")
        }));
        Ok(url)
    }

    fn endpoint(&self, path: &str) -> Result<Url, BbbError> {
        self.config.url.join(path).map_err(|e| BbbError::Config(format!("bad BBB URL: {e}")))
    }

    async fn call(&self, call: &str, params: &[(&str, &str)]) -> Result<(Response, HeaderMap), BbbError> {
        let (response, headers, _) = self.call_with_body(call, params).await?;
        Ok((response, headers))
    }

    /// A signed call answered SUCCESS: its top-level fields, headers and the whole body (for
    /// answers with nested elements).
    async fn call_with_body(
        &self,
        call: &str,
        params: &[(&str, &str)],
    ) -> Result<(Response, HeaderMap, String), BbbError> {
        let url = self.call_url(call, params)?;
        let answer = self.http.get(url).send().await.map_err(|e| self.unreachable(call, e))?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = answer.text().await.map_err(|e| self.unreachable(call, e))?;
        if !status.is_success() {
            return Err(BbbError::Http { call: call.into(), status: status.as_u16(), body: snippet(&body) });
        }
        let response = parse(call, &body)?;
        match response.field("returncode") {
            Some("SUCCESS") => Ok((response, headers, body)),
            Some(_) => Err(BbbError::Failed {
                call: call.into(),
                key: response.field("messageKey").unwrap_or("").to_owned(),
                message: response.field("message").unwrap_or("").to_owned(),
                algorithm: self.config.checksum,
            }),
            None => Err(BbbError::Xml { call: call.into(), detail: "no <returncode>".into() }),
        }
    }

    /// A transport error, without the URL reqwest puts in its text: a signed API URL carries
    /// its checksum, and this sentence reaches organisers.
    fn unreachable(&self, call: &str, e: reqwest::Error) -> BbbError {
        use std::error::Error;
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        BbbError::Unreachable { call: call.into(), url: self.config.url.to_string(), detail }
    }

    pub async fn is_meeting_running(&self, meeting: &str) -> Result<bool, BbbError> {
        let (response, _) = self.call("isMeetingRunning", &[("meetingID", meeting)]).await?;
        Ok(response.field("running") == Some("true"))
    }

    /// The meeting's name, state and participants; `Ok(None)` if BBB does not know it.
    pub async fn meeting_info(&self, meeting: &str) -> Result<Option<MeetingInfo>, BbbError> {
        match self.call("getMeetingInfo", &[("meetingID", meeting)]).await {
            Ok((r, _)) => Ok(Some(meeting_info(&r))),
            Err(BbbError::Failed { key, .. }) if key == "notFound" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every meeting of the server, with its metadata.
    pub async fn meetings(&self) -> Result<Vec<ListedMeeting>, BbbError> {
        let (_, _, body) = self.call_with_body("getMeetings", &[]).await?;
        listed_meetings(&body)
    }

    /// Join `meeting` as a listen-only bot viewer; keeps the session token and the cookie.
    pub async fn join_bot(&self, meeting: &str) -> Result<BotSession, BbbError> {
        let params = [
            ("fullName", self.config.bot_name.as_str()),
            ("meetingID", meeting),
            ("role", "VIEWER"),
            ("redirect", "false"),
            ("bot", "true"),
            ("excludeFromDashboard", "true"),
            ("userdata-bbb_listen_only_mode", "true"),
            ("userdata-bbb_force_listen_only", "true"),
            ("userdata-bbb_skip_check_audio", "true"),
            ("userdata-bbb_auto_join_audio", "true"),
        ];
        let (response, headers) = self.call("join", &params).await?;
        bot_session(&response, &headers)
    }

    /// The STUN/TURN URLs BBB hands its clients.
    pub async fn stuns(&self, bot: &BotSession) -> Result<Vec<String>, BbbError> {
        let mut url = self.endpoint("api/stuns")?;
        url.query_pairs_mut().append_pair("sessionToken", &bot.session_token);
        let mut request = self.http.get(url);
        if let Some(cookie) = &bot.cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let answer = request.send().await.map_err(|e| self.unreachable("stuns", e))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| self.unreachable("stuns", e))?;
        if !status.is_success() {
            return Err(BbbError::Http {
                call: "stuns".into(),
                status: status.as_u16(),
                body: snippet(&body),
            });
        }
        stun_urls(&body)
    }

    /// `ws(s)://<host>/bbb-webrtc-sfu?sessionToken=…` of this BBB server.
    pub fn sfu_url(&self, bot: &BotSession) -> Result<Url, BbbError> {
        let mut url = self.config.url.join("/bbb-webrtc-sfu").map_err(|e| BbbError::Config(e.to_string()))?;
        let scheme = if self.config.url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| BbbError::Config("cannot make a websocket URL".into()))?;
        url.query_pairs_mut().append_pair("sessionToken", &bot.session_token);
        Ok(url)
    }
}

/// What `getMeetingInfo` says, from its answer.
pub(crate) fn meeting_info(r: &Response) -> MeetingInfo {
    MeetingInfo {
        name: r.field("meetingName").unwrap_or("").to_owned(),
        running: r.field("running") == Some("true"),
        participants: r.field("participantCount").and_then(|p| p.parse().ok()).unwrap_or(0),
        internal_id: r.field("internalMeetingID").unwrap_or("").to_owned(),
    }
}

/// The bot's session, from `join`'s answer and its `Set-Cookie` headers.
pub(crate) fn bot_session(response: &Response, headers: &HeaderMap) -> Result<BotSession, BbbError> {
    let session_token = response
        .field("session_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BbbError::Xml { call: "join".into(), detail: "no <session_token>".into() })?
        .to_owned();
    let cookie = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.trim_start().starts_with("JSESSIONID="))
        .map(|pair| pair.trim().to_owned());
    Ok(BotSession { session_token, cookie, user_id: response.field("user_id").map(str::to_owned) })
}

/// The STUN and TURN URLs of `/api/stuns`' JSON answer.
pub(crate) fn stun_urls(body: &str) -> Result<Vec<String>, BbbError> {
    #[derive(serde::Deserialize)]
    struct Server {
        url: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stuns {
        #[serde(default)]
        stun_servers: Vec<Server>,
        #[serde(default)]
        turn_servers: Vec<Server>,
    }
    let stuns: Stuns = serde_json::from_str(body)
        .map_err(|e| BbbError::Xml { call: "stuns".into(), detail: format!("not the expected JSON: {e}") })?;
    Ok(stuns.stun_servers.into_iter().chain(stuns.turn_servers).map(|s| s.url).collect())
}

/// The `<meetings>` of a `getMeetings` answer.
pub(crate) fn listed_meetings(body: &str) -> Result<Vec<ListedMeeting>, BbbError> {
    let doc = roxmltree::Document::parse(body)
        .map_err(|e| BbbError::Xml { call: "getMeetings".into(), detail: format!("not XML ({e})") })?;
    let text = |node: roxmltree::Node<'_, '_>| node.text().unwrap_or("").trim().to_owned();
    let Some(meetings) = doc.root_element().children().find(|n| n.has_tag_name("meetings")) else {
        return Ok(Vec::new());
    };
    let listed = meetings
        .children()
        .filter(|n| n.has_tag_name("meeting"))
        .map(|meeting| {
            let mut listed = ListedMeeting::default();
            for field in meeting.children().filter(|n| n.is_element()) {
                match field.tag_name().name() {
                    "meetingID" => listed.id = text(field),
                    "internalMeetingID" => listed.internal_id = text(field),
                    "meetingName" => listed.name = text(field),
                    "running" => listed.running = text(field) == "true",
                    "participantCount" => listed.participants = text(field).parse().unwrap_or(0),
                    "metadata" => {
                        listed.metadata = field
                            .children()
                            .filter(|n| n.is_element())
                            .map(|m| (m.tag_name().name().to_ascii_lowercase(), text(m)))
                            .collect();
                    }
                    _ => {}
                }
            }
            listed
        })
        .filter(|m| !m.id.is_empty())
        .collect();
    Ok(listed)
}

/// Read `<response>…</response>` into its top-level fields.
pub(crate) fn parse(call: &str, body: &str) -> Result<Response, BbbError> {
    let doc = roxmltree::Document::parse(body).map_err(|e| BbbError::Xml {
        call: call.into(),
        detail: format!("not XML ({e}): {}", snippet(body)),
    })?;
    let root = doc.root_element();
    if !root.has_tag_name("response") {
        return Err(BbbError::Xml {
            call: call.into(),
            detail: format!("<{}> where <response> was expected", root.tag_name().name()),
        });
    }
    let fields = root
        .children()
        .filter(|n| n.is_element())
        .map(|n| (n.tag_name().name().to_owned(), n.text().unwrap_or("").trim().to_owned()))
        .collect();
    Ok(Response { fields })
}

fn snippet(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bbb::checksum::Algorithm;

    fn api(url: &str, algorithm: Algorithm) -> BbbApi {
        let config = BbbConfig { checksum: algorithm, ..BbbConfig::new(url, "secret").unwrap() };
        BbbApi::new(config).unwrap()
    }

    #[test]
    fn call_urls_are_signed_over_the_exact_query() {
        for algorithm in Algorithm::ALL {
            let api = api("https://bbb.example.org/bigbluebutton/", algorithm);
            let url = api.call_url("join", &[("fullName", "Inter pretation"), ("meetingID", "a&b")]).unwrap();
            assert_eq!(url.path(), "/bigbluebutton/api/join");
            let query = url.query().unwrap();
            let (signed, checksum) = query.rsplit_once("&checksum=").unwrap();
            assert_eq!(signed, "fullName=Inter+pretation&meetingID=a%26b");
            assert_eq!(checksum, algorithm.sign("join", signed, "secret"));
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_the_signed_url() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let api = api(&format!("http://127.0.0.1:{port}/bigbluebutton/"), Algorithm::Sha256);
        let e = api.is_meeting_running("secret-meeting-id").await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BbbError::Unreachable { .. }), "{e:?}");
        assert!(text.contains("isMeetingRunning"), "names the call: {text}");
        for leak in ["checksum", "secret-meeting-id", "meetingID", "api/isMeetingRunning?"] {
            assert!(!text.contains(leak), "'{leak}' in an organiser's error: {text}");
        }
    }

    #[test]
    fn websocket_url_follows_the_scheme() {
        let bot = BotSession { session_token: "t0k".into(), cookie: None, user_id: None };
        let https = api("https://bbb.example.org/bigbluebutton/", Algorithm::Sha256);
        assert_eq!(
            https.sfu_url(&bot).unwrap().as_str(),
            "wss://bbb.example.org/bbb-webrtc-sfu?sessionToken=t0k"
        );
        let http = api("http://127.0.0.1:8000/bigbluebutton/", Algorithm::Sha256);
        assert_eq!(
            http.sfu_url(&bot).unwrap().as_str(),
            "ws://127.0.0.1:8000/bbb-webrtc-sfu?sessionToken=t0k"
        );
    }

    #[test]
    fn responses_parse_and_garbage_is_a_clear_error() {
        let ok = parse(
            "isMeetingRunning",
            "<response><returncode>SUCCESS</returncode><running>true</running></response>",
        )
        .unwrap();
        assert_eq!(ok.field("running"), Some("true"));
        let e = parse("join", "<html>502 Bad Gateway</html>").unwrap_err();
        assert!(e.to_string().contains("<html>"), "{e}");
        let e = parse("join", "not xml at all").unwrap_err();
        assert!(e.to_string().contains("not XML"), "{e}");
    }

    #[test]
    fn listed_meetings_carry_their_ids_and_metadata() {
        let body = "<response><returncode>SUCCESS</returncode><meetings><meeting>\
            <meetingName>Plenary</meetingName><meetingID>plenary-1</meetingID>\
            <internalMeetingID>abc-1733</internalMeetingID><running>true</running>\
            <participantCount>12</participantCount>\
            <metadata><tolk-languages>fr,de</tolk-languages><bbb-origin>x</bbb-origin></metadata>\
            </meeting><meeting><meetingID>other</meetingID><running>false</running></meeting></meetings></response>";
        let listed = listed_meetings(body).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].internal_id, "abc-1733");
        assert!(listed[0].running && !listed[1].running);
        assert_eq!(listed[0].participants, 12);
        assert_eq!(listed[0].meta("tolk-languages"), Some("fr,de"));
        assert_eq!(listed[1].meta("tolk-languages"), None);
        let none = "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey></response>";
        assert!(listed_meetings(none).unwrap().is_empty());
    }

    #[test]
    fn a_refused_checksum_names_the_settings_to_check() {
        let e = BbbError::Failed {
            call: "join".into(),
            key: "checksumError".into(),
            message: "Checksums do not match".into(),
            algorithm: Algorithm::Sha256,
        };
        let text = e.to_string();
        assert!(text.contains("TOLK_BBB_SECRET") && text.contains("sha256"), "{text}");
    }
}
