//! The TS's control listener (`control` in its `[[ts]]`): `GET /zones`
//! (every zone served; `?detail=1`: each one's status), `GET /zones/{name}`
//! (one zone's status), and `POST /zones/{name}/reload|notify|retransfer|
//! refresh`, each through the LS's gate ([`gate_with`]: the peer inside
//! `control_allow`, the `api_key` off loopback or when the listener is not
//! bound to loopback, the header no web page sends). A mutating request by
//! GET is answered 405. What each does: [`ZoneControl`]. Answers are JSON;
//! a refusal or an error is one line of text (404 for a zone not served,
//! 409 for a command that does not fit the zone, 422 for a reload refused).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hickory_proto::rr::Name;

use super::control::{HttpPeer, gate_with};
use super::json::json;
use crate::ls::control::{ControlCounters, ControlSettings};
use crate::ts::zone_control::{ZoneControl, ZoneCtlError};

/// The path of the zones' list.
pub const ZONES_PATH: &str = "/zones";

/// What the handlers share.
struct Ctl {
    zones: ZoneControl,
    gate: ControlSettings,
    counters: ControlCounters,
}

/// `e` as an HTTP answer.
fn refused(e: &ZoneCtlError) -> Response {
    let status = match e {
        ZoneCtlError::NoSuchZone(_) => StatusCode::NOT_FOUND,
        ZoneCtlError::Unfit { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, format!("{e}\n")).into_response()
}

/// `text` read as a zone's name, or why not.
fn zone_name(text: &str) -> Result<Name, String> {
    crate::config::parse_name(text).map_err(|e| format!("not a zone name: {e}\n"))
}

/// The 400 of a name that is none.
fn bad_name(why: String) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

/// `GET /zones[?detail=1]`: off the runtime's threads (a TS of 100,000
/// zones takes a while).
async fn list(State(ctl): State<Arc<Ctl>>, uri: Uri) -> Response {
    let detail = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "detail" && v != "0");
    let made = tokio::task::spawn_blocking(move || {
        if detail {
            json(StatusCode::OK, &ctl.zones.statuses())
        } else {
            json(StatusCode::OK, &ctl.zones.list())
        }
    });
    made.await.unwrap_or_else(|_| stopped())
}

/// The answer of a task that stopped (panicked).
fn stopped() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "the request stopped\n").into_response()
}

/// `GET /zones/{name}`.
async fn status(State(ctl): State<Arc<Ctl>>, Path(name): Path<String>) -> Response {
    let name = match zone_name(&name) {
        Ok(n) => n,
        Err(why) => return bad_name(why),
    };
    let made = tokio::task::spawn_blocking(move || match ctl.zones.status(&name) {
        Ok(s) => json(StatusCode::OK, &s),
        Err(e) => refused(&e),
    });
    made.await.unwrap_or_else(|_| stopped())
}

/// `POST /zones/{name}/{action}`, through the gate.
async fn act(
    State(ctl): State<Arc<Ctl>>,
    ConnectInfo(HttpPeer(peer)): ConnectInfo<HttpPeer>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let peer: IpAddr = peer.ip();
    if let Some(refusal) = gate_with(&ctl.gate, &ctl.counters, peer, &headers, false) {
        return refusal;
    }
    let answer = run(&ctl, &name, &action).await;
    ctl.counters.settled(answer.status().as_u16());
    answer
}

/// The action `action` on the zone `name`.
async fn run(ctl: &Arc<Ctl>, name: &str, action: &str) -> Response {
    let name = match zone_name(name) {
        Ok(n) => n,
        Err(why) => return bad_name(why),
    };
    let done = match action {
        "reload" => {
            let ctl = Arc::clone(ctl);
            let read = tokio::task::spawn_blocking(move || ctl.zones.reload(&name)).await;
            match read {
                Ok(r) => r,
                Err(_) => return stopped(),
            }
        }
        "notify" => ctl.zones.notify(&name),
        "retransfer" => ctl.zones.ask_primary(&name, true).await,
        "refresh" => ctl.zones.ask_primary(&name, false).await,
        _ => {
            let why = format!("no action {action:?}: reload, notify, retransfer or refresh\n");
            return (StatusCode::NOT_FOUND, why).into_response();
        }
    };
    match done {
        Ok(a) => json(StatusCode::OK, &a),
        Err(e) => refused(&e),
    }
}

/// The routes of the zone control of a TS, state-changing requests let
/// through by its `api_key` and `control_allow` as the LS's are, for a
/// listener bound to `bound`.
pub(super) fn routes(zones: ZoneControl, bound: Option<SocketAddr>) -> Router {
    let (api_key, allow) = zones.gate();
    let ctl = Arc::new(Ctl {
        gate: ControlSettings::new(api_key, &allow, bound),
        zones,
        counters: ControlCounters::default(),
    });
    Router::new()
        .route(ZONES_PATH, get(list))
        .route("/zones/{name}", get(status))
        .route("/zones/{name}/{action}", post(act))
        .with_state(ctl)
}
