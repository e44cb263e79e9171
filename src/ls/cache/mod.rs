//! The LS's packet cache (docs/CONFIG.md (the LS) "Packet cache", `[ls.cache]`): backends'
//! answers kept by question and served again from memory, fresh (TTLs aged)
//! or stale (RFC 8767) when no backend answers. Pure: no socket, no clock of
//! its own (every call takes `now`), no global: a [`PacketCache`] is a value
//! built from a [`CacheConfig`], owned by whoever serves from it (the LS, a
//! pool).
//!
//! # What is kept, and how it is found
//! An entry is found by [`key::CacheKey`]: the question's name lower-cased (read
//! from the query's wire bytes in place), type and class, the DO and CD
//! bits, whether the query had EDNS, and whether it came over UDP or TCP (a
//! DO=1 answer's signatures never reach a DO=0 client, a TCP answer too
//! large for UDP never a UDP client; a TCP client whose own key misses is
//! served a UDP client's entry, complete since TC=1 answers are never kept,
//! so a client sent to TCP by a cut answer finds it there). The index holds the key's hash (keyed at
//! random per cache, so names cannot be picked to collide); a hit compares
//! the full key, so a collision is a miss, never another name's answer.
//! `stored` says which answers are kept, for how long, and in what form;
//! `serve` how a hit is written for its client.
//!
//! # Bounds and eviction: CLOCK, negatives apart
//! At most `max_entries` answers. Three quarters of them are for positive
//! answers and a quarter for negative ones (NXDOMAIN, NODATA), each its own
//! ring: a flood of queries for names that do not exist (random
//! subdomains) churns the negative ring only and never pushes out a
//! positive answer, fresh or kept for stale serving.
//!
//! Each ring evicts by CLOCK (second chance): a hit sets the entry's
//! reference bit; when the ring is full, the hand skips (and clears) set
//! bits and replaces the first entry whose bit is clear or which has
//! expired past the stale window. It keeps the hot set like LRU does, but a
//! hit only sets a bit (no list to relink under the lock), and an insert
//! costs a short sweep, not a scan: an entry is evicted only after a whole
//! turn without a hit. A name asked once (a scan, a random subdomain) is
//! inserted with its bit clear and goes first. dnsdist instead refuses
//! inserts into a full shard, so a cache that filled with yesterday's names
//! never learns today's.
//!
//! # Sharing: sharded, short locks
//! One cache for all workers, in 16 shards (fewer for small caches) picked
//! by the key's hash, each behind its own `Mutex`. A hit holds its shard's
//! lock for an index probe, a key comparison and an `Arc` clone; the answer
//! is written out after the lock is dropped. A per-worker cache would need
//! no lock at all, but each worker would warm its own copy (with
//! SO_REUSEPORT a client's queries land on every worker) and hold a
//! `max_entries` of its own; shared, the hit ratio does not drop as workers
//! are added. What sharing costs, measured (callgrind, one worker, hits at
//! 2,000 QPS; docs/BENCHMARKS.md "Packet cache"): the whole lookup is 375
//! instructions of the 11,966 a hit costs, of which writing the answer is
//! 192 and the index probe 78: the lock, its release and the `Arc` clone
//! are under 1% of a hit, all a per-worker cache could save.
//!
//! # Stale answers (RFC 8767)
//! An entry expired for less than `stale_ttl` is not served by
//! [`PacketCache::lookup`] (the query is forwarded, to refresh it) but by
//! [`PacketCache::stale`], which the LS calls when a query ends without a
//! final answer: every TTL 30, an EDE 3 (19 for an NXDOMAIN) in the OPT.
//! That also marks the entry "failed" for 30 s (the failure-recheck timer):
//! meanwhile a lookup serves it stale at once instead of waiting out the
//! deadline again: every query while no backend of its route is up
//! ([`Want::FreshOrRecheck`]); while one is ([`Want::Fresh`]), every query
//! but one a [`RETRY_EVERY`], starting with the first after the failure,
//! which is forwarded to refresh it: a refresh lost to one dropped datagram
//! is tried again at once, not 30 s later.
//!
//! # Flushes
//! [`PacketCache::flush`] removes the entries of a name, or of a whole zone
//! (every name at or under it), for NOTIFY and the admin endpoint: a walk
//! over every shard, each locked in turn. An answer in flight during a
//! flush may have been computed before the change the flush is for: each
//! flush first moves the cache's generation on, a query takes the
//! generation when it is sent ([`PacketCache::generation`]), and its answer
//! is not kept when a flush begun meanwhile covers its name (the last 64
//! flushes' names are remembered; past that, any) ([`PacketCache::insert_since`], checked under the shard's lock, so an
//! answer is either kept before the walk passes its shard, and removed by
//! it, or refused after).
//!
//! # A newer answer retires the older one
//! A final answer the rules refuse to keep (a zero TTL, too large, a
//! negative without SOA: [`Refused::supersedes`]) still removes the entry
//! of its key: the older data is not served again, neither fresh nor stale,
//! and the name's failure-recheck ends with it (a backend that answers is
//! asked every time).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::config::CacheConfig;
use crate::dns::Transport;
use crate::guard::keyed_hash::KeyedState;

