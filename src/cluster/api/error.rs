//! API errors: the Rancher error object (`{type:"error", status, code,
//! message, fieldName}`) and the one place that maps failures to statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::cluster::store::StoreError;

/// The realm Rancher's API sends with a 401.
pub const REALM: &str =
    "Basic realm=\"Enter API access key and secret key as username and password\"";

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code users script against (`NotUnique` …).
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Seconds to wait (`Retry-After` of a 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A 422 about `field`.
    pub fn field(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 422,
            code,
            message: message.into(),
            field: Some(field.to_string()),
            retry_after: None,
        }
    }

    /// 404 for a path or id that does not exist (or is not visible).
    pub fn not_found() -> ApiError {
        ApiError::new(404, "NotFound", "Not Found")
    }

    /// 401 with the Basic challenge.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 for a credential that is valid but not allowed here.
    pub fn forbidden() -> ApiError {
        ApiError::new(403, "Forbidden", "Forbidden")
    }

    /// 429 from the brute-force brake: `secs` before the next attempt.
    pub fn too_many_logins(secs: u64) -> ApiError {
        ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                429,
                "TooManyRequests",
                format!("too many failed logins from your address: wait {secs} s"),
            )
        }
    }

    /// 405 for a method the path does not take.
    pub fn method() -> ApiError {
        ApiError::new(405, "MethodNotAllowed", "Method not allowed")
    }

    /// The error object as JSON.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "id": format!("error-{}", self.status),
            "type": "error",
            "links": {},
            "actions": {},
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "detail": null,
            "fieldName": self.field,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure");
        ApiError::new(503, "StoreUnavailable", "the store failed; retry")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, axum::Json(self.body())).into_response();
        if self.status == 401 {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
