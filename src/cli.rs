//! The command line (clap derive): one binary, one subcommand per role, and
//! `dnslb ts`'s flags turned into what it runs ([`TsArgs::into_run`]).
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::config::{Config, ConfigError, DynAction, OnMiss, available_cores};
use crate::control_cmd::{self, ControlTo};
use crate::logging::LogFormat;
use crate::ls::backend::admin::AdminState;
use crate::roles::ts::TsRun;
use crate::roles::up::LogFlags;
use crate::ts::{OriginError, TsSettings, parse_origin};

/// A DNS load balancer (LS) in front of authoritative table servers (TS).
#[derive(Debug, Parser)]
#[command(name = "dnslb", version, about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `info,dnslb::query=debug`); RUST_LOG wins when set.
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
    /// Tie the LS's health to a BGP announcement: probe the LS of the config's
    /// `[ls.anycast]` and enable or disable BIRD's protocols for the service address.
    Anycast {
        /// The config file (the LS's).
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
        /// The address records to ask for: A or AAAA (lines `hostname IP AAAA`).
        #[arg(short = 't', long = "type", value_name = "TYPE", default_value = "A")]
        qtype: crate::resolve::AddressType,
    },
    /// Validate a config and every zone it names; print each problem as `file:line: ...`.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Print the DS records (SHA-256) of the zones a `[[ts]]` with `dnssec` signs, one
    /// a line (`example.com. IN DS 12345 13 2 ABCD...`), for the parent zone.
    ///
    /// A zone's keys are made in the `dnssec.keys` folder when it has none, as the
    /// table server would make them at its first start: the DS can be handed to the
    /// parent before the TS serves the zone.
    Ds {
        /// The config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Which `[[ts]]` of the config.
        #[arg(long)]
        name: String,
    },
    /// Show a running LS's backends (and `dnslb up`'s table servers) from its `/health`,
    /// then the service endpoints of the config's `[[ts]]`s with `metrics` (those
    /// alone without `ls.metrics`; `--addr` at a TS's metrics listener: its own).
    Status {
        /// The config file: the LS is asked at its `ls.metrics` address.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Ask this metrics address instead (the config is then not read).
        #[arg(long, value_name = "ADDR")]
        addr: Option<SocketAddr>,
    },
    /// Act on a running LS's packet cache, through its metrics listener.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Set a backend's state by hand on a running LS: `drain` (no new
    /// queries; those in flight finish; health checks go on), `down` (as if
    /// health said down) or `auto` (health decides). Kept across reloads
    /// that keep the backend.
    Backend {
        /// The backend's name (`[[ls.backend]]`).
        name: String,
        /// drain, down or auto.
        #[arg(value_parser = parse_admin)]
        state: AdminState,
        /// Where the LS is.
        #[command(flatten)]
        to: ControlTo,
    },
    /// Reload a running deployment and wait for each role's outcome: the
    /// config and every zone are checked first (exit 1 with each problem's
    /// file:line, nothing reloaded); then the LS at `ls.metrics` is asked to
    /// reload as SIGHUP does (under `dnslb up`, its table servers too), and
    /// each role's outcome printed, one line each; exit 1 when one refused.
    Reload {
        /// Where the LS is (the config is the one checked first).
        #[command(flatten)]
        to: ControlTo,
    },
    /// List the blocks in force on a running LS (dynamic and by hand); `add`
    /// one or `clear` them all.
    Blocks {
        /// What to do (none: list). `-c`, `--addr` and `--key` may come
        /// before or after it.
        #[command(subcommand)]
        action: Option<BlocksCommand>,
        /// Where the LS is.
        #[command(flatten)]
        to: ControlTo,
    },
    /// The busiest client groups, query names, types and answer rcodes of a
    /// running LS over the last seconds.
    Top {
        /// Over the last this many seconds (at most 60).
        #[arg(long, default_value_t = 10)]
        seconds: usize,
        /// Entries of each list.
        #[arg(short, long, default_value_t = 10)]
        n: usize,
        /// Names cut to their last this many labels (`2`: every name under
        /// `example.com` counts for `example.com`).
        #[arg(long)]
        labels: Option<usize>,
        /// Where the LS is.
        #[command(flatten)]
        to: ControlTo,
    },
    /// A running TS's zones, through its zone control (`control` in its
    /// `[[ts]]`): list, status, and reload, notify, retransfer or refresh
    /// one zone now. Exit 1 when the zone is not served or the command was
    /// refused or did not succeed.
    Zone {
        /// What to do. `-c`, `--ts`, `-s`, `--key` and `--json` may come
        /// before or after it.
        #[command(subcommand)]
        action: crate::zone_cmd::ZoneCommand,
        /// Which TS.
        #[command(flatten)]
        to: crate::zone_cmd::ZoneTo,
    },
}

