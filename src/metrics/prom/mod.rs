//! The Prometheus text exposition format (0.0.4), written straight from the balancer's
//! atomics, followed by the process metrics and `dnslb_build_info`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ls::backend::Backend;
use crate::ls::cache::CacheStats;
use crate::ls::invalidate::{FlushBy, FlushCounters};
use crate::ls::{Balancer, LsMetrics, LsState};

use super::process::{BUILD_COMMIT, BUILD_VERSION, ProcessStats};

mod doh3;
mod expo;
mod policy;
mod proxy;
mod xdp;
pub(crate) use expo::Expo;
use expo::seconds;
pub(crate) use xdp::write_xdp;

/// The name of rcode `i` as the `rcode` label shows it.
pub(super) fn rcode_name(i: usize) -> String {
    u16::try_from(i)
        .ok()
        .and_then(crate::dns::rcode_mnemonic)
        .map_or_else(|| format!("RCODE{i}"), str::to_owned)
}

/// The `rcode` label of slot `i` of an LS answers-by-rcode counter
/// ([`crate::ls::state::RCODE_SLOTS`]).
fn answer_rcode_label(i: usize) -> String {
    if i == crate::ls::state::OTHER_RCODE {
        "OTHER".to_owned()
    } else {
        rcode_name(i)
    }
}

/// `dnslb_ts_restarts_total{ts}`: the restarts of each table server `dnslb up`
/// supervises, from `(name, pid, restarts)`.
pub(super) fn render_ts_restarts(children: &[(String, Option<u32>, u64)]) -> String {
    let mut e = Expo(String::with_capacity(128 + children.len() * 64));
    e.family(
        "dnslb_ts_restarts_total",
        "counter",
        "Restarts of each table server dnslb up supervises (after an exit or a failed start).",
    );
    for (name, _, restarts) in children {
        e.sample("dnslb_ts_restarts_total", &[("ts", name)], restarts);
    }
    e.0
}

/// The balancer's metrics in the Prometheus text exposition format 0.0.4,
/// then this process's (`process_*`, read from `/proc/self` now) and
/// `dnslb_build_info`.
pub fn render_prometheus(balancer: &Balancer) -> String {
    let state = balancer.state();
    let mut e = Expo(String::with_capacity(8192 + state.backends.len() * 4096));
    write_balancer(&mut e, balancer.metrics(), &state.backends);
    write_pools(&mut e, &state);
    policy::write_rules(&mut e, &state);
    let mut caches = state.caches().peekable();
    if caches.peek().is_some() {
        let total = caches.fold(CacheStats::default(), |t, (_, c)| t.plus(&c.stats()));
        write_cache(&mut e, &total);
        write_flushes(&mut e, balancer.flushes());
    }
    write_notify(&mut e, balancer.flushes());
    policy::write_dynblocks(&mut e, balancer);
    if let Some(tls) = balancer.metrics().tls.get() {
        write_tls(&mut e, tls);
    }
    if let Some(doq) = balancer.metrics().doq.get() {
        write_doq(&mut e, "dnslb", doq);
    }
    if let Some(h3) = balancer.metrics().doh3.get() {
        doh3::write_doh3(&mut e, h3);
    }
    write_dnstap(&mut e, balancer.dnstap().stats().as_deref());
    write_xdp(&mut e, "dnslb", &balancer.metrics().xdp);
    proxy::write_proxy_headers(&mut e, balancer.proxy_gate.as_ref());
    write_process(&mut e, &ProcessStats::read());
    write_build_info(&mut e);
    e.0
}

/// DNS over QUIC's families (only with `[ls.quic]`, or `quic` in a
/// `[[ts]]`), each name after `prefix` (`dnslb`, `dnslb_ts`).
pub(super) fn write_doq(e: &mut Expo, prefix: &str, doq: &crate::server::doq::DoqStats) {
    let counted = format!(
        "Client queries received over DNS over QUIC (counted in {prefix}_queries_total too)."
    );
    let families = [
        (
            "connections_total",
            "DNS over QUIC connections whose handshake completed.",
            &doq.connections,
        ),
        ("queries_total", counted.as_str(), &doq.queries),
        (
            "refused_total",
            "DNS over QUIC connections refused at once: the connection cap was full.",
            &doq.refused,
        ),
        (
            "retries_total",
            "QUIC Retry packets sent to clients whose address was not yet validated.",
            &doq.retries,
        ),
        (
            "protocol_errors_total",
            "DNS over QUIC connections closed with DOQ_PROTOCOL_ERROR (a non-zero DNS ID, a malformed frame).",
            &doq.protocol_errors,
        ),
        (
            "resumed_total",
            "DNS over QUIC handshakes that resumed an earlier session (no certificate sent).",
            &*doq.resumed,
        ),
        (
            "early_answered_total",
            "DNS over QUIC queries sent in 0-RTT and answered before the handshake completed (replay-safe queries).",
            &doq.early_answered,
        ),
        (
            "early_held_total",
            "DNS over QUIC queries sent in 0-RTT that waited for the handshake (UPDATE, NOTIFY, zone transfers: not replay-safe).",
            &doq.early_held,
        ),
    ];
    for (name, help, n) in families {
        e.counter(&format!("{prefix}_doq_{name}"), help, n.load(Relaxed));
    }
}

