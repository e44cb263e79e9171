//! Live control on the metrics listener (docs/CONFIG.md (the LS) "Live control"):
//! `POST /backend/{name}?state=drain|down|auto`, `GET /blocks`,
//! `POST /blocks?target=NET|NAME&for=SECS&action=ACTION`,
//! `POST /blocks/clear`, `GET /top?seconds=N&n=M&labels=L`, `GET /probe-token` (the
//! anycast probe's secret, `crate::ls::identity`: behind the gate as a
//! state-changing request is, since whoever holds it passes for the probe);
//! and the gate every
//! state-changing request passes ([`gate`], `POST /cache/flush` included):
//! the peer inside `control_allow`, the `api_key` when the peer is not
//! loopback ([`crate::ls::control`]; 401 or 403, counted), and no request a
//! web page could have sent (the header [`CONTROL_HEADER`] or the flush's,
//! no `Origin` or `Sec-Fetch-Site`; 403).
//!
//! The key travels in [`KEY_HEADER`] or as `Authorization: Bearer KEY`.
//! Answers are JSON (`docs/METRICS.md`); a refusal is one line of text.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;

use super::json::json;
use super::listener::Capped;
use crate::config::{DynAction, MAX_BLOCK_S};
use crate::ls::Balancer;
use crate::ls::backend::admin::AdminState;
use crate::ls::control::{ControlCounters, ControlSettings, Refusal};
use crate::ls::dynblock::{BlockInfo, ManualTarget, TOP_KEEP, TOP_SECS, TopReport};

/// The header a state-changing request must carry (any value): no HTML
/// form can set it, and a script across sites cannot without a CORS
/// preflight. (`POST /cache/flush` takes its own, `X-Dnslb-Flush`, too.)
pub const CONTROL_HEADER: &str = "x-dnslb-control";
/// The header that carries the `api_key`.
pub const KEY_HEADER: &str = "x-dnslb-key";
/// The path of the backends' states.
const BACKEND_PATH: &str = "/backend/{name}";
/// The path of the blocks.
const BLOCKS_PATH: &str = "/blocks";
/// The path that lifts every block.
const BLOCKS_CLEAR_PATH: &str = "/blocks/clear";
/// The path of `dnslb top`.
const TOP_PATH: &str = "/top";
/// The path of the anycast probe's token.
pub const PROBE_TOKEN_PATH: &str = "/probe-token";

/// The peer of a connection, as handlers see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct HttpPeer(pub(super) SocketAddr);

impl Connected<IncomingStream<'_, Capped>> for HttpPeer {
    fn connect_info(stream: IncomingStream<'_, Capped>) -> Self {
        HttpPeer(*stream.remote_addr())
    }
}

/// The key a request carries, if any.
fn key_of(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(k) = headers.get(KEY_HEADER) {
        return Some(k.as_bytes());
    }
    let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
    auth.strip_prefix(b"Bearer ")
}

/// Lets a state-changing request from `peer` through (`None`), or answers
/// why not (counted). The answer of a request let through is counted by
/// [`settled`]. `marked`: the caller has checked the request's
/// headers as its own (a cache flush's `X-Dnslb-Flush`); else they must
/// carry [`CONTROL_HEADER`] and nothing a browser adds.
pub(super) fn gate(
    balancer: &Balancer,
    peer: IpAddr,
    headers: &HeaderMap,
    marked: bool,
) -> Option<Response> {
    let (control, counters) = (balancer.control(), balancer.control_counters());
    gate_with(&control, counters, peer, headers, marked)
}