/// `dnslb blocks` subcommands.
#[derive(Debug, Subcommand)]
pub enum BlocksCommand {
    /// Block a network (`198.51.100.0/24`, or one address) or a name (and
    /// every name under it) for a while.
    Add {
        /// The network or name.
        target: String,
        /// For this many seconds.
        #[arg(long = "for", value_name = "SECS", default_value_t = 600)]
        secs: u64,
        /// drop, refuse, truncate (UDP only: TC=1, a client retries over TCP) or nxdomain.
        #[arg(long, default_value = "drop", value_parser = parse_action)]
        action: DynAction,
    },
    /// Lift every block in force (dynamic and by hand).
    Clear,
}

impl BlocksCommand {
    /// Runs it (`None`: list): the text to print.
    ///
    /// # Errors
    /// The LS unreachable, or refusing.
    pub async fn run(
        this: Option<Self>,
        to: &ControlTo,
    ) -> Result<String, crate::status::StatusError> {
        match this {
            None => control_cmd::blocks(to).await,
            Some(BlocksCommand::Add {
                target,
                secs,
                action,
            }) => control_cmd::add_block(to, &target, secs, action).await,
            Some(BlocksCommand::Clear) => control_cmd::clear_blocks(to).await,
        }
    }
}

fn parse_admin(s: &str) -> Result<AdminState, String> {
    AdminState::from_keyword(s).ok_or_else(|| format!("expected drain, down or auto, got '{s}'"))
}

fn parse_action(s: &str) -> Result<DynAction, String> {
    DynAction::from_keyword(s)
        .ok_or_else(|| format!("expected drop, refuse, truncate or nxdomain, got '{s}'"))
}

/// `dnslb cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove NAME's cached answers (every type), or with `--zone` those of
    /// every name at or under NAME, at once; print how many.
    Flush {
        /// The name (or zone), e.g. `www.example.com`.
        name: String,
        /// Every name at or under NAME.
        #[arg(long)]
        zone: bool,
        /// The config file: the LS is asked at its `ls.metrics` address.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Ask this metrics address instead (the config is then not read).
        #[arg(long, value_name = "ADDR")]
        addr: Option<SocketAddr>,
    },
}

/// Why `dnslb cache` failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// NAME is not a DNS name.
    #[error(transparent)]
    Name(#[from] crate::config::ValueError),
    /// The LS could not be asked, or would not flush.
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
}

impl CacheCommand {
    /// Runs it against the LS: the line to print.
    ///
    /// # Errors
    /// A bad name, no metrics address, the LS unreachable or without a cache.
    pub async fn run(self) -> Result<String, CacheError> {
        let CacheCommand::Flush {
            name,
            zone,
            config,
            addr,
        } = self;
        let name = crate::config::parse_name(&name)?;
        let addr = crate::status::metrics_addr(&config, addr)?;
        // The config's key, as the other control commands send it (a
        // listener not bound to loopback wants it from loopback too).
        let key = Config::load(&config)
            .ok()
            .and_then(|c| c.ls)
            .and_then(|ls| ls.api_key);
        let wait = crate::status::FETCH_TIMEOUT;
        Ok(crate::status::flush(addr, &name, zone, key, wait).await?)
    }
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
    /// Address to serve on, UDP and TCP (without a config); give it again
    /// for each further address.
    #[arg(long, requires = "zone")]
    pub listen: Vec<SocketAddr>,
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
    /// UDP sockets/threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also NOTIFY these addresses of every zone that changes, besides the
    /// config's `notify` (`dnslb up` passes its LS's address when the LS
    /// keeps a packet cache).
    #[arg(long, num_args = 1.., value_name = "ADDR")]
    pub notify: Vec<SocketAddr>,
}