/// The encrypted listeners' families (only with `[ls.tls]` or `[ls.https]`): handshakes done,
/// resumed, failed by reason, and certificate reloads.
fn write_tls(e: &mut Expo, tls: &crate::server::tls_stats::TlsStats) {
    use crate::server::tls_stats::HandshakeFailure;
    e.counter(
        "dnslb_tls_handshakes_total",
        "TLS handshakes completed on the DNS over TLS and HTTPS listeners, resumed ones included.",
        tls.handshakes.load(Relaxed),
    );
    e.counter(
        "dnslb_tls_resumptions_total",
        "TLS handshakes that resumed an earlier session (ticket or session id).",
        tls.resumed.load(Relaxed),
    );
    e.by_label(
        "dnslb_tls_handshake_failures_total",
        "TLS handshakes that failed, by reason.",
        "reason",
        HandshakeFailure::ALL
            .iter()
            .map(|why| why.as_str())
            .zip(&tls.failures),
    );
    e.by_label(
        "dnslb_encrypted_queries_total",
        "Client queries received over DNS over TLS and DNS over HTTPS (counted in dnslb_queries_total too).",
        "transport",
        [("tls", &tls.dot_queries), ("https", &tls.doh_queries)],
    );
    let refused = "dnslb_encrypted_connections_refused_total";
    e.family(
        refused,
        "counter",
        "New DNS over TLS and HTTPS connections closed before their handshake, by reason (acl: the client is outside allow; rate: over conn_rate_limit; cap: the transport's connection cap was full).",
    );
    for (transport, reason, c) in [
        ("tls", "acl", &tls.dot_acl_refused),
        ("https", "acl", &tls.doh_acl_refused),
        ("tls", "rate", &tls.dot_rate_refused),
        ("https", "rate", &tls.doh_rate_refused),
        ("tls", "cap", &tls.dot_cap_refused),
        ("https", "cap", &tls.doh_cap_refused),
    ] {
        e.sample(
            refused,
            &[("transport", transport), ("reason", reason)],
            c.load(Relaxed),
        );
    }
    e.counter(
        "dnslb_https_refused_total",
        "HTTP requests to the DNS over HTTPS listeners refused with a 4xx status (bad path, method, media type, size or message).",
        tls.doh_refused.load(Relaxed),
    );
    e.counter(
        "dnslb_https_forwarded_malformed_total",
        "DNS over HTTPS requests from a trusted proxy whose X-Forwarded-For could not be read (the proxy's address was used).",
        tls.doh_xff_malformed.load(Relaxed),
    );
    let gauge = "dnslb_tls_certificate_not_after_seconds";
    e.family(
        gauge,
        "gauge",
        "When the certificate each encrypted listener serves expires (its notAfter, Unix seconds).",
    );
    for (listener, at) in [("tls", &tls.dot_not_after), ("https", &tls.doh_not_after)] {
        let at = at.load(Relaxed);
        if at > 0 {
            e.sample(gauge, &[("listener", listener)], at.unsigned_abs());
        }
    }
    e.reloads(
        "dnslb_tls_cert_reloads_total",
        "Certificate reloads (SIGHUP) of [ls.tls] and [ls.https]: applied, or refused with the old certificate kept.",
        &tls.cert_reloads,
        &tls.cert_reloads_refused,
    );
}

/// The pools' families (none without `[[ls.pool]]`): client queries routed
/// to each, and their answers by rcode.
fn write_pools(e: &mut Expo, state: &LsState) {
    let pools: Vec<(&str, &crate::ls::PoolMetrics)> = state
        .pools
        .iter()
        .filter_map(|r| Some((r.name.as_deref()?, r.counters.as_deref()?)))
        .collect();
    if pools.is_empty() {
        return;
    }
    let (queries, answers) = ("dnslb_pool_queries_total", "dnslb_pool_answers_total");
    e.family(queries, "counter", "Client queries routed to each pool.");
    for (name, m) in &pools {
        e.sample(queries, &[("pool", name)], m.queries.load(Relaxed));
    }
    e.family(
        answers,
        "counter",
        "Answers to the queries routed to each pool, by rcode.",
    );
    for (name, m) in &pools {
        for (i, c) in m.answers.iter().enumerate() {
            let v = c.load(Relaxed);
            if i <= 5 || v > 0 {
                e.sample(
                    answers,
                    &[("pool", name), ("rcode", &answer_rcode_label(i))],
                    v,
                );
            }
        }
    }
    write_pool_caches(e, state);
}

