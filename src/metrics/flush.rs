//! `POST /cache/flush?name=N[&zone=1]`: removes the packet cache's entries
//! of a name (or of a whole zone) before their TTLs run out, and says how
//! many in a small JSON body. [`parse_query`] reads the query string (pure).
//!
//! Answers: 200 with `{"name":…,"zone":…,"removed":N}`; 400 when `name` is
//! missing or not a DNS name, or `zone` is not a yes/no; 404 when the LS
//! keeps no packet cache (there is no cache resource to flush: a client, such
//! as `dnslb cache flush`, tells that apart from a wrong address); 405 for
//! any method but POST (axum's, with `Allow: POST`).
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hickory_proto::rr::Name;

use super::{Shared, json};
use crate::config::parse_name;

/// The path of the flush endpoint.
pub const FLUSH_PATH: &str = "/cache/flush";

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

/// `POST /cache/flush`.
pub(super) async fn cache_flush(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let q = match parse_query(uri.query().unwrap_or_default()) {
        Ok(q) => q,
        Err(why) => return (StatusCode::BAD_REQUEST, why + "\n").into_response(),
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
