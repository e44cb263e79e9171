//! The integration tests: real servers on 127.0.0.1, real sockets.
//!
//! # Where to look for a feature
//! (every file named here exists and every test file is named: `test_tree.rs`;
//! helpers are in `kit/`, tests against peer programs in `peers/`)
//!
//! | feature | test files |
//! |---|---|
//! | the LS: strategies, layouts, orders | `ls.rs`, `partitioned.rs`, `pools.rs`, `ls_drain.rs`, `paused.rs` |
//! | the LS: re-asks, hedging, silence | `ls_reask.rs`, `ls_reask_hedge.rs`, `ls_slow_backends.rs` |
//! | the LS: backend health and probes | `health.rs`, `ls_probes_and_loops.rs`, `ls_send_refused.rs` |
//! | the LS: upstream UDP and TCP | `ls_upstream.rs`, `ls_upstream_tcp.rs`, `ls_upstream_tcp_answers.rs`, `ls_tcp_pool_limits.rs`, `ls_connections.rs` |
//! | the LS: answers passed on, REFUSED, counters | `ls_answer_passing.rs`, `ls_refused.rs`, `ls_counters.rs`, `opcodes.rs` |
//! | the LS: overload, fairness, limits | `ls_backend_limit.rs`, `ls_fairness.rs`, `rate_limit.rs`, `attacks.rs`, `amplification.rs` |
//! | the LS: rules and dynamic blocks | `ls_rules.rs`, `ls_dynblock.rs` |
//! | the LS: live control | `ls_control.rs` |
//! | the packet cache | `cache.rs`, `cache_ecs.rs`, `cache_refresh_ttl.rs`, `up_cache.rs` |
//! | cache invalidation (flush, NOTIFY) | `cache_flush.rs`, `cache_invalidation.rs`, `cache_notify_flush.rs`, `notify_tsig.rs` |
//! | DNS over TLS and over HTTPS | `dot.rs`, `dot_limits.rs`, `doh_http.rs`, `enc_hostile.rs` |
//! | DNS over QUIC | `doq.rs` |
//! | DNS over QUIC: session resumption, 0-RTT (only what changes nothing answered early) | `quic_resume.rs` |
//! | backends reached over TLS or QUIC | `backend_tls.rs`, `backend_link_full.rs` |
//! | a backend reached over QUIC: Knot's XDP DoQ listener (network namespaces) | `backend_knot_doq.rs` |
//! | DNS over QUIC on a table server, zone transfers over QUIC | `ts_doq.rs` |
//! | DNS over HTTPS on HTTP/3 (`http3`, Alt-Svc) | `doh3.rs` |
//! | the benchmarks' load client (`examples/qload`: DoT, DoQ, DoH/2, DoH/3) counting answers | `qload.rs` |
//! | PROXY protocol v2 (a client's address carried from a load balancer in front) | `proxy.rs` |
//! | the TS: answers | `ts.rs`, `ts_cname_chains.rs`, `ts_as_nsd.rs`, `nsid.rs`, `interop.rs`, `props.rs` |
//! | DNS Cookies (the TS and the LS) | `cookies.rs` |
//! | the TS: master files and tables | `zonefile_reader.rs`, `zonefile_as_nsd.rs`, `zonefile_include.rs`, `zonefile_generate.rs`, `ts_many_zones.rs`, `ts_memory.rs` |
//! | the TS: operations, metrics, NOTIFY sent, several listen addresses | `ts_ops.rs`, `ts_listen.rs`, `ts_metrics.rs`, `ts_zone_queries.rs`, `ts_notify.rs` |
//! | the TS on the internet: response rate limiting | `ts_rrl.rs` |
//! | UDP through AF_XDP (the TS in `xdp.rs`, the LS in `xdp_path.rs`, its upstream queries in `xdp_upstream.rs`; network namespaces) | `xdp.rs`, `xdp_path.rs`, `xdp_upstream.rs` |
//! | zone transfers (AXFR, IXFR) | `xfr.rs`, `ixfr.rs`, `xfr_compression.rs`, `xfr_edns.rs` |
//! | the TS as a secondary, catalogs | `ts_secondary.rs`, `ts_secondary_recovery.rs`, `ts_catalog.rs` |
//! | zones added, removed and changed live (SIGHUP), followed by Knot, NSD, a consumer | `zones_live.rs` |
//! | `dnslb zone` (list, status, reload, notify, retransfer, refresh) through the TS's control listener | `zone_control.rs` |
//! | DNSSEC: pre-signed zones | `dnssec.rs`, `ts_dnssec_proofs.rs`, `nsec3_chains.rs`, `nsec3_iterations.rs`, `presigned_table.rs` |
//! | DNSSEC: zones the TS signs, keys | `signing.rs`, `props_signed.rs`, `keys.rs`, `key_rolls.rs`, `check_signing.rs` |
//! | service answers (`[[ts.service]]`) | `service_answers.rs`, `service_dead_endpoints.rs`, `service_start.rs`, `service_status.rs`, `service_deploy.rs` |
//! | service answers: the endpoint checker | `service_check.rs`, `service_hostile.rs`, `service_scale.rs`, `service_peers.rs` |
//! | the role runners in-process (reload, NOTIFY, drain) | `roles.rs`, `aborted.rs` |
//! | processes: start, stop, reload, `dnslb up`, readiness told to systemd | `startup.rs`, `reloads.rs`, `ls_procs.rs`, `ops_protection.rs`, `no_io_uring.rs`, `sd_notify.rs` |
//! | `dnslb check` | `check_cmd.rs`, `check_certs.rs`, `check_pools.rs` |
//! | the CLI, `dnslb resolve` | `cli.rs`, `resolve.rs`, `resolve_answers.rs` |
//! | metrics, `/health`, status page, `dnslb status` | `metrics.rs`, `metrics_no_store.rs`, `health_http.rs`, `status_cmd.rs`, `build_info.rs`, `browser.rs` |
//! | logs and dnstap | `logs.rs`, `dnstap.rs` |
//! | anycast and fleets | `anycast.rs`, `anycast_probe.rs`, `fleet.rs` |
//! | the docs as written | `docs.rs`, `deploy_recipes.rs`, `shipped_config.rs`, `promises.rs` |
//! | fuzz finds kept | `fuzz_regressions.rs` |
//! | this tree's own rules | `test_tree.rs` |
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod aborted;
mod amplification;
mod anycast;
mod anycast_probe;
mod attacks;
mod backend_knot_doq;
mod backend_link_full;
mod backend_tls;
mod browser;
mod build_info;
mod cache;
mod cache_ecs;
mod cache_flush;
mod cache_invalidation;
mod cache_notify_flush;
mod cache_refresh_ttl;
mod check_certs;
mod check_cmd;
mod check_pools;
mod check_signing;
mod cli;
mod cookies;
mod deploy_recipes;
mod dnssec;
mod dnstap;
mod docs;
mod doh3;
mod doh_http;
mod doq;
mod dot;
mod dot_limits;
mod enc_hostile;
mod fleet;
mod fuzz_regressions;
mod health;
mod health_http;
mod interop;
mod ixfr;
mod key_rolls;
mod keys;
mod kit;
mod logs;
mod ls;
mod ls_answer_passing;
mod ls_backend_limit;
mod ls_connections;
mod ls_control;
mod ls_counters;
mod ls_drain;
mod ls_dynblock;
mod ls_fairness;
mod ls_probes_and_loops;
mod ls_procs;
mod ls_reask;
mod ls_reask_hedge;
mod ls_refused;
mod ls_rules;
mod ls_send_refused;
mod ls_slow_backends;
mod ls_tcp_pool_limits;
mod ls_upstream;
mod ls_upstream_tcp;
mod ls_upstream_tcp_answers;
mod metrics;
mod metrics_no_store;
mod no_io_uring;
mod notify_tsig;
mod nsec3_chains;
mod nsec3_iterations;
mod nsid;
mod opcodes;
mod ops_protection;
mod partitioned;
mod paused;
mod peers;
mod pools;
mod presigned_table;
mod promises;
mod props;
mod props_signed;
mod proxy;
mod qload;
mod quic_resume;
mod rate_limit;
mod reloads;
mod resolve;
mod resolve_answers;
mod roles;
mod sd_notify;
mod service_answers;
mod service_check;
mod service_dead_endpoints;
mod service_deploy;
mod service_hostile;
mod service_peers;
mod service_scale;
mod service_start;
mod service_status;
mod shipped_config;
mod signing;
mod startup;
mod status_cmd;
mod test_tree;
mod ts;
mod ts_as_nsd;
mod ts_catalog;
mod ts_cname_chains;
mod ts_dnssec_proofs;
mod ts_doq;
mod ts_listen;
mod ts_many_zones;
mod ts_memory;
mod ts_metrics;
mod ts_notify;
mod ts_ops;
mod ts_rrl;
mod ts_secondary;
mod ts_secondary_recovery;
mod ts_zone_queries;
mod up_cache;
mod xdp;
mod xdp_path;
mod xdp_upstream;
mod xfr;
mod xfr_compression;
mod xfr_edns;
mod zone_control;
mod zonefile_as_nsd;
mod zonefile_generate;
mod zonefile_include;
mod zonefile_reader;
mod zones_live;
