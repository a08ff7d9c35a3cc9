//! The web UI, served by `ros cluster server` at `/`: one HTML page, one
//! ES module and one stylesheet, hand-written (no framework, no build
//! step), embedded in the binary and sent gzip-compressed when the browser
//! accepts it. Everything the page shows comes from the API under
//! `/v2-beta` and its live subscription ([`crate::cluster::api::subscribe`]).

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(name, content type, text)` of every asset.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("app.css"),
    ),
];

fn gzipped(i: usize) -> &'static [u8] {
    static CACHE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, text)| {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                let _ = z.write_all(text.as_bytes());
                z.finish().unwrap_or_default()
            })
            .collect()
    });
    all.get(i).map(Vec::as_slice).unwrap_or_default()
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return crate::cluster::api::ApiError::not_found().into_response();
    };
    let (_, ctype, text) = ASSETS[i];
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    // The page is small; revalidating it every time keeps an upgraded
    // server's UI current without cache-busting names.
    let common = [
        (header::CONTENT_TYPE, ctype),
        (header::CACHE_CONTROL, "no-cache"),
        (header::VARY, "Accept-Encoding"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if gzip {
        (
            StatusCode::OK,
            common,
            [(header::CONTENT_ENCODING, "gzip")],
            gzipped(i),
        )
            .into_response()
    } else {
        (StatusCode::OK, common, text).into_response()
    }
}

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{name}`.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}
