//! `POST /reload` (`dnslb reload`): the same reload as a SIGHUP, and its
//! outcome for each role, LS and table servers, once every one has
//! answered. Gated as every state-changing request is (`control::gate`).
//!
//! A reload can take longer than the listener lets a request wait for its
//! answer's first byte (it rereads every zone): the answer starts at once
//! (200, JSON) and its body is a space every [`KEEP_GOING`] until the
//! outcome, one [`ReloadAnswer`] (leading spaces are JSON whitespace). The
//! reload runs in its own task: a client that goes away does not cut it
//! short. Whether it was applied is in the body (`applied`), not the status.
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::future::BoxFuture;

use super::control::{HttpPeer, gate, settled};
use crate::ls::Balancer;

/// The path of the reload.
pub const RELOAD_PATH: &str = "/reload";
/// How often the body of a reload's answer says it is still going.
const KEEP_GOING: Duration = Duration::from_secs(1);

/// What runs a reload and tells its outcome (the LS's, under `dnslb up`
/// its table servers' too).
pub type ReloadFn = dyn Fn() -> BoxFuture<'static, ReloadAnswer> + Send + Sync;

/// The outcome of a reload for one role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoleReload {
    /// `ls`, or a table server's name.
    pub role: String,
    /// Whether the role applied the reload.
    pub applied: bool,
    /// What it did, or why not (`config.toml:32: ls.strategy: ...`).
    pub detail: String,
}

/// The body of `POST /reload`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadAnswer {
    /// Every role applied it.
    pub applied: bool,
    /// Each role's outcome, the LS first.
    pub roles: Vec<RoleReload>,
}

impl ReloadAnswer {
    /// An answer of `roles`, applied when every one is.
    pub fn of(roles: Vec<RoleReload>) -> Self {
        ReloadAnswer {
            applied: roles.iter().all(|r| r.applied),
            roles,
        }
    }
}

/// The reload's route, on `balancer` (its gate) and `reload` (none: a
/// server that takes no reload requests).
pub(super) fn routes(balancer: Arc<Balancer>, reload: Option<Arc<ReloadFn>>) -> Router {
    Router::new()
        .route(RELOAD_PATH, post(reload_now))
        .with_state((balancer, reload))
}

type ReloadState = (Arc<Balancer>, Option<Arc<ReloadFn>>);

/// `POST /reload`: see the module's docs.
async fn reload_now(
    State((balancer, reload)): State<ReloadState>,
    ConnectInfo(HttpPeer(peer)): ConnectInfo<HttpPeer>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = gate(&balancer, peer.ip(), &headers, false) {
        return refusal;
    }
    let Some(reload) = reload else {
        let why = "this server takes no reload requests: send it SIGHUP\n";
        return settled(&balancer, (StatusCode::NOT_FOUND, why).into_response());
    };
    let task = tokio::spawn(reload());
    let body = futures_util::stream::unfold(Some(task), |task| async move {
        let mut task = task?;
        tokio::select! {
            done = &mut task => {
                let answer = done.unwrap_or_else(|e| ReloadAnswer::of(vec![RoleReload {
                    role: "ls".into(),
                    applied: false,
                    detail: format!("the reload stopped: {e}"),
                }]));
                let text = serde_json::to_string(&answer).unwrap_or_default() + "\n";
                Some((Ok::<_, Infallible>(Bytes::from(text)), None))
            }
            () = tokio::time::sleep(KEEP_GOING) => Some((Ok(Bytes::from_static(b" ")), Some(task))),
        }
    });
    let answer = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    );
    settled(&balancer, answer.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_applied_only_when_every_role_applied_it() {
        let role = |role: &str, applied| RoleReload {
            role: role.into(),
            applied,
            detail: String::new(),
        };
        assert!(ReloadAnswer::of(vec![role("ls", true), role("ts1", true)]).applied);
        assert!(!ReloadAnswer::of(vec![role("ls", true), role("ts1", false)]).applied);
        // Leading spaces (the body's "still going") are JSON whitespace.
        let text = format!(
            "   {}\n",
            serde_json::to_string(&ReloadAnswer::of(vec![role("ls", true)])).unwrap()
        );
        let back: ReloadAnswer = serde_json::from_str(&text).unwrap();
        assert_eq!(back.roles, [role("ls", true)]);
    }
}
