//! Typed identifiers: events, languages, sessions and secrets.
//!
//! Ids that travel in URLs are validated when parsed, so a handler that holds an `EventId` or a
//! `Language` knows it is well formed. Random ids and tokens come from the OS random source.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Not an event id (1 to 64 letters, digits, '-' or '_'); holds the first 40 characters given.
    #[error("'{0}' is not a valid event id: use 1 to 64 letters, digits, '-' or '_'")]
    Event(String),
    /// Not a BCP 47 language tag; holds the first 40 characters given.
    #[error("'{0}' is not a language code: use a BCP 47 tag such as 'fr', 'pt-BR' or 'zh-Hant'")]
    Language(String),
    /// Not a session id (32 hex digits); holds the first 40 characters given.
    #[error("'{0}' is not a valid session id")]
    Session(String),
    /// Not a meeting pattern; holds the first 40 characters given.
    #[error(
        "'{0}' is not a meeting pattern: give a BBB meetingID (1 to 256 characters, no control \
         characters), or a prefix of meeting ids followed by '*' (such as 'coop-a-*')"
    )]
    MeetingPattern(String),
    /// Not an `Idempotency-Key` (1 to 255 visible ASCII characters); holds the first 40 given.
    #[error("'{0}' is not an Idempotency-Key: use 1 to 255 visible ASCII characters, such as a UUID")]
    IdempotencyKey(String),
    /// Not a recording id (16 hex digits); holds the first 40 characters given.
    #[error("'{0}' is not a recording id")]
    Recording(String),
    /// Not a node id; holds the first 40 characters given.
    #[error("'{0}' is not a node id: use 1 to 64 letters, digits, '-', '_' or '.'")]
    Node(String),
}

/// The `Idempotency-Key` of a request that creates something: a retry with the same key gets the
/// first answer instead of a second creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key as the header carries it: 1 to 255 visible ASCII characters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::IdempotencyKey(truncate(s)));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The BigBlueButton meetings an organiser may take as an event's floor: one meetingID exactly,
/// or, written with a trailing `*`, every meeting whose id starts with what comes before it
/// (`coop-a-*`). A bare `*` is refused: every meeting on the server is the admin's alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeetingPattern(String);

impl MeetingPattern {
    /// Check a pattern as the admin typed it (surrounding spaces are dropped).
    pub fn parse(pattern: &str) -> Result<Self, IdError> {
        let p = pattern.trim();
        let stem = p.strip_suffix('*').unwrap_or(p);
        let ok = !stem.is_empty()
            && p.chars().count() <= 256
            && !stem.contains('*')
            && !p.chars().any(char::is_control);
        if ok { Ok(Self(p.to_owned())) } else { Err(IdError::MeetingPattern(p.chars().take(40).collect())) }
    }

    /// Whether the pattern covers the meeting with id `meeting`.
    pub fn allows(&self, meeting: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => meeting.starts_with(prefix),
            None => meeting == self.0,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeetingPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `len` random bytes, as lower-case hex.
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// An event. Generated ids carry 128 random bits; the demo event is called `demo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// A fresh unguessable id (128 random bits).
    pub fn generate() -> Self {
        Self(random_hex(16))
    }

    /// An event id from a URL or a body: 1 to 64 letters, digits, '-' or '_'.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() || s.len() > 64 || !s.chars().all(is_id_char) {
            return Err(IdError::Event(truncate(s)));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as it appears in URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A language channel's language, as a BCP 47 tag (`en`, `fr`, `pt-BR`, `zh-Hant`).
/// Stored in canonical case: primary subtag lower case, region upper case, script title case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

impl Language {
    /// A language from a BCP 47 tag in any case (`PT-br`), put in canonical case (`pt-BR`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = || IdError::Language(truncate(s));
        let mut parts = s.split('-');
        let primary = parts.next().ok_or_else(err)?;
        if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(err());
        }
        let mut canonical = primary.to_ascii_lowercase();
        for part in parts {
            if part.is_empty() || part.len() > 8 || !part.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(err());
            }
            canonical.push('-');
            match part.len() {
                2 => canonical.push_str(&part.to_ascii_uppercase()),
                4 => {
                    let mut chars = part.chars();
                    if let Some(first) = chars.next() {
                        canonical.push(first.to_ascii_uppercase());
                    }
                    canonical.push_str(&chars.as_str().to_ascii_lowercase());
                }
                _ => canonical.push_str(&part.to_ascii_lowercase()),
            }
        }
        if canonical.len() > 35 {
            return Err(err());
        }
        Ok(Self(canonical))
    }

    /// The tag in canonical case (`pt-BR`), as in URLs and JSON.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A media session: one WHIP publisher or one WHEP listener. 128 random bits, so that the
