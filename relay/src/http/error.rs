//! API errors as `application/problem+json` (RFC 9457), with a sentence a person understands in
//! `detail`. Module errors are mapped to HTTP status here, at the edge.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::Problem;
use crate::ids::IdError;
use crate::net::NetError;
use crate::recording::RecordingError;
use crate::store::StoreError;

/// What a listener refused while too many are connecting is told to wait, in seconds.
const CONNECTING_RETRY_SECS: u32 = 4;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), retry_after: None }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::to_string(&Problem {
            r#type: "about:blank".into(),
            title: title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(jittered(secs)));
        }
        response
    }
}

/// `secs` plus up to a quarter more, at random: clients refused together come back spread out.
fn jittered(secs: u32) -> u32 {
    secs + rand::random_range(0..=secs / 4)
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        match e {
            IdError::Event(_) | IdError::Session(_) | IdError::Recording(_) => Self::not_found(e.to_string()),
            IdError::Language(_) => Self::not_found(e.to_string()),
            IdError::MeetingPattern(_) | IdError::IdempotencyKey(_) | IdError::Node(_) => {
                Self::bad_request(e.to_string())
            }
        }
    }
}

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        let status = match &e {
            NetError::BadSdp(_) | NetError::Unsupported(_) => StatusCode::BAD_REQUEST,
            NetError::UnknownLanguage(_) | NetError::UnknownSession(_) => StatusCode::NOT_FOUND,
            NetError::ShardGone
            | NetError::Bind { .. }
            | NetError::Rtc(_)
            | NetError::Busy
            | NetError::Dropped => StatusCode::SERVICE_UNAVAILABLE,
        };
        if matches!(e, NetError::Busy) {
            // A join storm: the shard's queue is full; the client comes back in a second or two.
            return Self { status, detail: e.to_string(), retry_after: Some(1) };
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "media error");
        }
        Self::new(status, e.to_string())
    }
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        let status = match &e {
            RecordingError::NoChannel { .. } | RecordingError::NoChannels => StatusCode::UNPROCESSABLE_ENTITY,
            RecordingError::NotOpen | RecordingError::StillRecording(_) => StatusCode::CONFLICT,
            RecordingError::NoRecording(_)
            | RecordingError::Missing(_)
            | RecordingError::NothingToDownload => StatusCode::NOT_FOUND,
            RecordingError::DiskFull { .. } | RecordingError::Elsewhere { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RecordingError::Writer(_) | RecordingError::Directory { .. } => {
                tracing::error!(error = %e, "recording error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            RecordingError::Store(_) | RecordingError::Net(_) => {
                return match e {
                    RecordingError::Store(e) => e.into(),
                    RecordingError::Net(e) => e.into(),
                    _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "recording error"),
                };
            }
        };
        Self::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the relay could not read or write its database; the operator has the details in the log",
                )
            }
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::MeetingNotAllowed(_) => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            AuthError::BbbSession(ref session) => {
                use crate::bbb::session::SessionError;
                let status = match session {
                    SessionError::NoToken | SessionError::Unknown | SessionError::NotInMeeting => {
                        StatusCode::UNAUTHORIZED
                    }
                    SessionError::NoServer => StatusCode::NOT_FOUND,
                    SessionError::Unreachable(_) | SessionError::Answer(_) => StatusCode::BAD_GATEWAY,
                };
                if status == StatusCode::BAD_GATEWAY {
                    tracing::warn!(error = %e, "BBB session check failed");
                }
                Self::new(status, e.to_string())
            }
            AuthError::TooManyFailedChecks(secs) => {
                Self { status: StatusCode::TOO_MANY_REQUESTS, detail: e.to_string(), retry_after: Some(secs) }
            }
            AuthError::Store(e) => e.into(),
            AuthError::DataDir { .. } => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            _ => Self::unauthorized(e.to_string()),
        }
    }
}

impl From<crate::events::EventError> for ApiError {
    fn from(e: crate::events::EventError) -> Self {
        use crate::events::EventError;
        match e {
            EventError::NoEvent(_) | EventError::NoChannel { .. } => Self::not_found(e.to_string()),
            EventError::LanguagesLocked | EventError::Capacity(_) | EventError::TooManyEvents { .. } => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            EventError::KeyReused => Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            EventError::Floor(e) => e.into(),
            EventError::Store(e) => e.into(),
            EventError::Net(e) => e.into(),
            _ => Self::bad_request(e.to_string()),
        }
    }
}

