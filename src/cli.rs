//! The command line (clap derive): one binary, one subcommand per role.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::logging::LogFormat;

/// A DNS load balancer (LS) in front of authoritative table servers (TS).
#[derive(Debug, Parser)]
#[command(name = "dnslb", version, about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `dnslb=trace`); RUST_LOG wins when set.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Log lines as `text` or `json` (one object per line: timestamp, level,
    /// fields with the message, target).
    #[arg(long, global = true, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole deployment: every `[[ts]]` as a supervised child, plus the LS.
    Up {
        /// The config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Run the load balancer alone.
    Ls {
        /// The config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Run one table server: `-c config.toml --name ts1`, or `--listen ADDR --zone FILE...`.
    Ts(Box<TsArgs>),
    /// Resolve a list of hostnames (one a line) against a DNS server.
    Resolve {
        /// The server: IP, IP:PORT, [IPv6]:PORT or HOST[:PORT] (port 53 by default; a
        /// host name is looked up with the system resolver), e.g. 127.0.0.1:5300.
        #[arg(short, long, value_name = "ADDR")]
        server: crate::resolve::ServerSpec,
        /// Input file (default: standard input).
        input: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Queries in flight at once.
        #[arg(long, default_value_t = crate::resolve::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Wait for one answer, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Retries of a query that got no answer.
        #[arg(long, default_value_t = crate::resolve::DEFAULT_RETRIES)]
        retries: u32,
    },
    /// Validate a config and every zone it names; print each problem as `file:line: ...`.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Show a running LS's backends (and `dnslb up`'s table servers) from its `/health`.
    Status {
        /// The config file: the LS is asked at its `ls.metrics` address.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Ask this metrics address instead (the config is then not read).
        #[arg(long, value_name = "ADDR")]
        addr: Option<SocketAddr>,
    },
}

/// `dnslb ts` options.
#[derive(Debug, Args)]
pub struct TsArgs {
    /// Config file holding the `[[ts]]` section to run (with `--name`).
    #[arg(short, long, requires = "name", conflicts_with_all = ["listen", "zone"])]
    pub config: Option<PathBuf>,
    /// Which `[[ts]]` of the config to run.
    #[arg(long, requires = "config")]
    pub name: Option<String>,
    /// Address to serve on, UDP and TCP (without a config).
    #[arg(long, requires = "zone")]
    pub listen: Option<SocketAddr>,
    /// Zone file(s): PROJ tables or `.zone` master files (without a config).
    #[arg(long, num_args = 1.., requires = "listen")]
    pub zone: Vec<PathBuf>,
    /// Origin of the PROJ tables.
    #[arg(long, default_value = ".")]
    pub origin: String,
    /// TTL of PROJ-table records.
    #[arg(long, default_value_t = 300)]
    pub ttl: u32,
    /// Answer for a missing name: `nxdomain`, or `silent` (no answer at all).
    #[arg(long, value_name = "nxdomain|silent")]
    pub on_miss: Option<String>,
    /// Networks allowed to AXFR the zones.
    #[arg(long, num_args = 1..)]
    pub axfr_allow: Vec<IpNet>,
    /// Fault: delay this share of answers (0..1) ...
    #[arg(long)]
    pub delay_ratio: Option<f64>,
    /// ... by this many milliseconds.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Fault: drop this share of queries (0..1).
    #[arg(long)]
    pub drop_ratio: Option<f64>,
    /// UDP sockets/threads (default: number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
}
