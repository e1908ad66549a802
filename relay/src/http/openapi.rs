//! The OpenAPI 3.1 document of the public HTTP API, served at `GET /api/v1/openapi.json`. Its
//! operations come from `#[utoipa::path]` on the handlers and its schemas from the API types
//! (`utoipa::ToSchema`); the router is built from the same list ([`super::routes`]), so a route
//! cannot exist without its entry. Here: the parts no handler carries (title, security schemes,
//! problem+json on every error answer) and the path parameters shared by many operations.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, PathItem, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::api::{BoothAction, Problem};
use crate::ids::{EventId, InterpreterId, Language, SessionId};

/// The media type of every error answer.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Security schemes: which bearer token an operation takes.
const SCHEMES: [(&str, &str); 4] = [
    ("organiser", "The admin token (TOLK_ADMIN_TOKEN) or an organiser's token (`tolk organiser add`)."),
    ("booth", "An interpreter's booth token, from the booth link the organiser issued."),
    ("floor", "The floor token of an event, shown once in the answer that created it."),
    ("cluster", "The secret the nodes of a cluster share (TOLK_CLUSTER_SECRET): node-to-node calls only."),
];

/// The document without its operations: title, schemas no operation names, security schemes.
fn base() -> OpenApi {
    let mut doc = OpenApi::default();
    doc.info.title = "Tolk".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "A simultaneous-interpretation media relay: events and booth links for organisers, WHIP \
         for the floor and the interpreters, WHEP for listeners. Every error answer is \
         application/problem+json (RFC 9457) with a sentence in `detail`."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, description) in SCHEMES {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build();
        components.add_security_scheme(name, SecurityScheme::Http(scheme));
    }
    let session = ApiKeyValue::with_description(
        super::plugin::SESSION_TOKEN,
        "A BBB participant's session token (the plugin's `getSessionToken()`), with BBB's session \
         cookie: bbb-web says who it is.",
    );
    components.add_security_scheme("bbb_session", SecurityScheme::ApiKey(ApiKey::Header(session)));
    // Path parameters refer to these without registering them; the booth socket's messages.
    for (name, schema) in [
        (Problem::name(), Problem::schema()),
        (EventId::name(), EventId::schema()),
        (Language::name(), Language::schema()),
        (SessionId::name(), SessionId::schema()),
        (InterpreterId::name(), InterpreterId::schema()),
        (BoothAction::name(), BoothAction::schema()),
    ] {
        components.schemas.insert(name.into(), schema);
    }
    doc
}

/// The document of these routes: [`base`], their operations, and problem+json wherever an
/// operation answers an error (and as every operation's `default` answer).
pub(super) fn document(
    routes: utoipa_axum::router::OpenApiRouter<std::sync::Arc<crate::app::App>>,
) -> OpenApi {
    let mut doc = base().merge_from(routes.into_openapi());
    let problem = || Content::new(Some(Ref::from_schema_name(Problem::name())));
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response) {
                    response.content.insert(PROBLEM_JSON.into(), problem());
                }
            }
            let other = ResponseBuilder::new()
                .description(
                    "Any other refusal or failure (e.g. 429 or 503 with Retry-After), as problem+json.",
                )
                .content(PROBLEM_JSON, problem())
                .build();
            responses.insert("default".into(), RefOr::T(other));
        }
    }
    doc
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// This document, as JSON (built once).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json")))]
pub(super) async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| document(super::routes()).to_json().unwrap_or_default());
    let mut response = json.as_str().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{id}`: an event the caller manages.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // only its parameters are read
pub(super) struct EventPath {
    /// The event's id.
    id: EventId,
}

/// `{session}`: a media session, by the URL its `Location` gave.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct SessionPath {
    /// The session's id: 32 hex digits.
    session: SessionId,
}

/// A string schema with a description, a pattern and an example.
fn string(description: &str, pattern: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

/// `PartialSchema` and `ToSchema` for an id that travels as a string.
macro_rules! string_id {
    ($id:ty, $description:literal, $pattern:literal, $example:literal) => {
        impl PartialSchema for $id {
            fn schema() -> RefOr<Schema> {
                string($description, $pattern, $example)
            }
        }
        impl ToSchema for $id {}
    };
}

string_id!(EventId, "An event id: 1 to 64 letters, digits, '-' or '_'.", "^[A-Za-z0-9_-]{1,64}$", "demo");
string_id!(
    Language,
    "A BCP 47 language tag such as 'fr', 'pt-BR' or 'zh-Hant'.",
    "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
    "fr"
);
string_id!(
    SessionId,
    "A media session id: 32 hex digits.",
    "^[0-9a-fA-F]{32}$",
    "0123456789abcdef0123456789abcdef"
);

impl PartialSchema for InterpreterId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Integer).description(Some("A booth link's id.")).into()
    }
}
impl ToSchema for InterpreterId {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::HeaderValue;

    use super::*;

    /// The paths a router serves, read from its `Debug` form (axum prints its route table as
    /// `RouteId(n): "/path"`): the router keeps no other list. Without the fallback's own route.
    fn routed_paths(router: &axum::Router<std::sync::Arc<crate::app::App>>) -> BTreeSet<String> {
        let text = format!("{router:?}");
        text.split("RouteId(")
            .skip(1)
            .filter_map(|part| part.split_once("): \"")?.1.split_once('"').map(|(path, _)| path.to_owned()))
            .filter(|path| !path.contains("__private__axum_fallback"))
            .collect()
    }

    #[test]
    fn every_route_of_the_public_router_is_in_the_document() {
        let routed = routed_paths(&super::super::public(|| HeaderValue::from_static("default-src 'self'")));
        let doc = document(super::super::routes());
        let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        assert!(routed.len() >= 25, "the router's table was not read: {routed:?}");
        assert_eq!(routed, documented, "routes without an entry, or entries without a route");
    }

    #[test]
    fn every_error_answer_is_problem_json_and_every_scheme_is_declared() {
        let doc = document(super::super::routes());
        let json = serde_json::to_value(&doc).unwrap_or_default();
        let schemes = &json["components"]["securitySchemes"];
        for (_, item) in json["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    if status.starts_with(['4', '5']) || status == "default" {
                        let schema = &response["content"][PROBLEM_JSON]["schema"]["$ref"];
                        assert_eq!(schema, "#/components/schemas/Problem", "{method} {status}");
                    }
                }
                for requirement in operation["security"].as_array().into_iter().flatten() {
                    for (name, _) in requirement.as_object().into_iter().flatten() {
                        assert!(schemes.get(name).is_some(), "{method}: scheme {name} is not declared");
                    }
                }
            }
        }
        assert_eq!(schemes["organiser"]["scheme"], "bearer");
        // Every schema referred to is in the document.
        let text = json.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(json["components"]["schemas"].get(name).is_some(), "no schema {name}");
        }
        std::fs::write(
            std::env::temp_dir().join("tolk-openapi.json"),
            doc.to_pretty_json().unwrap_or_default(),
        )
        .ok();
    }
}