impl From<crate::admission::AdmissionError> for ApiError {
    fn from(e: crate::admission::AdmissionError) -> Self {
        match e.retry_after() {
            Some(secs) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: e.to_string(),
                retry_after: Some(secs),
            },
            None => Self::new(StatusCode::FORBIDDEN, e.to_string()),
        }
    }
}

impl From<crate::floors::FloorError> for ApiError {
    fn from(e: crate::floors::FloorError) -> Self {
        use crate::floors::FloorError;
        match e {
            FloorError::Bbb(_) => Self::bad_request(e.to_string()),
            FloorError::Net(e) => e.into(),
            FloorError::Peer(_) => Self::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

impl From<crate::booths::desk::DeskError> for ApiError {
    fn from(e: crate::booths::desk::DeskError) -> Self {
        use crate::booths::desk::DeskError;
        let status = match e {
            DeskError::NotYourLanguage { .. } => StatusCode::FORBIDDEN,
            DeskError::NobodyToAsk | DeskError::NotOnAir | DeskError::NoRequest => StatusCode::CONFLICT,
            DeskError::ChatLength | DeskError::BadInput(_) => StatusCode::BAD_REQUEST,
            DeskError::NoChannel { .. } => StatusCode::NOT_FOUND,
        };
        Self::new(status, e.to_string())
    }
}

impl From<crate::booths::BoothError> for ApiError {
    fn from(e: crate::booths::BoothError) -> Self {
        use crate::booths::BoothError;
        match e {
            BoothError::Desk(e) => e.into(),
            BoothError::NoBoothLink { .. } => Self::not_found(e.to_string()),
            BoothError::Store(e) => e.into(),
            BoothError::Net(e) => e.into(),
            _ => Self::bad_request(e.to_string()),
        }
    }
}

impl From<crate::app::meetings::MeetingError> for ApiError {
    fn from(e: crate::app::meetings::MeetingError) -> Self {
        use crate::app::meetings::MeetingError;
        let status = match e {
            MeetingError::NotModerator | MeetingError::NotInterpreter => StatusCode::FORBIDDEN,
            MeetingError::NoInterpretation | MeetingError::NotNamed(_) => StatusCode::NOT_FOUND,
            MeetingError::AlreadyRunning => StatusCode::CONFLICT,
            MeetingError::NoLanguages | MeetingError::BadUserId => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl From<crate::app::AppError> for ApiError {
    fn from(e: crate::app::AppError) -> Self {
        use crate::app::AppError;
        match e {
            AppError::Auth(e) => e.into(),
            AppError::Event(e) => e.into(),
            AppError::Admission(e) => e.into(),
            AppError::Booth(e) => e.into(),
            AppError::Floor(e) => e.into(),
            AppError::Store(e) => e.into(),
            AppError::Net(e) => e.into(),
            AppError::Id(e) => e.into(),
            AppError::Meeting(e) => e.into(),
            AppError::Recording(e) => e.into(),
            AppError::NoListeningSession(_) => Self::not_found(e.to_string()),
            AppError::Connecting(_) => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                detail: e.to_string(),
                retry_after: Some(CONNECTING_RETRY_SECS),
            },
            AppError::TooManyJoins(secs)
            | AppError::TooManySwitches(secs)
            | AppError::TooManyBoothActions(secs) => {
                Self { status: StatusCode::TOO_MANY_REQUESTS, detail: e.to_string(), retry_after: Some(secs) }
            }
            AppError::DataDir { .. } => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            AppError::Cluster(e) => e.into(),
            AppError::NotCascade(_) | AppError::Layout(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

impl From<crate::cluster::ClusterError> for ApiError {
    fn from(e: crate::cluster::ClusterError) -> Self {
        use crate::cluster::ClusterError;
        let (status, retry_after) = match &e {
            ClusterError::Redis(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            ClusterError::Full => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
            ClusterError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        if status != StatusCode::SERVICE_UNAVAILABLE || matches!(e, ClusterError::Redis(_)) {
            tracing::warn!(error = %e, "cluster error");
        }
        Self { status, detail: e.to_string(), retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_shard_queue_is_a_503_with_retry_after() {
        let response = ApiError::from(NetError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let bad = ApiError::from(NetError::BadSdp("it has 9 media sections".into())).into_response();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }
}
