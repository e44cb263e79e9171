//! The TCP connections to `proxy = true` backends kept between queries of
//! one client connection: a connection opens with its client's PROXY
//! header, so it can carry another query only of that same client (the
//! same address, port and address reached: the same client connection),
//! as dnsdist keeps one backend connection per client connection. After
//! an answer the connection waits here, keyed by its backend and header,
//! for at most [`IDLE`]; the next query of that client takes it instead of
//! opening one (and leaving one more TIME_WAIT and local port behind on the
//! LS's host for each query). At most [`PER_CLIENT`] wait for one client;
//! each holds its place under the proxy connections' bound (1,024), and a query
//! that finds no place closes the oldest waiting connection for one.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::SemaphorePermit;
use tokio::time::Instant;

/// How long a connection waits for its client's next query.
pub const IDLE: Duration = Duration::from_secs(5);
/// Past this many clients waiting, a put sweeps the stale ones of all.
const SWEEP_ABOVE: usize = 512;
/// The most connections waiting for one client (its pipelined queries may
/// have opened several at once).
pub const PER_CLIENT: usize = 4;

/// A connection, open with its header, and its place under the bound.
pub struct Held {
    /// The connection.
    pub conn: TcpStream,
    /// Its place under the proxy connections' bound (1,024).
    pub place: SemaphorePermit<'static>,
}

/// One waiting connection.
struct Waiting {
    held: Held,
    since: Instant,
}

type Key = (SocketAddr, Vec<u8>);

/// The waiting connections.
static WAITING: Mutex<Option<HashMap<Key, Vec<Waiting>>>> = Mutex::new(None);

/// Whether a connection that has waited since `since` may still be used at
/// `now` (pure: the policy).
#[must_use]
pub fn fresh(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) < IDLE
}

/// A waiting connection to `backend` opened with `head`, if one is fresh;
/// stale ones of that client are closed.
pub fn take(backend: SocketAddr, head: &[u8]) -> Option<Held> {
    let now = Instant::now();
    let mut map = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let map = map.as_mut()?;
    let key = (backend, head.to_vec());
    let list = map.get_mut(&key)?;
    list.retain(|w| fresh(w.since, now));
    let got = list.pop().map(|w| w.held);
    if list.is_empty() {
        map.remove(&key);
    }
    got
}

/// Keeps `held` (to `backend`, opened with `head`) for its client's next
/// query; stale connections of every client are closed on the way (at
/// most once a second's worth of work: the map is swept when it is taken
/// a place from, or when it holds many).
pub fn put(backend: SocketAddr, head: &[u8], held: Held) {
    let now = Instant::now();
    let mut map = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let map = map.get_or_insert_with(HashMap::new);
    if map.len() >= SWEEP_ABOVE {
        sweep(map, now);
    }
    let list = map.entry((backend, head.to_vec())).or_default();
    list.retain(|w| fresh(w.since, now));
    if list.len() < PER_CLIENT {
        list.push(Waiting { held, since: now });
    }
}

/// Closes one waiting connection (stale ones first, else the oldest) so
/// that its place can be taken; `false` when none waits.
pub fn close_one() -> bool {
    let now = Instant::now();
    let mut map = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(map) = map.as_mut() else {
        return false;
    };
    if sweep(map, now) > 0 {
        return true;
    }
    // Each list is in the order its connections came back: its first is
    // its oldest.
    let oldest = map
        .iter()
        .filter_map(|(k, l)| l.first().map(|w| (w.since, k)))
        .min_by_key(|(since, _)| *since)
        .map(|(_, k)| k.clone());
    let Some(key) = oldest else {
        return false;
    };
    if let Some(list) = map.get_mut(&key) {
        list.remove(0);
        if list.is_empty() {
            map.remove(&key);
        }
    }
    true
}

/// Drops every stale connection of `map`: how many.
fn sweep(map: &mut HashMap<Key, Vec<Waiting>>, now: Instant) -> usize {
    let mut closed = 0;
    map.retain(|_, list| {
        let before = list.len();
        list.retain(|w| fresh(w.since, now));
        closed += before - list.len();
        !list.is_empty()
    });
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_fresh_for_its_idle_time_only() {
        let t0 = Instant::now();
        assert!(fresh(t0, t0));
        assert!(fresh(t0, t0 + IDLE - Duration::from_millis(1)));
        assert!(!fresh(t0, t0 + IDLE));
        // A clock read before `since` (another thread's) is not an age.
        assert!(fresh(t0 + Duration::from_secs(1), t0));
    }
}