/// One figure of a cache's counters.
type CacheFigure = fn(&CacheStats) -> u64;

/// One counter of a pool's.
type PoolCounter = fn(&crate::ls::PoolMetrics) -> &AtomicU64;

/// The pools' cache families: lookups by outcome for each pool whose
/// answers are cached; entries and evictions for each pool with a cache of
/// its own (the `[ls.cache]`'s are in the `dnslb_cache_*` totals).
fn write_pool_caches(e: &mut Expo, state: &LsState) {
    let cached: Vec<(&str, &crate::ls::PoolMetrics)> = state
        .pools
        .iter()
        .filter(|r| r.cache.is_some())
        .filter_map(|r| Some((r.name.as_deref()?, r.counters.as_deref()?)))
        .collect();
    #[rustfmt::skip]
    let families: [(&str, &str, PoolCounter); 3] = [
        ("dnslb_pool_cache_hits_total", "Queries routed to each pool answered fresh from its cache.", |m| &m.cache_hits),
        ("dnslb_pool_cache_misses_total", "Queries routed to each pool its cache had no answer for.", |m| &m.cache_misses),
        ("dnslb_pool_cache_stale_total", "Queries routed to each pool answered stale from its cache (RFC 8767).", |m| &m.cache_stale),
    ];
    for (family, help, counter) in families {
        if cached.is_empty() {
            break;
        }
        e.family(family, "counter", help);
        for (name, m) in &cached {
            e.sample(family, &[("pool", name)], counter(m).load(Relaxed));
        }
    }
    let own: Vec<(&str, CacheStats)> = state
        .caches()
        .filter_map(|(pool, c)| Some((pool?, c.stats())))
        .collect();
    if own.is_empty() {
        return;
    }
    #[rustfmt::skip]
    let families: [(&str, &str, &str, CacheFigure); 2] = [
        ("dnslb_pool_cache_entries", "gauge", "Answers held now in each pool's own cache.", |s| s.entries),
        ("dnslb_pool_cache_evictions_total", "counter", "Entries pushed out of each pool's own cache.", |s| s.evictions),
    ];
    for (family, kind, help, value) in families {
        e.family(family, kind, help);
        for (name, s) in &own {
            e.sample(family, &[("pool", name)], value(s));
        }
    }
}

/// The process metrics of the client libraries' process collector; a
/// figure that could not be read is left out, its family too.
pub(super) fn write_process(e: &mut Expo, p: &ProcessStats) {
    if let Some(v) = p.cpu_seconds {
        e.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        e.sample("process_cpu_seconds_total", &[], v);
    }
    #[rustfmt::skip]
    let gauges: [(&str, &str, Option<f64>); 5] = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.",
            p.resident_memory_bytes.map(|v| v as f64)),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.",
            p.virtual_memory_bytes.map(|v| v as f64)),
        ("process_open_fds", "Number of open file descriptors.",
            p.open_fds.map(|v| v as f64)),
        ("process_max_fds", "Maximum number of open file descriptors.",
            p.max_fds.map(|v| v as f64)),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            e.family(name, "gauge", help);
            e.sample(name, &[], v);
        }
    }
}

/// `dnslb_build_info{version,commit} 1`: join on it to label other series.
pub(super) fn write_build_info(e: &mut Expo) {
    e.family(
        "dnslb_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    e.sample(
        "dnslb_build_info",
        &[("version", BUILD_VERSION), ("commit", BUILD_COMMIT)],
        1,
    );
}

/// The packet cache's families (only with `[ls.cache]`).
fn write_cache(e: &mut Expo, s: &CacheStats) {
    #[rustfmt::skip]
    let counters: [(&str, &str, u64); 5] = [
        ("dnslb_cache_hits_total", "Answers served fresh from the packet cache.", s.hits),
        ("dnslb_cache_misses_total", "Client queries the packet cache had no answer for.", s.misses),
        ("dnslb_cache_stale_total", "Stale answers served from the packet cache (RFC 8767).", s.stale),
        ("dnslb_cache_evictions_total", "Packet cache entries pushed out to make room.", s.evictions),
        ("dnslb_cache_inserts_total", "Backend answers stored in the packet cache.", s.inserts),
    ];
    for (name, help, v) in counters {
        e.counter(name, help, v);
    }
    e.family(
        "dnslb_cache_entries",
        "gauge",
        "Answers held in the packet cache now.",
    );
    e.sample("dnslb_cache_entries", &[], s.entries);
}