/// [`gate`] with these settings and counters (a TS's control listener's).
pub(super) fn gate_with(
    control: &ControlSettings,
    counters: &ControlCounters,
    peer: IpAddr,
    headers: &HeaderMap,
    marked: bool,
) -> Option<Response> {
    let from_page = headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site");
    if !marked && (from_page || !headers.contains_key(CONTROL_HEADER)) {
        counters.forbidden.fetch_add(1, Relaxed);
        let why = if from_page {
            "a state-changing request is not taken from a web page (Origin or Sec-Fetch-Site present)\n"
        } else {
            "a state-changing request needs the header 'X-Dnslb-Control: 1' (dnslb sends it)\n"
        };
        return Some((StatusCode::FORBIDDEN, why).into_response());
    }
    match control.authorize(peer, key_of(headers)) {
        Ok(()) => None,
        Err(Refusal::NotAllowed) => {
            counters.forbidden.fetch_add(1, Relaxed);
            Some(
                (
                    StatusCode::FORBIDDEN,
                    format!("{peer} is not in control_allow\n"),
                )
                    .into_response(),
            )
        }
        Err(Refusal::Unauthorized) => {
            counters.unauthorized.fetch_add(1, Relaxed);
            Some((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "this request needs the api_key (X-Dnslb-Key or Authorization: Bearer): it is not from loopback, or the listener is not bound to loopback\n",
            )
                .into_response())
        }
    }
}

/// Counts `r`, the answer to a request [`gate`] let through, by its status
/// (`accepted` only when it was done), and hands it back.
pub(super) fn settled(balancer: &Balancer, r: Response) -> Response {
    balancer.control_counters().settled(r.status().as_u16());
    r
}

/// A state-changing request of the live control, as its handler takes it:
/// the balancer, the peer and the headers [`gate`] reads.
struct Gated {
    balancer: Arc<Balancer>,
    peer: IpAddr,
    headers: HeaderMap,
}

impl FromRequestParts<Arc<Balancer>> for Gated {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        balancer: &Arc<Balancer>,
    ) -> Result<Self, Response> {
        let ConnectInfo(HttpPeer(peer)) =
            ConnectInfo::<HttpPeer>::from_request_parts(parts, balancer)
                .await
                .map_err(IntoResponse::into_response)?;
        Ok(Gated {
            balancer: Arc::clone(balancer),
            peer: peer.ip(),
            headers: parts.headers.clone(),
        })
    }
}

impl Gated {
    /// `act`'s answer when [`gate`] lets the request through (counted by
    /// [`settled`]), else the gate's refusal.
    fn run(self, act: impl FnOnce(&Balancer) -> Response) -> Response {
        match gate(&self.balancer, self.peer, &self.headers, false) {
            Some(refusal) => refusal,
            None => settled(&self.balancer, act(&self.balancer)),
        }
    }
}

/// The live control's routes, on `balancer`.
pub(super) fn routes(balancer: Arc<Balancer>) -> Router {
    Router::new()
        .route(BACKEND_PATH, post(set_backend))
        .route(BLOCKS_PATH, get(list_blocks).post(add_block))
        .route(BLOCKS_CLEAR_PATH, post(clear_blocks))
        .route(TOP_PATH, get(top))
        .route(PROBE_TOKEN_PATH, get(probe_token))
        .with_state(balancer)
}

/// The body of `POST /backend/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackendAnswer {
    /// The backend.
    pub backend: String,
    /// Its state now.
    pub state: AdminState,
    /// Its state before.
    pub previous: AdminState,
    /// What the state does for its routes, in words (empty from an LS
    /// that does not say).
    #[serde(default)]
    pub effect: String,
}

/// The body of `GET /probe-token`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeTokenAnswer {
    /// The token, in hex.
    pub token: String,
}

/// `GET /probe-token`: the secret `dnslb anycast`'s probe sends with its
/// identity question, to the callers the gate lets in only.
async fn probe_token(ask: Gated) -> Response {
    ask.run(|b| {
        let token = b.probe_token().to_hex();
        json(StatusCode::OK, &ProbeTokenAnswer { token })
    })
}

