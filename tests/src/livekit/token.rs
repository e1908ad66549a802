//! LiveKit access tokens: HS256 JWTs signed with an API secret, `iss` the API key, `sub` the
//! participant's identity, `video` the grants. Minting (for the tests) and checking (for the
//! stand-in), with the refusal texts livekit-server answers (its `service/auth.go`, the
//! `golang-jwt` errors it wraps, and `EnsureJoinPermission`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How far a token's `exp`/`nbf` may be off (livekit-server's leeway).
const LEEWAY_SECS: u64 = 60;

/// The `video` grant of a LiveKit token (the fields the stand-in looks at).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrants {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_list: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_admin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_create: bool,
    /// Absent means allowed, as in livekit-server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// Absent means allowed, as in livekit-server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl VideoGrants {
    /// Join `room` with the defaults (publish and subscribe).
    pub fn join(room: &str) -> Self {
        Self { room: room.to_owned(), room_join: true, ..Self::default() }
    }

    pub fn can_publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }

    pub fn can_subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }
}

/// A token's claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrants>,
}

impl Claims {
    /// Claims for `identity` valid from now for `ttl`.
    pub fn new(api_key: &str, identity: &str, ttl: Duration, video: VideoGrants) -> Self {
        let now = now_secs();
        Self {
            iss: api_key.to_owned(),
            sub: identity.to_owned(),
            exp: Some(now + ttl.as_secs()),
            nbf: Some(now.saturating_sub(1)),
            name: identity.to_owned(),
            metadata: String::new(),
            video: Some(video),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn mac(secret: &str) -> Result<Hmac<Sha256>, TokenError> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| TokenError::Malformed)
}

/// Sign `claims` with `secret` (HS256).
pub fn sign(claims: &Claims, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing these plain fields cannot fail.
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{body}");
    // HMAC takes keys of any length.
    let signature = match mac(secret) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// Why a token was refused; `Display` is livekit-server's text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, or not HS256.
    Malformed,
    /// Its `iss` is no API key the server has.
    UnknownKey,
    /// Signed with another secret.
    BadSignature,
    Expired,
    NotYetValid,
    /// No `exp` claim.
    NoExpiry,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "invalid authorization token",
            Self::UnknownKey => "invalid API key",
            Self::BadSignature => "invalid authorization token: token signature is invalid: signature is invalid",
            Self::Expired => "invalid authorization token: token has invalid claims: token is expired",
            Self::NotYetValid => "invalid authorization token: token has invalid claims: token is not valid yet",
            Self::NoExpiry => {
                "invalid authorization token: token has invalid claims: token is missing required claim: exp claim is required"
            }
        })
    }
}

impl std::error::Error for TokenError {}

/// Check `token` against the server's one key pair: signature, issuer, validity.
pub fn verify(token: &str, api_key: &str, api_secret: &str) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode =
        |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| TokenError::Malformed);
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let claims: Claims = serde_json::from_slice(&decode(body)?).map_err(|_| TokenError::Malformed)?;
    if claims.iss != api_key {
        return Err(TokenError::UnknownKey);
    }
    let mut mac = mac(api_secret)?;
    mac.update(&token.as_bytes()[..token.rfind('.').unwrap_or(0)]);
    mac.verify_slice(&decode(signature)?).map_err(|_| TokenError::BadSignature)?;
    let now = now_secs();
    match claims.exp {
        None => return Err(TokenError::NoExpiry),
        Some(exp) if exp + LEEWAY_SECS < now => return Err(TokenError::Expired),
        Some(_) => {}
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_refusals_say_why() {
        let claims = Claims::new("key", "alice", Duration::from_secs(60), VideoGrants::join("r"));
        let token = sign(&claims, "secret");
        assert_eq!(verify(&token, "key", "secret").unwrap(), claims);
        assert_eq!(verify(&token, "key", "other").unwrap_err(), TokenError::BadSignature);
        assert_eq!(verify(&token, "other", "secret").unwrap_err(), TokenError::UnknownKey);
        assert_eq!(verify("a.b", "key", "secret").unwrap_err(), TokenError::Malformed);
        let mut old = claims.clone();
        old.exp = Some(now_secs() - 3600);
        let token = sign(&old, "secret");
        assert_eq!(verify(&token, "key", "secret").unwrap_err(), TokenError::Expired);
        assert!(TokenError::Expired.to_string().ends_with("token is expired"));
    }

    #[test]
    fn grants_use_livekit_names() {
        let grants = VideoGrants { can_publish: Some(false), hidden: true, ..VideoGrants::join("r") };
        let json = serde_json::to_value(&grants).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"room": "r", "roomJoin": true, "canPublish": false, "hidden": true})
        );
        assert!(grants.can_subscribe());
    }
}