/// The caches' flushes by who asked (only with a packet cache).
fn write_flushes(e: &mut Expo, f: &FlushCounters) {
    for (name, help, counts) in [
        (
            "dnslb_cache_flushes_total",
            "Packet cache flushes, by who asked (a backend's NOTIFY, POST /cache/flush).",
            &f.flushes,
        ),
        (
            "dnslb_cache_flushed_entries_total",
            "Packet cache entries removed by flushes, by who asked.",
            &f.entries,
        ),
    ] {
        let by = FlushBy::ALL.map(FlushBy::as_str);
        e.by_label(name, help, "by", by.into_iter().zip(counts));
    }
}

/// NOTIFYs received: acknowledged (from a backend) or refused.
fn write_notify(e: &mut Expo, f: &FlushCounters) {
    e.by_label(
        "dnslb_notify_total",
        "NOTIFYs received, by result: accepted (from a backend's address, signed as it must be), refused (not from a backend), tsig_refused (unsigned where a key is needed, or a TSIG that does not verify), or limited (from a backend's address, past its budget: dropped).",
        "result",
        [
            ("accepted", &f.notify_accepted),
            ("refused", &f.notify_refused),
            ("tsig_refused", &f.notify_tsig_refused),
            ("limited", &f.notify_limited),
        ],
    );
}

