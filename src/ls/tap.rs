//! The LS's dnstap messages (`[ls.dnstap]`), for both drivers: CLIENT_QUERY
//! as a query reaches the door, CLIENT_RESPONSE as an answer leaves,
//! FORWARDER_QUERY as a query leaves for a backend, FORWARDER_RESPONSE as a
//! backend's answer is accepted (RFC 5452 checks passed). Each call checks
//! whether its kind is selected before any other work, and never waits
//! (`crate::dnstap`: a full queue drops the frame, counted).
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::dynblock::DynEvent;
use super::rules::Act;
use super::state::LsMetrics;
use crate::dnstap::message::PolicyAction;
use crate::dnstap::{Dnstap, RuleNote, Staged, TapEvent, TapKind, TapTime, TapTransport};
use crate::server::batch::Peer;

/// The handle that never writes, for an LS without `[ls.dnstap]`.
static OFF: Dnstap = Dnstap::off();

/// The LS's dnstap handle (off without `[ls.dnstap]`).
#[inline]
pub fn of(metrics: &LsMetrics) -> &Dnstap {
    metrics.dnstap.get().unwrap_or(&OFF)
}

/// CLIENT_QUERY: `raw` from `client` over `transport`, to the LS at
/// `local()` (asked only when the kind is on), received now.
#[inline]
pub fn client_query(
    d: &Dnstap,
    transport: TapTransport,
    client: SocketAddr,
    local: impl FnOnce() -> Option<SocketAddr>,
    raw: &[u8],
) {
    if let Some(e) = client_query_at(d, transport, client, local, raw, || None) {
        d.log(&e);
    }
}

/// [`client_query`]'s event, received at `at()` (`None`: now), when the
/// kind is on (`local` and `at` asked only then), for the caller to log or
/// stage.
#[inline]
pub(crate) fn client_query_at<'a>(
    d: &Dnstap,
    transport: TapTransport,
    client: SocketAddr,
    local: impl FnOnce() -> Option<SocketAddr>,
    raw: &'a [u8],
    at: impl FnOnce() -> Option<TapTime>,
) -> Option<TapEvent<'a>> {
    if !d.enabled(TapKind::ClientQuery) {
        return None;
    }
    let mut e = TapEvent::new(TapKind::ClientQuery, transport, client, raw);
    e.response_addr = local();
    e.query_time = at();
    Some(e)
}

/// CLIENT_RESPONSE: `answer` to `client`, from the LS at `local`, for a
/// query that came `waited` ago when known.
pub fn client_response(
    d: &Dnstap,
    transport: TapTransport,
    client: SocketAddr,
    local: Option<SocketAddr>,
    waited: Option<Duration>,
    answer: &[u8],
) {
    if d.enabled(TapKind::ClientResponse) {
        let now = TapTime::now();
        let mut e = TapEvent::new(TapKind::ClientResponse, transport, client, answer);
        e.response_addr = local;
        e.response_time = now;
        e.query_time = now.zip(waited).and_then(|(now, w)| now.checked_sub(w));
        d.log(&e);
    }
}

/// A query rule with `log = true` that acted on `raw` from `client` to the
/// LS at `local` over `transport`: CLIENT_QUERY with the rule as its
/// policy (its name, and its action where dnstap has a word for it),
/// whatever kinds are selected; both addresses as the ordinary
/// CLIENT_QUERY has them.
pub fn rule_matched(
    d: &Dnstap,
    (transport, client, local): (TapTransport, SocketAddr, Option<SocketAddr>),
    raw: &[u8],
    (rule, act): (&str, Act),
    staged: Option<&mut Staged>,
) {
    let action = match act {
        Act::Drop => Some(PolicyAction::Drop),
        Act::Nxdomain => Some(PolicyAction::Nxdomain),
        Act::Truncate => Some(PolicyAction::Truncate),
        Act::Allow => Some(PolicyAction::Pass),
        Act::Spoof | Act::SpoofCname => Some(PolicyAction::LocalData),
        Act::Refuse | Act::Servfail | Act::Pool(_) | Act::Delay(_) => None,
    };
    let note = RuleNote {
        rule,
        action,
        matched: None,
        value: None,
    };
    let mut event = TapEvent::new(TapKind::ClientQuery, transport, client, raw);
    event.response_addr = local;
    d.log_rule_to(&event, &note, staged);
}

