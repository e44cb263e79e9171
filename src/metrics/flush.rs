//! `POST /cache/flush?name=N[&zone=1]`: removes the packet cache's entries
//! of a name (or of a whole zone) before their TTLs run out, and says how
//! many in a small JSON body. [`parse_query`] reads the query string (pure).
//!
//! Answers: 200 with `{"name":…,"zone":…,"removed":N}`; 400 when `name` is
//! missing or not a DNS name, or `zone` is not a yes/no; 403 for a request
//! a web page could have made (see below); 404 when the LS keeps no packet
//! cache (there is no cache resource to flush: a client, such as `dnslb
//! cache flush`, tells that apart from a wrong address); 405 for any method
//! but POST (axum's, with `Allow: POST`); 503 (with `Retry-After`) when
//! another flush has held the walk for [`FLUSH_WAIT`].
//!
//! No cross-site request: the listener is bound to loopback, but a web page
//! the operator opens can still send a form POST there (a "simple" request,
//! no CORS preflight), or reach it by DNS rebinding. A flush must carry the
//! header [`FLUSH_HEADER`], which no form can set and which makes a
//! browser ask the server first (CORS preflight, which this server never
//! grants); and a request carrying `Origin` or `Sec-Fetch-Site` (what
//! browsers add, a rebound same-origin page included, and `curl` or
//! `dnslb` never do) is refused.
//!
//! Bounded: one flush walks the caches at a time (each walk takes every
//! shard's lock in turn, ~0.1 s per 100,000 entries); the others wait for
//! it, at most [`FLUSH_WAIT`].
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};

use super::control::HttpPeer;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hickory_proto::rr::Name;

use super::Shared;
use super::json::json;
use crate::config::parse_name;

/// The path of the flush endpoint.
pub const FLUSH_PATH: &str = "/cache/flush";
/// The header a flush must carry (any value): no HTML form can set it, and
/// a script across sites cannot without a CORS preflight.
pub const FLUSH_HEADER: &str = "x-dnslb-flush";
/// How long a flush waits for another one's walk to end before it gets 503.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// A flush asked for: the name, and whether the whole zone under it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushQuery {
    /// The name (fully qualified).
    pub name: Name,
    /// Every name at or under `name`.
    pub zone: bool,
}

/// The body of a 200.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FlushAnswer {
    /// The name flushed, as a DNS name (`a.example.`).
    pub name: String,
    /// Whether the zone under it was flushed too.
    pub zone: bool,
    /// Entries removed.
    pub removed: usize,
}

/// Reads `name=N` and the optional `zone=1` of a query string
/// (percent-decoded, `+` as a space).
///
/// # Errors
/// A line saying what is wrong: no name, a bad name, a bad `zone`.
pub fn parse_query(query: &str) -> Result<FlushQuery, String> {
    let mut name = None;
    let mut zone = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "name" => name = Some(parse_name(&value).map_err(|e| format!("name: {e}"))?),
            "zone" => {
                zone = match &*value {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" | "" => false,
                    other => return Err(format!("zone: expected 1 or 0, got '{other}'")),
                }
            }
            _ => {}
        }
    }
    let name =
        name.ok_or_else(|| "missing name: POST /cache/flush?name=NAME[&zone=1]".to_owned())?;
    Ok(FlushQuery { name, zone })
}

/// Why a request could not have come from a web page, or `Err` with the
/// reason it may have (see the module header).
///
/// # Errors
/// The line of the 403.
pub(super) fn not_from_a_browser(headers: &HeaderMap) -> Result<(), &'static str> {
    if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
        return Err("a flush is not taken from a web page (Origin or Sec-Fetch-Site present)\n");
    }
    if !headers.contains_key(FLUSH_HEADER) {
        return Err("a flush needs the header 'X-Dnslb-Flush: 1' (dnslb cache flush sends it)\n");
    }
    Ok(())
}

/// `POST /cache/flush`.
pub(super) async fn cache_flush(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(HttpPeer(peer)): ConnectInfo<HttpPeer>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(why) = not_from_a_browser(&headers) {
        let counters = shared.balancer.control_counters();
        counters.forbidden.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    // `api_key` and `control_allow`, as for every state-changing request.
    if let Some(refused) = super::control::gate(&shared.balancer, peer.ip(), &headers, true) {
        return refused;
    }
    let r = flush_now(&shared, &uri).await;
    super::control::settled(&shared.balancer, r)
}

/// The flush of a `POST /cache/flush` let through.
async fn flush_now(shared: &Shared, uri: &Uri) -> Response {
    let q = match parse_query(uri.query().unwrap_or_default()) {
        Ok(q) => q,
        Err(why) => return (StatusCode::BAD_REQUEST, why + "\n").into_response(),
    };
    // One walk at a time; a flush that waits too long is told to come back.
    let flushes = shared.balancer.flushes();
    let Ok(_walking) = tokio::time::timeout(FLUSH_WAIT, flushes.http_walk.lock()).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "another flush is walking the cache; try again\n",
        )
            .into_response();
    };
    // The walk over every entry runs off the runtime's threads.
    let (balancer, name, zone) = (shared.balancer.clone(), q.name.clone(), q.zone);
    let walk = tokio::task::spawn_blocking(move || balancer.flush_cache(&name, zone));
    let Ok(flushed) = walk.await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the flush failed\n").into_response();
    };
    match flushed {
        Some(removed) => {
            let body = FlushAnswer {
                name: q.name.to_ascii(),
                zone: q.zone,
                removed,
            };
            json(StatusCode::OK, &body)
        }
        None => (
            StatusCode::NOT_FOUND,
            "this LS keeps no packet cache (no [ls.cache], no pool cache)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_a_web_page_could_send_is_refused() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            not_from_a_browser(&h)
        };
        assert!(with(&[("x-dnslb-flush", "1")]).is_ok());
        assert!(
            with(&[("X-Dnslb-Flush", "yes")]).is_ok(),
            "any case, any value"
        );
        // A form POST: no custom header, a form content type.
        let form = with(&[("content-type", "application/x-www-form-urlencoded")]);
        assert!(form.unwrap_err().contains("X-Dnslb-Flush"));
        // A script on a rebound name may set the header: its Origin tells.
        for browser in [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "same-origin"),
        ] {
            assert!(
                with(&[("x-dnslb-flush", "1"), browser]).is_err(),
                "{browser:?}"
            );
        }
    }

    #[test]
    fn the_query_string_names_a_name_and_maybe_its_zone() {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let q = parse_query("name=a.example").unwrap();
        assert_eq!((q.name, q.zone), (name("a.example."), false));
        let q = parse_query("zone=1&name=sub%2Eexample.").unwrap();
        assert_eq!((q.name, q.zone), (name("sub.example."), true));
        assert!(!parse_query("name=x.&zone=0").unwrap().zone);
        for (bad, says) in [
            ("", "missing name"),
            ("zone=1", "missing name"),
            ("name=", "name:"),
            ("name=a+b.example", "name:"),
            ("name=a..b", "name:"),
            ("name=a.&zone=maybe", "zone: expected 1 or 0, got 'maybe'"),
        ] {
            let err = parse_query(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
