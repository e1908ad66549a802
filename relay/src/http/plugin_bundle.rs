//! The BBB plugin as BBB loads it: `GET /bbb-plugin/manifest.json` (the URL an operator adds to
//! `pluginManifests`) and the bundle's files, embedded in the binary at build time
//! (`relay/build.rs`). The manifest's entry point is made absolute with Tolk's public URL, so
//! bbb-web may fetch the manifest from anywhere; `?sdk=…` (BBB fills in
//! `%%HTML5_PLUGIN_SDK_VERSION%%`) picks the bundle built for that SDK line when there are two.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::http::ApiError;
use crate::http::pages::static_file;

mod built {
    include!(concat!(env!("OUT_DIR"), "/bbb_plugin.rs"));
}

/// The built file `name`, if the plugin was built into this binary.
fn built(name: &str) -> Option<&'static [u8]> {
    built::FILES.iter().find(|(n, _)| *n == name).map(|(_, body)| *body)
}

fn not_built() -> ApiError {
    ApiError::not_found(
        "this tolk binary was built without the BBB plugin: run scripts/build-plugin, then build tolk again",
    )
}

/// `?sdk=` of the manifest URL.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct SdkQuery {
    /// The BBB client's plugin SDK version (BBB fills in `%%HTML5_PLUGIN_SDK_VERSION%%`).
    sdk: Option<String>,
}

/// `GET /bbb-plugin/manifest.json`.
#[utoipa::path(get, path = "/bbb-plugin/manifest.json", tag = "bbb plugin", params(SdkQuery),
    responses((status = 200, description = "The plugin's manifest, its entry point an absolute URL.", content_type = "application/json"),
        (status = 404, description = "This binary was built without the plugin.")))]
pub(super) async fn manifest(
    State(app): State<Arc<App>>,
    Query(query): Query<SdkQuery>,
) -> Result<Response, ApiError> {
    let built = built("manifest.json").ok_or_else(not_built)?;
    let manifest = absolute(built, &app.settings.public_url, query.sdk.as_deref()).map_err(|why| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the built plugin's manifest.json {why}"))
    })?;
    Ok(static_file("application/json", manifest))
}

/// `GET /bbb-plugin/{file}`: the bundle and what it loads.
#[utoipa::path(get, path = "/bbb-plugin/{file}", tag = "bbb plugin", params(("file" = String, Path, description = "A file of the built plugin.")),
    responses((status = 200, description = "The file."),
        (status = 404, description = "No such file, or this binary was built without the plugin.")))]
pub(super) async fn file(Path(file): Path<String>) -> Result<Response, ApiError> {
    if built::FILES.is_empty() {
        return Err(not_built());
    }
    let body =
        built(&file).ok_or_else(|| ApiError::not_found(format!("the BBB plugin has no file '{file}'")))?;
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    Ok(static_file(content_type, body).into_response())
}

/// The built manifest with its entry point made absolute (under `public_url`), picking the bundle
/// of SDK line `sdk` ("0.0", "0.1") when the build made one per line (`bundles`).
fn absolute(built: &[u8], public_url: &str, sdk: Option<&str>) -> Result<String, String> {
    let mut manifest: serde_json::Value =
        serde_json::from_slice(built).map_err(|e| format!("is not JSON: {e}"))?;
    let object = manifest.as_object_mut().ok_or("is not a JSON object")?;
    let mut entry = object
        .get("javascriptEntrypointUrl")
        .and_then(|e| e.as_str())
        .ok_or("has no javascriptEntrypointUrl")?
        .to_owned();
    if let Some(bundles) = object.remove("bundles").and_then(|b| b.as_object().cloned())
        && let Some(sdk) = sdk
        && let Some(file) =
            bundles.iter().find(|(line, _)| sdk.starts_with(line.as_str())).and_then(|(_, f)| f.as_str())
    {
        entry = file.to_owned();
    }
    if !entry.contains("://") {
        entry = format!("{public_url}/bbb-plugin/{}", entry.trim_start_matches("./"));
    }
    object.insert("javascriptEntrypointUrl".into(), entry.into());
    serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_point_is_made_absolute_and_follows_the_sdk_line() {
        let built = br#"{"requiredSdkVersion": "~0.1.0", "name": "TolkInterpretation",
            "javascriptEntrypointUrl": "TolkInterpretation.js",
            "bundles": {"0.0": "TolkInterpretation-0.0.js", "0.1": "TolkInterpretation.js"}}"#;
        let base = "https://bbb.example.org/tolk";
        let entry = |sdk| {
            let json: serde_json::Value = serde_json::from_str(&absolute(built, base, sdk).unwrap()).unwrap();
            assert!(json.get("bundles").is_none());
            json["javascriptEntrypointUrl"].as_str().unwrap().to_owned()
        };
        assert_eq!(entry(None), "https://bbb.example.org/tolk/bbb-plugin/TolkInterpretation.js");
        assert_eq!(
            entry(Some("0.0.78")),
            "https://bbb.example.org/tolk/bbb-plugin/TolkInterpretation-0.0.js"
        );
        assert_eq!(entry(Some("0.1.3")), "https://bbb.example.org/tolk/bbb-plugin/TolkInterpretation.js");
        assert!(absolute(b"[]", base, None).is_err());
        assert!(absolute(b"{}", base, None).unwrap_err().contains("javascriptEntrypointUrl"));
    }
}
