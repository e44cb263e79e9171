//! What a fast-path worker keeps per query: its flights (a client query in
//! flight, with its upstream attempts), the late entries of attempts whose
//! flight ended before their answer came, and the slab both live in (no
//! allocation once warm); a flight's resolution and attempts kept in place
//! by its slot from one flight to the next ([`Track`]); and the type of the timer heap that names them
//! ([`Timers`], fired in `timers`). The rules for late entries are the upstream
//! core's ([`crate::ls::upstream::ids::LateEntry`]); a worker adds where the ID
//! is and when its timer fires. Queries a `delay_ms` rule holds wait in a
//! slab of their own ([`Delayed`]), on the same heap.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use smallvec::SmallVec;
use tokio::time::Instant;

use crate::ls::backend::InFlight;
use crate::ls::resolution::Resolution;
use crate::ls::state::{Job, LsState};
use crate::ls::upstream::ids;
use crate::server::batch;

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerFor {
    Flight(u32),
    Late(u32),
    /// A query a `delay_ms` rule holds ([`Delayed`]).
    Delayed(u32),
}

/// A client query a `delay_ms` rule holds until `at` (the worker goes on
/// meanwhile); then it goes on as if it had just been admitted.
pub(super) struct Delayed {
    /// The client's bytes (a spare buffer, given back when it goes on).
    pub(super) raw: Vec<u8>,
    pub(super) client: batch::Peer,
    pub(super) state: Arc<LsState>,
    pub(super) admitted: crate::ls::door::Admitted,
    /// The client's group (its place among the held, [`Holders`](crate::guard::fair::Holders)).
    pub(super) group: std::net::IpAddr,
    /// When it goes on.
    pub(super) at: Instant,
    /// When it arrived.
    pub(super) received: Instant,
}

/// The timer heap, earliest first.
pub(super) type Timers = BinaryHeap<Reverse<(Instant, TimerFor)>>;

/// One upstream query of a flight.
pub(super) struct Attempt {
    pub(super) backend: usize,
    /// The upstream socket's slot.
    pub(super) sock: usize,
    pub(super) id: u16,
    /// Keeps the backend's `outstanding` until the answer or the deadline.
    pub(super) inflight: Option<InFlight>,
    /// The kernel refused to send it: no answer can come, its try has
    /// ended for the flight; it stays here (its ID in use, its backend's
    /// `outstanding` held) until the flight ends and retires it with the
    /// others, as the async path's abandoned waiter ([`crate::ls::upstream::shared`]).
    pub(super) refused: bool,
}

/// One client query in flight.
pub(super) struct Flight {
    pub(super) state: Arc<LsState>,
    pub(super) job: Job,
    pub(super) client: batch::Peer,
    /// The client's group, holding one place of the worker's in-flight
    /// bound ([`crate::guard::fair`]) until the flight ends.
    pub(super) group: std::net::IpAddr,
    /// The winning response, or the negative one that may be passed on.
    pub(super) kept: Option<Vec<u8>>,
    pub(super) arrived: std::time::Instant,
    /// When its query arrived (dnstap's `query_time` of the answer).
    pub(super) received: Instant,
    /// The time of this flight's pending timer entry (stale ones are skipped).
    pub(super) timer_at: Option<Instant>,
}

/// The large part of a flight, kept in place by its slot (the worker's
/// `tracks`, by the flight's index) when the flight ends and made the next
/// flight's there ([`Resolution::restart`]): a flight's resolution and
/// attempts are inline lists, most of its bytes, and are written once per
/// query where they live, not made elsewhere and copied in. A track whose
/// flight has ended holds nothing (its attempts taken out, its resolution
/// plain data).
pub(super) struct Track {
    pub(super) res: Resolution,
    pub(super) attempts: SmallVec<[Attempt; 4]>,
}

/// Flight `idx` and its track, when it is live.
pub(super) fn both<'a>(
    flights: &'a mut Slab<Flight>,
    tracks: &'a mut [Track],
    idx: u32,
) -> Option<(&'a mut Flight, &'a mut Track)> {
    Some((flights.get_mut(idx)?, tracks.get_mut(idx as usize)?))
}

/// The track of slot `idx` (of a live flight when the caller knows it is).
pub(super) fn track(tracks: &mut [Track], idx: u32) -> Option<&mut Track> {
    tracks.get_mut(idx as usize)
}

/// An upstream query whose flight has ended: its late entry, and where its
/// ID is.
pub(super) struct Late {
    pub(super) sock: usize,
    pub(super) id: u16,
    pub(super) entry: ids::LateEntry,
    /// When its pending timer entry fires (an entry for another time is
    /// stale: its slot was reused): at the query's deadline, then at the
    /// end of its grace.
    pub(super) timer_at: Instant,
}

/// A slab: values by index, with a free list (no allocation once warm).
pub(super) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    pub(super) len: usize,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn insert(&mut self, v: T) -> u32 {
        self.len += 1;
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.items.get_mut(i as usize)
        {
            *slot = Some(v);
            return i;
        }
        self.items.push(Some(v));
        u32::try_from(self.items.len() - 1).unwrap_or(u32::MAX)
    }

    pub(super) fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    /// Takes every item out, in slot order (at shutdown).
    pub(super) fn drain(&mut self) -> Vec<T> {
        let all: Vec<T> = self.items.iter_mut().filter_map(Option::take).collect();
        self.items.clear();
        self.free.clear();
        self.len = 0;
        all
    }

    /// Drops item `i` where it is: no copy of it moved out (a flight is
    /// large).
    pub(super) fn discard(&mut self, i: u32) {
        if let Some(slot) = self.items.get_mut(i as usize)
            && slot.is_some()
        {
            *slot = None;
            self.free.push(i);
            self.len -= 1;
        }
    }

    pub(super) fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(v)
    }
}