impl Cli {
    /// The tag of every log line: a table server's name (`dnslb up` forwards
    /// its children's lines, which must say whose they are), else none.
    pub fn log_tag(&self) -> Option<String> {
        match &self.command {
            Command::Ts(a) => (a.name.clone()).or_else(|| a.listen.first().map(|l| l.to_string())),
            _ => None,
        }
    }

    /// The logging flags, as `dnslb up` passes them on to its children.
    pub fn log_flags(&self) -> LogFlags {
        LogFlags {
            filter: self.log.clone(),
            format: self.log_format,
        }
    }
}

/// `dnslb ts` flags that do not make a table server to run.
#[derive(Debug, thiserror::Error)]
pub enum TsArgsError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--name` names no `[[ts]]` of the config.
    #[error("{}: no [[ts]] named '{name}' ({known})", .path.display())]
    NoSuchTs {
        /// The config file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names there are, as [`known_ts`] lists them.
        known: String,
    },
    /// `--origin` is not a DNS name.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// Neither a config and a name, nor an address and zones.
    #[error("give either -c CONFIG --name NAME, or --listen ADDR --zone FILE...")]
    Neither,
    /// `--on-miss` is not one of its values.
    #[error("--on-miss: expected {values}, got '{0}'", values = on_miss_values())]
    OnMiss(String),
    /// A fault ratio outside [0, 1].
    #[error("{flag}: expected a share between 0 and 1, got {value}")]
    Share {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: f64,
    },
    /// `--workers 0`.
    #[error("--workers: must be at least 1")]
    NoWorkers,
}

/// The `[[ts]]` names of `cfg`, for a message about a name that is not
/// one of them: `its table servers: ts1, ts2`, or `it has no [[ts]]`.
pub fn known_ts(cfg: &Config) -> String {
    if cfg.ts.is_empty() {
        return "it has no [[ts]]".to_owned();
    }
    let names: Vec<&str> = cfg.ts.iter().map(|t| t.name.as_str()).collect();
    format!("its table servers: {}", names.join(", "))
}

/// `nxdomain or silent`.
fn on_miss_values() -> String {
    let words: Vec<&str> = OnMiss::ALL.iter().map(|m| m.as_str()).collect();
    words.join(" or ")
}

impl TsArgs {
    /// The table server these flags ask for: a `[[ts]]` of a config, or one
    /// built from `--listen` and `--zone`; the other flags override.
    ///
    /// # Errors
    /// A config that cannot be read, no such `[[ts]]`, or a bad flag value.
    pub fn into_run(self) -> Result<TsRun, TsArgsError> {
        let a = self;
        let mut workers = a.workers;
        let mut metrics = None;
        let mut dnstap = None;
        let mut xdp = Vec::new();
        let (mut settings, listen) = match (&a.config, &a.name, a.listen.first()) {
            (Some(path), Some(name), _) => {
                let cfg = Config::load(path)?;
                let Some(tc) = cfg.ts_by_name(name) else {
                    return Err(TsArgsError::NoSuchTs {
                        path: path.clone(),
                        name: name.clone(),
                        known: known_ts(&cfg),
                    });
                };
                workers = workers.or(tc.workers);
                metrics = tc.metrics;
                dnstap = tc.dnstap.clone();
                xdp = tc.xdp.clone();
                (TsSettings::from_config_in(&cfg, tc), tc.listen.clone())
            }
            (None, None, Some(first)) => {
                let settings = TsSettings::serving(
                    first.to_string(),
                    a.zone.clone(),
                    parse_origin(&a.origin)?,
                    a.ttl,
                );
                (settings, a.listen.clone())
            }
            _ => return Err(TsArgsError::Neither),
        };
        // Flags override the config.
        if let Some(text) = a.on_miss {
            settings.on_miss = OnMiss::from_keyword(&text).ok_or(TsArgsError::OnMiss(text))?;
        }
        if !a.axfr_allow.is_empty() {
            settings.axfr_allow = a.axfr_allow;
        }
        for target in a.notify {
            if !settings.notify.contains(&target) {
                settings.notify.push(target);
            }
        }
        if let Some(v) = a.delay_ms {
            settings.fault.delay_ms = v;
        }
        for (flag, v, slot) in [
            (
                "--delay-ratio",
                a.delay_ratio,
                &mut settings.fault.delay_ratio,
            ),
            ("--drop-ratio", a.drop_ratio, &mut settings.fault.drop_ratio),
        ] {
            if let Some(value) = v {
                if !(0.0..=1.0).contains(&value) {
                    return Err(TsArgsError::Share { flag, value });
                }
                *slot = value;
            }
        }
        if workers == Some(0) {
            return Err(TsArgsError::NoWorkers);
        }
        Ok(TsRun {
            settings,
            listen,
            metrics,
            workers: workers.unwrap_or_else(available_cores),
            dnstap,
            xdp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(extra: &[&str]) -> Result<TsRun, TsArgsError> {
        let base = ["dnslb", "ts", "--listen", "127.0.0.1:0", "--zone", "t.txt"];
        let cli = Cli::try_parse_from(base.iter().chain(extra)).unwrap();
        match cli.command {
            Command::Ts(a) => a.into_run(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn ts_flags_override_and_are_checked() {
        let run = ts(&[
            "--on-miss",
            "silent",
            "--workers",
            "3",
            "--drop-ratio",
            "0.5",
        ])
        .unwrap();
        assert_eq!(run.settings.on_miss, OnMiss::Silent);
        assert_eq!(run.settings.fault.drop_ratio, 0.5);
        assert_eq!(run.workers, 3);
        assert_eq!(run.settings.name, "127.0.0.1:0");
        for (flags, message) in [
            (
                &["--on-miss", "bogus"][..],
                "--on-miss: expected nxdomain or silent, got 'bogus'",
            ),
            (
                &["--delay-ratio", "2"][..],
                "--delay-ratio: expected a share between 0 and 1, got 2",
            ),
            (&["--workers", "0"][..], "--workers: must be at least 1"),
        ] {
            assert_eq!(ts(flags).unwrap_err().to_string(), message);
        }
    }

    /// `-c`, `--addr` and `--key` of `dnslb blocks` are the same flags before
    /// and after `add`/`clear` (the subcommands' own defaults do not win).
    #[test]
    fn blocks_flags_count_before_and_after_the_subcommand() {
        for line in [
            "dnslb blocks -c f.toml --addr 127.0.0.1:9 --key k add 192.0.2.1",
            "dnslb blocks add 192.0.2.1 -c f.toml --addr 127.0.0.1:9 --key k",
            "dnslb blocks -c f.toml --addr 127.0.0.1:9 --key k clear",
            "dnslb blocks --key k clear --addr 127.0.0.1:9 -c f.toml",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let cli = Cli::try_parse_from(&args).unwrap();
            let Command::Blocks { to, .. } = cli.command else {
                unreachable!()
            };
            assert_eq!(to.config, PathBuf::from("f.toml"), "{args:?}");
            assert_eq!(to.addr, Some("127.0.0.1:9".parse().unwrap()), "{args:?}");
            assert_eq!(to.key.as_deref(), Some("k"), "{args:?}");
        }
    }
}
