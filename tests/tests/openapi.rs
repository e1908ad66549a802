//! The OpenAPI document at `/api/v1/openapi.json` against a running relay: public, without
//! secrets, declares its bearer schemes, and every operation it lists is served (no fallback
//! 404, no 405) and answers its errors as problem+json. The other direction (every route of the
//! router is in the document) is the relay's unit test `every_route_of_the_public_router_is_in_the_document`.

use serde_json::Value;
use tolk_tests::relay::{ADMIN, TestRelay};

/// A value for each path parameter of the documented paths.
fn fill(path: &str, event: &str) -> String {
    path.replace("{id}", event)
        .replace("{event}", event)
        .replace("{language}", "fr")
        .replace("{session}", &"0".repeat(32))
        .replace("{interpreter}", "1")
        .replace("{action}", "off-air")
        .replace("{token}", "abc")
        .replace("{file}", "tolk.css")
        .replace("{recording}", "0123456789abcdef")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_errs_in_problem_json() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let response = relay.http.get(relay.url("/api/v1/openapi.json")).send().await?;
    assert_eq!(response.status(), 200, "public: no token needed");
    let text = response.text().await?;
    assert!(!text.contains(ADMIN), "the document carries no secret");
    let doc: Value = serde_json::from_str(&text)?;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for scheme in ["organiser", "booth", "floor"] {
        assert_eq!(doc["components"]["securitySchemes"][scheme]["scheme"], "bearer", "{scheme}");
    }
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() >= 25, "{} paths", paths.len());
    // Every operationId once: tools link operations by it (a duplicate sends them to the wrong one).
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flatten())
        .filter_map(|(_, op)| op["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operationIds are unique: {ids:?}");
    let mut operations = 0;
    for (path, item) in &paths {
        for (method, _) in item.as_object().into_iter().flatten() {
            let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())?;
            // No token and no body: every call is refused or harmless.
            let response =
                relay.http.request(method.clone(), relay.url(&fill(path, event.id.as_str()))).send().await?;
            let status = response.status();
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body = response.text().await?;
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !body.contains("there is nothing at this address"),
                "{method} {path} fell through: {body}"
            );
            assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
            if status.is_client_error() {
                assert_eq!(content_type, "application/problem+json", "{method} {path}: {status} {body}");
            }
            operations += 1;
        }
    }
    assert!(operations >= 30, "{operations} operations");
    relay.stop().await;
    Ok(())
}
