//! The web UI, served by `ros cluster server` at `/`: hand-written ES
//! modules and a stylesheet (no framework), embedded in the binary. Every
//! thing the page shows comes from the API under `/v2-beta` and its live
//! subscription ([`crate::cluster::api::subscribe`]).
//!
//! The first page is one response: `index.html` with the stylesheet and
//! the app module inlined (no request waits on another before the first
//! data requests go out). The shell view's terminal (xterm.js, vendored
//! from npm at build time by `build.rs`) loads only when a shell opens.
//! Every asset is gzip-compressed once (in the background when the server
//! starts) and revalidated by its `ETag`.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `(name, content type, text)` of every asset but the first page.
/// (`static`, not `const`: a const is copied into every place that uses it,
/// which embedded each asset twice, 400 KB.)
pub static ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("app.js")),
    ("app.css", CSS, include_str!("app.css")),
    ("exec.js", JS, include_str!("exec.js")),
    (
        "xterm.mjs",
        JS,
        include_str!(concat!(env!("OUT_DIR"), "/xterm.mjs")),
    ),
    (
        "xterm.css",
        CSS,
        include_str!(concat!(env!("OUT_DIR"), "/xterm.css")),
    ),
    (
        "addon-fit.mjs",
        JS,
        include_str!(concat!(env!("OUT_DIR"), "/addon-fit.mjs")),
    ),
];

/// One asset as served: its text, gzip and ETag.
struct Served {
    ctype: &'static str,
    text: String,
    gzip: OnceLock<Vec<u8>>,
    etag: String,
}

impl Served {
    fn new(ctype: &'static str, text: String) -> Served {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        Served {
            ctype,
            etag: format!("\"{:016x}-{:x}\"", h.finish(), text.len()),
            text,
            gzip: OnceLock::new(),
        }
    }

    fn gzip(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = z.write_all(self.text.as_bytes());
            z.finish().unwrap_or_default()
        })
    }
}

/// `index.html` with `app.css` and `app.js` inlined.
pub fn first_page() -> String {
    let asset = |n: &str| {
        ASSETS
            .iter()
            .find(|(name, _, _)| *name == n)
            .map_or("", |(_, _, t)| *t)
    };
    include_str!("index.html")
        .replace(
            "<link rel=\"stylesheet\" href=\"/ui/app.css\">",
            &format!("<style>\n{}</style>", asset("app.css")),
        )
        .replace(
            "<script type=\"module\" src=\"/ui/app.js\"></script>",
            // An inline script ends at the first `</script`: app.js has none
            // (the test below checks).
            &format!("<script type=\"module\">\n{}</script>", asset("app.js")),
        )
}

/// Every asset, index 0 being the first page.
fn all() -> &'static [Served] {
    static ALL: OnceLock<Vec<Served>> = OnceLock::new();
    ALL.get_or_init(|| {
        std::iter::once(Served::new("text/html; charset=utf-8", first_page()))
            .chain(
                ASSETS
                    .iter()
                    .map(|(_, ctype, text)| Served::new(ctype, (*text).to_string())),
            )
            .collect()
    })
}

/// Compress every asset now (the server calls this in the background at
/// start, so the first page never waits for it).
pub fn warm() {
    for s in all() {
        s.gzip();
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let Some(s) = all().get(i) else {
        return crate::cluster::api::ApiError::not_found().into_response();
    };
    // Revalidated every time (an upgraded server's UI is current at once)
    // but answered with 304 when unchanged.
    let etag = HeaderValue::from_str(&s.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::CONTENT_TYPE, HeaderValue::from_static(s.ctype)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::ETAG, etag),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == s.etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if gzip {
        (
            StatusCode::OK,
            common,
            [(header::CONTENT_ENCODING, "gzip")],
            s.gzip(),
        )
            .into_response()
    } else {
        (StatusCode::OK, common, s.text.clone()).into_response()
    }
}

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /ui/{name}`.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|(n, _, _)| *n == name) {
        Some(i) => serve(i + 1, &headers),
        None => crate::cluster::api::ApiError::not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_page_inlines_its_style_and_module() {
        let page = first_page();
        assert!(!page.contains("href=\"/ui/app.css\""), "css not inlined");
        assert!(!page.contains("src=\"/ui/app.js\""), "js not inlined");
        assert!(
            !include_str!("app.js").contains("</script"),
            "app.js would end its inline script"
        );
        // The terminal is not part of the first page.
        assert!(!page.contains("xterm.mjs\""), "xterm must load lazily");
        assert!(page.contains("import('/ui/exec.js')"));
    }

    #[test]
    fn etag_answers_not_modified() {
        let s = &all()[0];
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, s.etag.parse().unwrap());
        assert_eq!(serve(0, &h).status(), StatusCode::NOT_MODIFIED);
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
        let r = serve(0, &h);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::ETAG], s.etag.as_str());
    }
}