/// The value of `key` in a query string.
fn param(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn bad(why: String) -> Response {
    (StatusCode::BAD_REQUEST, why + "\n").into_response()
}

/// `POST /backend/{name}?state=drain|down|auto`.
async fn set_backend(ask: Gated, Path(name): Path<String>, uri: Uri) -> Response {
    ask.run(|b| {
        let Some(state) = param(&uri, "state").and_then(|s| AdminState::from_keyword(&s)) else {
            return bad("state: expected drain, down or auto".into());
        };
        match b.set_admin(&name, state) {
            Some(previous) => json(
                StatusCode::OK,
                &BackendAnswer {
                    effect: b.admin_effect(&name, state),
                    backend: name,
                    state,
                    previous,
                },
            ),
            None => (
                StatusCode::NOT_FOUND,
                format!("no backend named {name:?}\n"),
            )
                .into_response(),
        }
    })
}

/// `GET /blocks`: the blocks in force.
async fn list_blocks(State(balancer): State<Arc<Balancer>>) -> Response {
    let list: Vec<BlockInfo> = balancer.dynblocks().list(Instant::now());
    json(StatusCode::OK, &list)
}

/// A block asked for by hand: what, how long, which action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAsk {
    /// The network or name.
    pub target: ManualTarget,
    /// For how long, in seconds.
    pub secs: u64,
    /// Its action.
    pub action: DynAction,
}

/// Reads `target`, `for` and `action` of a query string (pure): a target
/// with a `/` or that parses as an address is a network, anything else a
/// name.
///
/// # Errors
/// A line saying what is wrong.
pub fn parse_block(query: &str) -> Result<BlockAsk, String> {
    let mut target = None;
    let mut secs = 600;
    let mut action = DynAction::Drop;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "target" => target = Some(parse_target(&value)?),
            "for" => {
                secs = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_BLOCK_S).contains(s))
                    .ok_or_else(|| format!("for: seconds in [1, {MAX_BLOCK_S}], got {value:?}"))?;
            }
            "action" => {
                action = DynAction::from_keyword(&value).ok_or_else(|| {
                    format!("action: drop, refuse, truncate or nxdomain, got {value:?}")
                })?;
            }
            _ => {}
        }
    }
    let target =
        target.ok_or("missing target: POST /blocks?target=NET|NAME[&for=600][&action=drop]")?;
    Ok(BlockAsk {
        target,
        secs,
        action,
    })
}

/// A network (CIDR or a bare address) or a DNS name.
///
/// # Errors
/// Neither.
pub fn parse_target(text: &str) -> Result<ManualTarget, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<ipnet::IpNet>() {
        return Ok(ManualTarget::Net(net));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(ManualTarget::Addr(ip));
    }
    if t.contains('/') {
        return Err(format!("target: not a network: {t:?}"));
    }
    crate::config::parse_name(t)
        .map(ManualTarget::Name)
        .map_err(|e| format!("target: neither a network nor a name: {e}"))
}

/// `POST /blocks?target=…&for=…&action=…`: a block by hand.
async fn add_block(ask: Gated, uri: Uri) -> Response {
    ask.run(|b| {
        let ask = match parse_block(uri.query().unwrap_or_default()) {
            Ok(a) => a,
            Err(why) => return bad(why),
        };
        let now = Instant::now();
        let d = b.dynblocks();
        match d.add_manual(&ask.target, ask.secs, ask.action, now) {
            Ok(()) => json(StatusCode::OK, &d.list(now)),
            Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
        }
    })
}

/// The body of `POST /blocks/clear`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClearAnswer {
    /// Blocks lifted.
    pub cleared: usize,
}

/// `POST /blocks/clear`: every block lifted.
async fn clear_blocks(ask: Gated) -> Response {
    ask.run(|b| {
        let cleared = b.dynblocks().clear();
        json(StatusCode::OK, &ClearAnswer { cleared })
    })
}