mod key;
mod names;
mod serve;
mod shard;
mod stored;
#[cfg(test)]
mod tests;

pub use key::{CacheClient, CacheKey};
pub use serve::{EDE_STALE, EDE_STALE_NXDOMAIN, STALE_TTL};
pub use stored::{Kind, Refused};

use shard::Shard;
use stored::{Caps, Entry};

/// Most shards.
const SHARDS: usize = 16;
/// Entries per shard below which a cache has fewer shards.
const SHARD_MIN: usize = 256;
/// How long a name whose query failed is answered stale at once (RFC 8767
/// §5: the failure-recheck timer, 30 s suggested).
pub const FAILURE_RECHECK: Duration = Duration::from_secs(30);

/// While a backend of its route is up, how often a query for a name in its
/// failure-recheck window is forwarded to refresh it (the others meanwhile
/// are answered stale at once).
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What a lookup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// A fresh answer, TTLs aged.
    Fresh,
    /// A stale answer (TTL 30, EDE 3 or 19).
    Stale,
    /// Nothing: the buffer holds nothing to send.
    Miss,
}

/// What a lookup may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A backend of its route is up: fresh, or, for a name in its
    /// failure-recheck window, stale at once except for one query a
    /// [`RETRY_EVERY`] (the first one after the failure included), which
    /// is forwarded to refresh it: a refresh lost to one dropped datagram
    /// does not keep a name stale for 30 s while its backends answer, and a
    /// name whose backend keeps failing it costs one client a second the
    /// wait for the deadline, not every client.
    Fresh,
    /// Fresh, or stale while its name's last query failed within
    /// [`FAILURE_RECHECK`] (RFC 8767 §5: no backend to wait for again).
    FreshOrRecheck,
    /// Anything within the stale window: the query ended without a final
    /// answer (the entry is marked failed).
    Stale,
}

/// The cache's counters, summed over its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fresh answers served.
    pub hits: u64,
    /// Lookups that found nothing to serve.
    pub misses: u64,
    /// Stale answers served.
    pub stale: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Entries held now.
    pub entries: u64,
}

impl CacheStats {
    /// The counters of two caches together.
    pub fn plus(self, o: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            stale: self.stale + o.stale,
            evictions: self.evictions + o.evictions,
            inserts: self.inserts + o.inserts,
            entries: self.entries + o.entries,
        }
    }
}

/// A packet cache: see the module header.
#[derive(Debug)]
pub struct PacketCache {
    /// The shards, picked by a key's hash.
    shards: Box<[Mutex<Shard>]>,
    /// Keys the hash of every [`CacheKey`] (a fast keyed hash: one per
    /// hit and per miss).
    hasher: KeyedState,
    /// Lifetime caps.
    caps: Caps,
    /// How long past expiry an entry may be served stale.
    stale_ttl: Duration,
    /// The config it was built from.
    config: CacheConfig,
    /// Lookups that found nothing to serve (counted outside the shards: a
    /// miss may probe two keys, and is followed by a forward anyway).
    misses: AtomicU64,
    /// Flushes begun: an answer to a query sent under an older generation
    /// is not kept when one of the flushes since covers its name.
    generation: AtomicU64,
    /// The last [`FLUSHES_KEPT`] flushes: each one's generation and the
    /// names it removed (a flush of one zone does not keep every other
    /// zone's answers in flight out of the cache).
    flushes: Mutex<std::collections::VecDeque<(u64, FlushScope)>>,
}

