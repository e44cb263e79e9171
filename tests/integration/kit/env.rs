//! The test's surroundings: the fixtures under `tests/data/`, the programs
//! installed on the machine, and the rule for a test that cannot run here.
use std::path::{Path, PathBuf};

use hickory_proto::rr::RecordType;

/// The variable `scripts/test` (and so CI) sets: a test that cannot run
/// (a program missing, no root) must then fail, so that green means "ran".
pub const REQUIRE_PEERS: &str = "DNSLB_REQUIRE_PEERS";

/// Says that `test` cannot run because of `why` and returns, so the caller
/// returns: a plain `cargo test` on a machine without the program passes,
/// saying so. Under `scripts/test` (`DNSLB_REQUIRE_PEERS=1`) it panics
/// instead: a skip there would turn "not run" into green.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(REQUIRE_PEERS).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "{test}: cannot run ({why}) and {REQUIRE_PEERS} is set: install it (scripts/test does)"
        );
    }
    eprintln!("{test}: SKIPPED, not run: {why}");
}

/// Where `prog` is: a folder of `$PATH`, or one of the `sbin` folders
/// (servers live there and a non-root `$PATH` may lack them).
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(prog))
        .find(|p| p.is_file())
}

/// The paths of `progs`, or `None` after [`skip`] for the first one
/// missing (a panic under `DNSLB_REQUIRE_PEERS`): the caller returns.
pub fn need<const N: usize>(test: &str, progs: [&str; N]) -> Option<[PathBuf; N]> {
    let mut found = Vec::with_capacity(N);
    for prog in progs {
        let Some(p) = find_program(prog) else {
            skip(test, &format!("{prog} not installed"));
            return None;
        };
        found.push(p);
    }
    Some(found.try_into().unwrap())
}

/// The value in `$e` (an `Option`), or the test returns: `None` is a skip
/// the kit has said why ([`need`], [`skip`]). One line for the
/// `let Some(v) = e else { return; };` a test that needs a program or a
/// peer opens with: `let [dig] = or_skip!(need(TEST, ["dig"]));`.
#[allow(unused_macros)] // the other test binaries that include the kit skip nothing
macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}
pub(crate) use or_skip;

/// The crate's folder (where `Cargo.toml` is).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data/ls/NAME`: the zones of the LS's process tests.
pub fn ls_fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/data/ls").join(name)
}

/// `tests/data/peers/NAME`: the zones served to other DNS software.
pub fn peers_fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/data/peers").join(name)
}

/// The questions the peer tests ask of `tests/data/peers/example.test.zone`,
/// each of a kind: positive, CNAME chain, MX, NS, SOA, TXT, AAAA, NODATA,
/// NXDOMAIN.
pub const EXAMPLE_TEST_PROBES: &[(&str, RecordType)] = &[
    ("www.example.test.", RecordType::A),
    ("www.example.test.", RecordType::AAAA),
    ("alias.example.test.", RecordType::A),
    ("ALIAS.Example.TEST.", RecordType::CNAME),
    ("example.test.", RecordType::MX),
    ("example.test.", RecordType::NS),
    ("example.test.", RecordType::SOA),
    ("info.example.test.", RecordType::TXT),
    ("mail.example.test.", RecordType::A),
    ("www.example.test.", RecordType::TXT),
    ("nope.example.test.", RecordType::A),
    ("deep.nope.example.test.", RecordType::AAAA),
];

/// `p` as text (every path of the tests is UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