/// session URL is its own capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// A fresh unguessable id (128 random bits, 32 hex digits).
    pub fn generate() -> Self {
        Self(random_hex(16))
    }

    /// A session id from a session URL: 32 hex digits, in any case.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() != 32 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(IdError::Session(truncate(s)));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The id in lower-case hex, as in session URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One recorded file (a channel of a part of an event's recording): 64 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordingId(String);

impl RecordingId {
    /// A fresh id (16 hex digits).
    pub fn generate() -> Self {
        Self(random_hex(8))
    }

    /// A recording id from a URL: 16 hex digits, in any case.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() != 16 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(IdError::Recording(truncate(s)));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The id in lower-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A node of a cluster: 1 to 64 letters, digits, `-`, `_` or `.` (the host name, or the
/// random id in the data directory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// A node id as configured or published; refused when it has other characters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok { Ok(Self(s.to_owned())) } else { Err(IdError::Node(truncate(s))) }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NodeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

/// An interpreter (a booth link). Issued by the store; appears in organiser URLs, which need the
/// organiser's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InterpreterId(pub i64);

impl fmt::Display for InterpreterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A bearer secret handed out once (floor token, admin token); only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// 256 random bits.
    pub fn generate() -> Self {
        Self(random_hex(32))
    }

    /// The token a caller presents, to hash and compare with the stored hash.
    pub fn from_secret(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The secret itself, to hand out once (never logged: `Debug` hides it).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the secret, hex: what the store keeps.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

macro_rules! string_id {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.0
            }
        }
    };
}
string_id!(EventId);
string_id!(Language);
string_id!(SessionId);
string_id!(RecordingId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_patterns_are_exact_ids_or_prefixes() {
        let exact = MeetingPattern::parse(" plenary-1 ").unwrap();
        assert!(exact.allows("plenary-1"));
        assert!(!exact.allows("plenary-10"), "an exact id is not a prefix");
        let prefix = MeetingPattern::parse("coop-a-*").unwrap();
        assert!(prefix.allows("coop-a-") && prefix.allows("coop-a-plenary"));
        assert!(!prefix.allows("coop-b-plenary") && !prefix.allows("coop-a"));
        for bad in ["", "*", "  *", "a*b", "a**", "a\nb*", &"x".repeat(257)] {
            assert!(MeetingPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn languages_are_canonical() {
        assert_eq!(Language::parse("FR").map(|l| l.0), Ok("fr".into()));
        assert_eq!(Language::parse("pt-br").map(|l| l.0), Ok("pt-BR".into()));
        assert_eq!(Language::parse("zh-hant").map(|l| l.0), Ok("zh-Hant".into()));
        assert!(Language::parse("").is_err());
        assert!(Language::parse("f").is_err());
        assert!(Language::parse("fr-").is_err());
        assert!(Language::parse("../x").is_err());
    }

    #[test]
    fn event_ids_are_unguessable_and_validated() {
        let id = EventId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert_ne!(id, EventId::generate());
        assert!(EventId::parse("demo").is_ok());
        assert!(EventId::parse("a/b").is_err());
        assert!(EventId::parse("").is_err());
    }

    #[test]
    fn tokens_hash_stably() {
        let t = Token::from_secret("abc");
        assert_eq!(t.hash(), Token::from_secret("abc").hash());
        assert_ne!(t.hash(), Token::generate().hash());
        assert_eq!(format!("{t:?}"), "Token(…)");
    }
}