/// Flushes remembered for answers in flight; an answer older than all of
/// them is not kept.
const FLUSHES_KEPT: usize = 64;

/// The names one flush removed (lower-case wire form).
#[derive(Debug, Clone)]
enum FlushScope {
    /// This name only.
    Name(Vec<u8>),
    /// Every name at or under any of these.
    Zones(Vec<Vec<u8>>),
}

impl FlushScope {
    fn covers(&self, name: &[u8]) -> bool {
        match self {
            FlushScope::Name(n) => n.as_slice() == name,
            FlushScope::Zones(zs) => zs.iter().any(|z| at_or_under(name, z)),
        }
    }
}

impl PacketCache {
    /// An empty cache bounded as `config` says (its index allocated now).
    pub fn new(config: &CacheConfig) -> Self {
        let max = config.max_entries.max(1);
        let n = (max / SHARD_MIN).clamp(1, SHARDS);
        let negative = max / 4;
        let positive = max - negative;
        let share = |total: usize, i: usize| total / n + usize::from(i < total % n);
        let shards = (0..n)
            .map(|i| Mutex::new(Shard::new(share(positive, i), share(negative, i))))
            .collect();
        PacketCache {
            shards,
            hasher: KeyedState::default(),
            caps: Caps {
                max_ttl: config.max_ttl,
                neg_ttl: config.neg_ttl,
            },
            stale_ttl: Duration::from_secs(u64::from(config.stale_ttl)),
            config: *config,
            misses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            flushes: Mutex::default(),
        }
    }

    /// Whether a flush begun since generation `sent_at` covers `name` (or
    /// the flushes since are no longer all remembered).
    fn flushed_since(&self, sent_at: u64, name: &[u8]) -> bool {
        let flushes = self.flushes.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = flushes.front().map_or(u64::MAX, |(g, _)| *g);
        if oldest > sent_at.saturating_add(1) {
            return true;
        }
        flushes
            .iter()
            .any(|(g, scope)| *g > sent_at && scope.covers(name))
    }

    /// The flush generation now: taken when a query is sent upstream and
    /// given back to [`PacketCache::insert_since`] with its answer.
    pub fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// The config it was built from.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The key of `query` and what a hit needs of its client, or `None`
    /// when the cache does not answer it (not a plain query).
    pub fn key(&self, query: &[u8], transport: Transport) -> Option<(CacheKey, CacheClient)> {
        key::read(query, transport, &self.hasher)
    }