/// An event of a dynamic block whose rule has `log = true`: a
/// CLIENT_QUERY without a DNS message, from the blocked client group (a
/// name's block: from `0.0.0.0`), with the event's text as the frame's
/// `extra` (`dnslb dynblock RULE block|warn|release TARGET REASON`),
/// whatever kinds are selected.
pub fn dynblock_event(d: &Dnstap, e: &DynEvent) {
    let ip = e
        .target
        .parse()
        .unwrap_or(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let event = TapEvent::new(
        TapKind::ClientQuery,
        TapTransport::Udp,
        SocketAddr::new(ip, 0),
        &[],
    );
    d.log_extra(&event, e.text().as_bytes());
}

/// FORWARDER_QUERY: `query` from the LS's upstream socket at `local` to
/// `backend`.
pub fn forwarder_query(
    d: &Dnstap,
    transport: TapTransport,
    local: Option<SocketAddr>,
    backend: SocketAddr,
    query: &[u8],
) {
    if d.enabled(TapKind::ForwarderQuery) {
        d.log(&forwarder(
            TapKind::ForwarderQuery,
            transport,
            local,
            backend,
            query,
        ));
    }
}

/// FORWARDER_RESPONSE: `answer` accepted from `backend` on the upstream
/// socket at `local()`, at `now()` (both asked only when the kind is on;
/// [`TapTime::now`] for the moment of the call), for a query sent `rtt`
/// ago: its event when the kind is on, for the caller to log or stage.
pub(crate) fn forwarder_response_at<'a>(
    d: &Dnstap,
    transport: TapTransport,
    local: impl FnOnce() -> Option<SocketAddr>,
    backend: SocketAddr,
    rtt: Duration,
    answer: &'a [u8],
    now: impl FnOnce() -> Option<TapTime>,
) -> Option<TapEvent<'a>> {
    if !d.enabled(TapKind::ForwarderResponse) {
        return None;
    }
    let kind = TapKind::ForwarderResponse;
    let mut e = forwarder(kind, transport, local(), backend, answer);
    e.response_time = now();
    e.query_time = e.response_time.and_then(|now| now.checked_sub(rtt));
    Some(e)
}

/// The FORWARDER_QUERY of a UDP `query` sent at `now` from the upstream
/// socket at `local` to `backend` (a round's flush logs them together:
/// `udp_path::tap`).
pub(crate) fn forwarder_query_at(
    local: Option<SocketAddr>,
    backend: SocketAddr,
    query: &[u8],
    now: Option<TapTime>,
) -> TapEvent<'_> {
    let kind = TapKind::ForwarderQuery;
    let mut e = forwarder(kind, TapTransport::Udp, local, backend, query);
    e.query_time = now;
    e
}

/// CLIENT_RESPONSE of each UDP answer queued on a client socket (at
/// `local`; an answer leaving a wildcard socket from the address its query
/// came to says that address), as the round's flush sends them, with its
/// query's arrival as `query_time` where the queue was told it: the
/// round's moment on the wall clock and the monotonic one (`clock()`,
/// asked once, when there is a frame to write), the frames encoded
/// into the worker's `staged` frames.
pub(crate) fn client_responses<'a>(
    d: &Dnstap,
    staged: &mut Staged,
    queued: impl Iterator<Item = (&'a [u8], Peer, Option<Instant>)>,
    local: Option<SocketAddr>,
    clock: impl FnOnce() -> (Option<TapTime>, Instant),
) {
    if !d.enabled(TapKind::ClientResponse) {
        return;
    }
    let mut queued = queued.peekable();
    if queued.peek().is_none() {
        return;
    }
    let (now, mono) = clock();
    d.stage_each(
        staged,
        queued.map(|(answer, to, arrived)| {
            let mut e = TapEvent::new(TapKind::ClientResponse, TapTransport::Udp, to.addr, answer);
            e.response_addr = match (to.local, local) {
                (Some(ip), Some(l)) => Some(SocketAddr::new(ip, l.port())),
                _ => local,
            };
            e.response_time = now;
            e.query_time = now
                .zip(arrived)
                .and_then(|(now, at)| now.checked_sub(mono.saturating_duration_since(at)));
            e
        }),
    );
}

/// A FORWARDER_QUERY or FORWARDER_RESPONSE (`kind`) of `wire` between the
/// upstream socket at `local` (the unspecified address of the backend's
/// family when it cannot be read) and `backend`.
fn forwarder(
    kind: TapKind,
    transport: TapTransport,
    local: Option<SocketAddr>,
    backend: SocketAddr,
    wire: &[u8],
) -> TapEvent<'_> {
    let local = local.unwrap_or_else(|| match backend {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    });
    let mut e = TapEvent::new(kind, transport, local, wire);
    e.response_addr = Some(backend);
    e
}