/// The balancer's own families.
fn write_balancer(e: &mut Expo, m: &LsMetrics, backends: &[Arc<Backend>]) {
    e.counter(
        "dnslb_queries_total",
        "Client queries received (well-formed).",
        m.queries.load(Relaxed),
    );
    e.by_rcode(
        "dnslb_answers_total",
        "Answers sent to clients, by rcode.",
        &m.answers,
        answer_rcode_label,
    );
    #[rustfmt::skip]
    let counters: [(&str, &str, &AtomicU64); 9] = [
        ("dnslb_synthesized_total", "Answers made up by the LS.", &m.synthesized),
        ("dnslb_hedges_total", "Hedges sent after the hedge delay.", &m.hedges),
        ("dnslb_hedge_wins_total", "Hedges whose answer won.", &m.hedge_wins),
        ("dnslb_hedges_refused_total", "Hedges not sent: budget spent.", &m.hedges_refused),
        ("dnslb_refused_acl_total", "Client queries refused by the ACL.", &m.refused_acl),
        ("dnslb_rate_limited_total", "Client queries over the rate limit.", &m.rate_limited),
        ("dnslb_loops_refused_total", "Queries this LS forwarded that came back to it, refused.", &m.loops_refused),
        ("dnslb_health_rounds_total", "Health probe rounds completed.", &m.health_rounds),
        (
            "dnslb_late_responses_total",
            "Upstream answers that came after their query was settled (not suspect).",
            &m.drops.late,
        ),
    ];
    e.counters(counters);
    e.by_label(
        "dnslb_dropped_responses_total",
        "Upstream responses dropped as not matching their query.",
        "reason",
        [
            ("wrong_source", &m.drops.wrong_source),
            ("wrong_id", &m.drops.wrong_id),
            ("wrong_question", &m.drops.wrong_question),
        ],
    );
    e.by_label(
        "dnslb_thread_crossings_total",
        "TCP, DoT and DoH clients' upstream queries that crossed threads: sent from a thread with no upstream sockets of its own (worker), or answered on another thread than the one that asked (answer). 0 when each connection lives on one worker thread.",
        "at",
        [
            ("worker", &m.drops.off_worker),
            ("answer", &m.drops.off_thread),
        ],
    );
    e.by_label(
        "dnslb_shed_total",
        "Client queries shed under overload: waited too long in the queue, over max_inflight or a client's share of it (SERVFAIL), no backend with room under its concurrency limit or its encrypted link full (SERVFAIL), or dropped by the kernel with the socket's queue full.",
        "reason",
        [
            ("queue", &m.shed_queue),
            ("inflight", &m.shed_inflight),
            ("limit", &m.shed_limit),
        ],
    );
    e.sample("dnslb_shed_total", &[("reason", "socket")], m.shed_socket());
    e.by_label(
        "dnslb_tcp_connections_refused_total",
        "New plain DNS over TCP connections closed right after accept, by reason (acl: the client is outside allow; cap: the connection cap was full; share: it was contended and the client held its share).",
        "reason",
        [
            ("acl", &m.tcp_acl_refused),
            ("cap", &m.tcp_cap_refused),
            ("share", &m.tcp_share_refused),
        ],
    );
    e.reloads(
        "dnslb_reloads_total",
        "Reloads (SIGHUP) of the LS's [ls]: applied, or refused with the old config kept.",
        &m.reloads_applied,
        &m.reloads_refused,
    );
    e.family(
        "dnslb_client_latency_seconds",
        "histogram",
        "Time from a client query's arrival to its answer.",
    );
    e.histogram(
        "dnslb_client_latency_seconds",
        &[],
        &m.client_latency.snapshot(),
    );

    let addrs: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    let labels = |i: usize| -> [(&str, &str); 2] {
        let name = backends.get(i).map_or("", |b| b.name.as_str());
        let addr = addrs.get(i).map_or("", String::as_str);
        [("backend", name), ("addr", addr)]
    };
    type Read = fn(&Backend) -> u64;
    #[rustfmt::skip]
    let families: [(&str, &str, &str, Read); 8] = [
        ("dnslb_backend_sent_total", "counter", "Upstream queries sent.",
            |b| b.stats.sent.load(Relaxed)),
        ("dnslb_backend_answered_total", "counter", "Valid upstream responses received.",
            |b| b.stats.answered.load(Relaxed)),
        ("dnslb_backend_wins_total", "counter", "Upstream responses that became the answer.",
            |b| b.stats.wins.load(Relaxed)),
        ("dnslb_backend_timeouts_total", "counter", "Client deadlines hit while it was asked.",
            |b| b.stats.timeouts.load(Relaxed)),
        ("dnslb_backend_errors_total", "counter", "Upstream responses with an error rcode.",
            |b| b.stats.errors.load(Relaxed)),
        ("dnslb_backend_outstanding", "gauge", "Upstream queries in flight.",
            |b| u64::from(b.stats.outstanding.load(Relaxed))),
        ("dnslb_backend_up", "gauge", "1 when health checks find the backend usable, else 0.",
            |b| u64::from(b.is_up())),
        ("dnslb_backend_concurrency_limit", "gauge", "Its adaptive concurrency limit: most upstream queries sent and unanswered, sent within the horizon (0 = off).",
            |b| u64::from(b.limit.current())),
    ];
    for (name, kind, help, read) in families {
        e.family(name, kind, help);
        for (i, b) in backends.iter().enumerate() {
            e.sample(name, &labels(i), read(b));
        }
    }
    let failures = "dnslb_backend_link_failures_total";
    if backends.iter().any(|b| b.link.is_some()) {
        e.family(
            failures,
            "counter",
            "Connections to a backend reached over tls or quic that failed, by reason (name, unknown_ca, expired, certificate: its certificate refused; handshake; connect).",
        );
    }
    for (i, b) in backends.iter().enumerate() {
        let Some(link) = &b.link else { continue };
        let [backend, addr] = labels(i);
        for r in crate::ls::upstream::secure::FailReason::ALL {
            let l = [backend, addr, ("reason", r.as_str())];
            e.sample(failures, &l, link.guard.count(r));
        }
    }
    let ewma = "dnslb_backend_latency_ewma_seconds";
    e.family(
        ewma,
        "gauge",
        "Moving average of upstream response latency (0 = no sample yet).",
    );
    for (i, b) in backends.iter().enumerate() {
        e.sample(ewma, &labels(i), seconds(b.stats.latency_us.load(Relaxed)));
    }
    e.family(
        "dnslb_backend_latency_seconds",
        "histogram",
        "Upstream response latency.",
    );
    for (i, b) in backends.iter().enumerate() {
        e.histogram(
            "dnslb_backend_latency_seconds",
            &labels(i),
            &b.stats.latency.snapshot(),
        );
    }
}

#[cfg(test)]
pub(super) mod tests;

/// `dnslb_dnstap_frames_total{result}`: the dnstap frames written to the
/// collector (`sent`) and lost (`dropped`: the queue full, a failed write,
/// queued at shutdown with no collector); nothing when dnstap is off.
pub(super) fn write_dnstap(e: &mut Expo, stats: Option<&crate::dnstap::DnstapStats>) {
    let Some(stats) = stats else {
        return;
    };
    e.by_label(
        "dnslb_dnstap_frames_total",
        "dnstap frames written to the collector, or dropped (queue full, collector slow or absent).",
        "result",
        [("sent", &stats.sent), ("dropped", &stats.dropped)],
    );
}