    /// The shard of `hash`, locked (a poisoned lock is taken as it is: a
    /// shard is consistent between any two of its calls).
    fn shard(&self, hash: u64) -> Option<MutexGuard<'_, Shard>> {
        // The middle bits: the index uses the low ones for its buckets.
        let i = usize::try_from(hash >> 40).unwrap_or_default() % self.shards.len().max(1);
        let s = self.shards.get(i)?;
        Some(s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The answer to `query` (read by [`PacketCache::key`]) for its client
    /// at `now`, written into `out`: fresh, or stale when its name failed
    /// within the last [`FAILURE_RECHECK`]; else [`Hit::Miss`] (forward it).
    /// Allocates nothing when `out` has room for the answer.
    pub fn lookup(&self, query: &[u8], t: Transport, now: Instant, out: &mut Vec<u8>) -> Hit {
        self.serve(query, t, now, Want::FreshOrRecheck, out)
    }

    /// The answer to `query` for a query that ended without a final
    /// answer: an entry expired for less than `stale_ttl`, served stale
    /// (TTL 30, EDE) and marked failed for [`FAILURE_RECHECK`] (or a fresh
    /// one, stored meanwhile, served as a hit); else [`Hit::Miss`] (answer
    /// by `on_timeout`).
    pub fn stale(&self, query: &[u8], t: Transport, now: Instant, out: &mut Vec<u8>) -> Hit {
        self.serve(query, t, now, Want::Stale, out)
    }

    /// The answer to `query` for its client at `now`, as `want` allows,
    /// written into `out`. A TCP client is also served what a UDP client's
    /// question left (never a truncated answer: those are not kept), so a
    /// client sent to TCP by TC=1 finds there the answer it was cut from.
    pub fn serve(
        &self,
        query: &[u8],
        t: Transport,
        now: Instant,
        want: Want,
        out: &mut Vec<u8>,
    ) -> Hit {
        // Read into a key here, not returned: no copy of its name made.
        let mut key = CacheKey::empty();
        let Some(client) = key::read_into(query, t, &self.hasher, &mut key) else {
            return Hit::Miss;
        };
        let mut hit = self.get(&key, &client, query, now, want, out);
        if hit == Hit::Miss
            && let Some(udp) = key.as_udp(&self.hasher)
        {
            hit = self.get(&udp, &client, query, now, want, out);
        }
        if hit == Hit::Miss && want != Want::Stale {
            self.misses.fetch_add(1, Relaxed);
        }
        hit
    }

    /// [`PacketCache::serve`] of the entry under `key` alone (no miss
    /// counted).
    fn get(
        &self,
        key: &CacheKey,
        client: &CacheClient,
        query: &[u8],
        now: Instant,
        want: Want,
        out: &mut Vec<u8>,
    ) -> Hit {
        let Some(mut shard) = self.shard(key.hash) else {
            return Hit::Miss;
        };
        let stale_ttl = self.stale_ttl;
        let found = shard.get(key).and_then(|slot| {
            let e = &slot.entry;
            let fresh = now < e.expires;
            let in_window = !stale_ttl.is_zero() && now < e.expires + stale_ttl;
            let recheck = slot.failed_until.is_some_and(|t| now < t);
            let hit = if fresh {
                Hit::Fresh
            } else if in_window && want == Want::Stale {
                slot.failed_until = Some(now + FAILURE_RECHECK);
                slot.retry_at = Some(now);
                Hit::Stale
            } else if in_window
                && recheck
                && (want == Want::FreshOrRecheck || slot.retry_at.is_some_and(|t| now < t))
            {
                Hit::Stale
            } else {
                if recheck {
                    // This one is forwarded: the next in a second.
                    slot.retry_at = Some(now + RETRY_EVERY);
                }
                return None;
            };
            Shard::touch(slot);
            Some((hit, Arc::clone(&slot.entry)))
        });
        match &found {
            Some((Hit::Stale, _)) => shard.counts.stale += 1,
            Some(_) => shard.counts.hits += 1,
            None => {}
        }
        drop(shard);
        match found {
            Some((hit, entry))
                if serve::write(&entry, query, client, now, hit == Hit::Stale, out) =>
            {
                hit
            }
            _ => {
                out.clear();
                Hit::Miss
            }
        }
    }

    /// Keeps `answer`, a backend's answer to `query` (never one the LS made
    /// up), received at `now`, if the rules of `stored` allow; no flush
    /// check (see [`PacketCache::insert_since`]).
    ///
    /// # Errors
    ///
    /// Why it was not kept (the query is not cacheable:
    /// [`Refused::OtherQuestion`]).
    pub fn insert(
        &self,
        query: &[u8],
        transport: Transport,
        answer: &[u8],
        now: Instant,
    ) -> Result<(), Refused> {
        self.insert_since(query, transport, answer, now, self.generation())
    }

    /// [`PacketCache::insert`] of the final answer to a query sent when the
    /// flush generation was `sent_at`: not kept when a flush has begun
    /// since ([`Refused::Flushed`]). A refused answer that is new data
    /// ([`Refused::supersedes`]) removes the entry of its key and the same
    /// question's over the other transport.
    ///
    /// # Errors
    ///
    /// Why it was not kept.
    pub fn insert_since(
        &self,
        query: &[u8],
        transport: Transport,
        answer: &[u8],
        now: Instant,
        sent_at: u64,
    ) -> Result<(), Refused> {
        let (key, _) = self.key(query, transport).ok_or(Refused::OtherQuestion)?;
        let kept = self.insert_keyed(&key, answer, now, sent_at);
        if let Err(why) = kept
            && why.supersedes()
        {
            for k in [key.other_transport(&self.hasher), key] {
                if let Some(mut shard) = self.shard(k.hash) {
                    shard.remove(&k);
                }
            }
        }
        kept
    }

    /// Stores the entry of `answer` under `key`, unless a flush has begun
    /// since generation `sent_at`.
    fn insert_keyed(
        &self,
        key: &CacheKey,
        answer: &[u8],
        now: Instant,
        sent_at: u64,
    ) -> Result<(), Refused> {
        let entry: Entry = stored::analyse(answer, key, self.caps, now)?;
        if let Some(mut shard) = self.shard(key.hash) {
            // Under the shard's lock: a flush moves the generation before
            // its walk takes this lock (see the module header).
            if self.generation() != sent_at && self.flushed_since(sent_at, key.name()) {
                return Err(Refused::Flushed);
            }
            shard.insert(key.hash, entry, now, self.stale_ttl);
        }
        Ok(())
    }

    /// Removes the entries of `name` (every type, class and flag), or with
    /// `zone` of every name at or under it; how many.
    pub fn flush(&self, name: &Name, zone: bool) -> usize {
        let wire = lower_wire(name);
        let scope = if zone {
            FlushScope::Zones(vec![wire.clone()])
        } else {
            FlushScope::Name(wire.clone())
        };
        self.remove_where(scope, |e| {
            if zone {
                at_or_under(&e.key.name, &wire)
            } else {
                *e.key.name == *wire
            }
        })
    }

    /// Removes the entries of every name at or under any of `zones`, in one
    /// walk; how many.
    pub fn flush_zones(&self, zones: &[Name]) -> usize {
        let wires: Vec<Vec<u8>> = zones.iter().map(lower_wire).collect();
        self.remove_where(FlushScope::Zones(wires.clone()), |e| {
            wires.iter().any(|w| at_or_under(&e.key.name, w))
        })
    }

    /// Removes the entries `doomed` picks, each shard locked in turn; how
    /// many.
    fn remove_where(&self, scope: FlushScope, doomed: impl Fn(&Entry) -> bool) -> usize {
        // Before the walk: an answer in flight is kept before it, and then
        // removed, or refused. The scope is remembered before the
        // generation moves, so an insert that sees the new generation
        // finds it.
        {
            let mut flushes = self.flushes.lock().unwrap_or_else(PoisonError::into_inner);
            let generation = self.generation.load(SeqCst) + 1;
            if flushes.len() == FLUSHES_KEPT {
                flushes.pop_front();
            }
            flushes.push_back((generation, scope));
            self.generation.fetch_add(1, SeqCst);
        }
        let mut removed = 0;
        for s in self.shards.iter() {
            let mut shard = s.lock().unwrap_or_else(PoisonError::into_inner);
            removed += shard.remove_if(&doomed);
        }
        removed
    }

    /// The counters, summed over the shards.
    pub fn stats(&self) -> CacheStats {
        let mut out = CacheStats {
            misses: self.misses.load(Relaxed),
            ..CacheStats::default()
        };
        for s in self.shards.iter() {
            let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
            let c = shard.counts;
            out.hits += c.hits;
            out.stale += c.stale;
            out.evictions += c.evictions;
            out.inserts += c.inserts;
            out.entries += shard.len() as u64;
        }
        out
    }
}

/// `name` in wire form, lower-cased.
fn lower_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(crate::dns::NAME_MAX);
    for label in name.iter() {
        // Labels are at most 63 bytes: their length fits a byte.
        wire.push(u8::try_from(label.len()).unwrap_or(63));
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Whether the wire name `name` is `zone` or under it (both lower-cased,
/// uncompressed): `zone` is a suffix of it starting at a label.
fn at_or_under(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&len) = name.get(at) {
        if name.get(at..) == Some(zone) {
            return true;
        }
        if len == 0 {
            return false;
        }
        at += 1 + usize::from(len);
    }
    false
}
