//! TOML for the configs the process tests write (`dnslb ls -c`, `dnslb up
//! -c`): the `[[ls.backend]]` and `[[ts]]` tables, and the usual two-TS
//! `dnslb up` deployment. A test's own keys stay in the test.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::env::ls_fixture;
use super::procs::local;
use super::servers::ls_config;
use dnslb::config::{Layout, LsConfig, Strategy};

/// One `[[ls.backend]]` table.
pub fn backend_toml(name: &str, addr: SocketAddr) -> String {
    format!("[[ls.backend]]\nname = \"{name}\"\naddr = \"{addr}\"\n")
}

/// A `[[ls.backend]]` table per `(name, address)`, a blank line between two.
pub fn backends_toml(backends: &[(&str, SocketAddr)]) -> String {
    let tables: Vec<String> = backends
        .iter()
        .map(|(name, addr)| backend_toml(name, *addr))
        .collect();
    tables.join("\n")
}

/// The backends `ts1` on 127.0.0.1:`p1` and `ts2` on 127.0.0.1:`p2`.
pub fn pair_backends_toml(p1: u16, p2: u16) -> String {
    backends_toml(&[("ts1", local(p1)), ("ts2", local(p2))])
}

/// A `[[ts]]` table: `name` on 127.0.0.1:`port` serving `zone`, one
/// worker, then the `extra` lines.
pub fn ts_toml(name: &str, port: u16, zone: &str, extra: &str) -> String {
    format!(
        "[[ts]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"{zone}\"]\nworkers = 1\n{extra}\n"
    )
}

/// Writes a `dnslb up` deployment into `dir` and returns its
/// `config.toml`: `ls` (the `[ls]` section with its subtables), the
/// backends `ts1` and `ts2` on `p1` and `p2`, and their `[[ts]]` tables
/// serving copies of `tests/data/ls/ts1.txt` and `ts2.txt`.
pub fn write_up_pair(dir: &Path, ls: &str, p1: u16, p2: u16) -> PathBuf {
    for t in ["ts1.txt", "ts2.txt"] {
        std::fs::copy(ls_fixture(t), dir.join(t)).unwrap();
    }
    let text = format!(
        "{ls}\n{}\n{}\n{}",
        pair_backends_toml(p1, p2),
        ts_toml("ts1", p1, "ts1.txt", ""),
        ts_toml("ts2", p2, "ts2.txt", "")
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// The head of an `[ls]` section: listening on 127.0.0.1:`port` with
/// `workers` workers (the test's own keys follow).
pub fn ls_head_toml(port: u16, workers: u32) -> String {
    format!("[ls]\nlisten = [\"127.0.0.1:{port}\"]\nworkers = {workers}\n")
}

/// [`ls_head_toml`] with two workers, then `strategy`, the fixed order and
/// `layout`.
pub fn ls_fixed_head_toml(port: u16, strategy: &str, layout: &str) -> String {
    let head = ls_head_toml(port, 2);
    format!("{head}strategy = \"{strategy}\"\norder = \"fixed\"\nlayout = \"{layout}\"\n")
}

/// The strategies, each test of the LS's runs under every one.
pub const STRATEGIES: [Strategy; 3] = [Strategy::Race, Strategy::Hedge, Strategy::Sequential];

/// An `[ls]` for `backends` with this strategy and layout, other keys default.
pub fn strategy_config(
    backends: &[(&str, SocketAddr)],
    strategy: Strategy,
    layout: Layout,
) -> LsConfig {
    let mut c = ls_config(backends);
    c.strategy = strategy;
    c.layout = layout;
    // No health probes during a test: they would add upstream queries (and
    // dropped responses) to the counters the tests check.
    c.health.interval_ms = 3_600_000;
    c
}

/// A secret for each algorithm, as long as its hash (what `tsig-keygen`
/// makes).
pub const SECRET_256: &str = "kQn0sD3l9Ui1u6m2sXJ1mR0bJx6g7h8Zq2yq1cV4aUk=";
