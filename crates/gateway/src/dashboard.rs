//! The dashboard at `/`: one HTML page, its script and style sheet, and the OpenAPI document
//! of the JSON it reads, all embedded in the binary (no build step, nothing fetched from
//! elsewhere).
//!
//! The page is a hash-routed single page (`#/network`, `#/providers`, `#/providers/{account}`,
//! `#/models`, `#/receipts`, `#/receipts/{id}`, `#/governance`, `#/playground`). It reads
//! the explorer's routes ([`crate::explorer`]) and chats through `/v1/chat/completions`. A
//! content security policy confines it to this origin, so a page can only talk to the gateway.

use axum::{
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// The page.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");
/// The OpenAPI document of every JSON route the page uses.
pub const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

/// Only this origin: no scripts, styles, images or connections anywhere else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The dashboard's routes: `/`, `/app.js`, `/style.css` and `/openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/openapi.json",
            get(|| async { asset("application/json", OPENAPI_JSON) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON route of the gateway that the page reads, as OpenAPI path templates.
    const PAGE_ROUTES: &[&str] = &[
        "/agora/network",
        "/agora/providers",
        "/agora/providers/{account}",
        "/agora/models",
        "/agora/proposals",
        "/agora/receipts",
        "/agora/receipts/{id}",
        "/v1/models",
        "/v1/chat/completions",
    ];

    #[test]
    fn openapi_documents_every_route_the_page_uses() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let paths = doc["paths"].as_object().expect("paths");
        for route in PAGE_ROUTES {
            assert!(
                paths.contains_key(*route),
                "{route} missing from openapi.json"
            );
            let prefix = route.split('{').next().unwrap_or(route);
            assert!(
                APP_JS.contains(prefix),
                "app.js no longer uses {route}: drop it from PAGE_ROUTES"
            );
        }
    }

    #[test]
    fn page_loads_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("style.css", STYLE_CSS),
        ] {
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(needle), "{name} mentions {needle}");
            }
        }
    }
}