/// `GET /top?seconds=N&n=M[&labels=L]`: the busiest clients, names (cut
/// to their last `labels` labels when asked), types and rcodes.
async fn top(State(balancer): State<Arc<Balancer>>, uri: Uri) -> Response {
    let (seconds, n, labels) = match parse_top(uri.query().unwrap_or_default()) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let report: TopReport = balancer.dynblocks().top(seconds, n, labels);
    json(StatusCode::OK, &report)
}

/// The most labels `GET /top`'s `labels` may keep (a name has at most 127).
const TOP_LABELS_MAX: usize = 127;

/// Reads `seconds` (1 to [`TOP_SECS`], default 10), `n` (1 to
/// [`TOP_KEEP`], default 10) and `labels` (1 to 127, default none: whole
/// names) of `GET /top`'s query string (pure).
///
/// # Errors
/// A line naming the value that is not a number in its range.
fn parse_top(query: &str) -> Result<(usize, usize, Option<usize>), String> {
    let (mut seconds, mut n, mut labels) = (10, 10, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let max = match &*key {
            "seconds" => TOP_SECS,
            "n" => TOP_KEEP,
            "labels" => TOP_LABELS_MAX,
            _ => continue,
        };
        let v = value
            .parse()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| format!("{key}: a number in [1, {max}], got {value:?}"))?;
        match &*key {
            "seconds" => seconds = v,
            "n" => n = v,
            _ => labels = Some(v),
        }
    }
    Ok((seconds, n, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_asked_for_names_a_network_or_a_name() {
        let a = parse_block("target=198.51.100.0/24&for=60&action=truncate").unwrap();
        assert_eq!(
            a,
            BlockAsk {
                target: ManualTarget::Net("198.51.100.0/24".parse().unwrap()),
                secs: 60,
                action: DynAction::Truncate
            }
        );
        let a = parse_block("target=192.0.2.1").unwrap();
        assert_eq!(a.target, ManualTarget::Addr("192.0.2.1".parse().unwrap()));
        let a = parse_block("target=::ffff:127.0.0.0/104").unwrap();
        assert_eq!(
            a.target,
            ManualTarget::Net("::ffff:127.0.0.0/104".parse().unwrap())
        );
        assert_eq!((a.secs, a.action), (600, DynAction::Drop));
        let a = parse_block("target=bad.example").unwrap();
        assert!(matches!(a.target, ManualTarget::Name(n) if n.to_ascii() == "bad.example."));
        for (q, says) in [
            ("", "missing target"),
            ("target=1.2.3.4/40", "not a network"),
            ("target=x&for=0", "for:"),
            ("target=x&action=maybe", "action:"),
        ] {
            let e = parse_block(q).unwrap_err();
            assert!(e.contains(says), "{q}: {e}");
        }
    }

    #[test]
    fn top_takes_numbers_in_range_only() {
        assert_eq!(parse_top(""), Ok((10, 10, None)));
        assert_eq!(parse_top("seconds=60&n=1"), Ok((TOP_SECS, 1, None)));
        assert_eq!(parse_top("labels=2"), Ok((10, 10, Some(2))));
        for (q, says) in [
            ("labels=0", "labels:"),
            ("labels=128", "labels:"),
            ("seconds=abc", "seconds:"),
            ("seconds=0", "seconds:"),
            ("seconds=100000", "seconds:"),
            ("n=-1", "n:"),
            ("n=101", "n:"),
        ] {
            let e = parse_top(q).unwrap_err();
            assert!(e.starts_with(says), "{q}: {e}");
        }
    }

    #[test]
    fn the_key_comes_in_its_header_or_as_a_bearer_token() {
        let mut h = HeaderMap::new();
        assert_eq!(key_of(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert_eq!(key_of(&h), Some(b"k1".as_slice()));
        h.insert(KEY_HEADER, "k2".parse().unwrap());
        assert_eq!(key_of(&h), Some(b"k2".as_slice()));
    }
}
