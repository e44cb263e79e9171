//! The integration tests: real servers on 127.0.0.1, real sockets.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod amplification;
mod attacks;
mod browser;
mod cli;
mod dnssec;
mod docs;
mod faults_health;
mod faults_ops;
mod faults_reask;
mod faults_ts_answers;
mod faults_ts_ops;
mod faults_upstream;
mod faults_zonefile;
mod fuzz_regressions;
mod health;
mod health_http;
mod interop;
#[allow(dead_code)]
mod kit;
mod logs;
mod ls;
mod ls_procs;
mod metrics;
mod nsd;
mod nsid;
mod opcodes;
mod partitioned;
mod paused;
mod peers;
mod promises;
mod props;
mod rate_limit;
mod resolve;
mod review_ls;
mod review_ls2;
mod review_ls3;
mod review_ls4;
mod review_ts;
mod service;
mod startup;
mod status_cmd;
mod ts;
mod ts_memory;
mod ts_metrics;
mod xfr;
