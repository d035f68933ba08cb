//! The OpenAPI document covers every API route: each documented operation is
//! routed (not the 404/405 fallback), and every route the catalog serves under
//! `/api` is documented.

use crate::common;

use common::{config, Server};
use keyframe_core::ErrorCode;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every API route the catalog serves (method, path). Adding a route without
/// documenting it fails `documented_operations_match_the_routes`.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/content"),
    ("get", "/api/content/{id}"),
    ("get", "/api/content/{id}/play"),
    ("get", "/api/categories"),
    ("post", "/api/users"),
    ("get", "/api/users/me"),
    ("patch", "/api/users/me"),
    ("delete", "/api/users/me"),
    ("put", "/api/users/me/avatar"),
    ("post", "/api/sessions"),
    ("delete", "/api/sessions"),
    ("patch", "/api/admin/content/{id}"),
    ("put", "/api/admin/content/{id}/rights"),
    ("get", "/api/admin/ingest"),
    ("post", "/api/admin/ingest"),
    ("get", "/api/openapi.json"),
    ("post", "/api/history"),
    ("get", "/api/history"),
    ("delete", "/api/history"),
    ("get", "/api/history/continue"),
    ("delete", "/api/history/continue/{id}"),
    ("get", "/api/history/export"),
    ("get", "/api/trending"),
    ("get", "/api/recommendations"),
    ("get", "/api/content/{id}/similar"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[tokio::test]
async fn documented_operations_match_the_routes() {
    let t = keyframe_catalog::testing::sqlite().await.expect("db");
    let s = Server::start(&t.db, config()).await;
    let r = s
        .req(Method::GET, "/api/openapi.json")
        .send()
        .await
        .expect("doc");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("application/json"));
    let doc: Value = r.json().await.expect("json");
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc,
        serde_json::to_value(keyframe_catalog::server::openapi()).expect("doc")
    );

    let documented = operations(&doc);
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        documented, expected,
        "the document and the route list differ"
    );

    // Every documented operation is routed: the answer is never the fallback's
    // 404 `not_found` nor a 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "0123456789abcdef");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = s.req(m, &concrete).send().await.expect("request");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if let Some(code) = body["code"].as_str() {
            assert!(
                ErrorCode::from_code(code).is_some(),
                "{method} {path}: code {code} is not an ErrorCode"
            );
        }
        assert!(
            !(status == StatusCode::NOT_FOUND && body["code"] == "not_found"),
            "{method} {path} is documented but not routed"
        );
    }
    // And no undocumented method answers on a documented path.
    for (_, path) in &documented {
        let concrete = path.replace("{id}", "0123456789abcdef");
        for method in ["get", "post", "put", "patch", "delete"] {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = s.req(m, &concrete).send().await.expect("request");
            assert_eq!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed but not documented"
            );
        }
    }
    // Schemas the operations refer to are in the document.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ContentList",
        "ContentDetail",
        "PlayResponse",
        "UserView",
        "SessionView",
        "ErrorBody",
        "NewUser",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // Every request above was counted by status and timed.
    let text = s
        .req(Method::GET, "/_keyframe/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "keyframe_http_requests_total{status=\"200\"}",
        "keyframe_http_requests_total{status=\"405\"}",
        "keyframe_http_request_duration_seconds_count",
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }
    s.stop().await;
    t.cleanup().await;
}

/// The document lists every error code (`ErrorCode::ALL`, with its status), and
/// an error body's `code` refers to that list.
#[test]
fn the_document_lists_every_error_code() {
    let doc = serde_json::to_value(keyframe_catalog::server::openapi()).expect("doc");
    let schema = &doc["components"]["schemas"]["ErrorCode"];
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .expect("an enum of codes")
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect();
    let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, all);
    let description = schema["description"].as_str().expect("description");
    for c in ErrorCode::ALL {
        let entry = format!("`{}` {}", c.as_str(), c.status().as_u16());
        assert!(description.contains(&entry), "{entry} not in {description}");
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}
