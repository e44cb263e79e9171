//! The metrics listener's JSON answers: one body with its status, uncached
//! (`/health`, `/cache/flush` and the live-control routes all answer so).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

/// The media type of a JSON body.
const JSON_CONTENT_TYPE: &str = "application/json";

/// A JSON body with `status`, uncached.
pub(super) fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (
            status,
            [
                (header::CONTENT_TYPE, JSON_CONTENT_TYPE),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text + "\n",
        )
            .into_response(),
        Err(err) => {
            warn!(%err, "metrics: cannot encode JSON");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
