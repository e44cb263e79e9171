//! The house's rules (docs/ARCHITECTURE.md, "The rooms"), checked on the
//! source: every `src/**/*.rs` but `main.rs` is read, its comments and
//! literals blanked, and each `crate::` or `super::` path in its code (a
//! `use` or a path written in place) gives an arrow from the file's top-level
//! module to the one the path names. Then:
//! - `guard/` imports nothing of the crate (the ground floor);
//! - `server/`, `dns/`, `config/`, `guard/` and `dnstap/` import nothing of
//!   `ls/` or `ts/`;
//! - `ls/` and `ts/` never import each other;
//! - no two top-level modules import each other;
//! - inside every folder (the crate's root included), no circle of any length
//!   among its rooms, where a name re-exported by the folder's `mod.rs` counts
//!   as the room it comes from ([`ALLOWED_CIRCLES`] aside);
//! - no room imports an item *defined* in its folder's `mod.rs` (an arrow
//!   running back up; [`ALLOWED_BACK_UP`] aside);
//! - no file has more than [`MAX_CODE_LINES`] code lines before its test
//!   module;
//! - no public type name is defined twice ([`ALLOWED_DUPLICATE_TYPES`] aside);
//! - every folder has a `mod.rs`, no `x.rs` beside a folder `x/`
//!   (no exception);
//! - every inherent `impl` is in the file that defines its type (trait
//!   impls anywhere; [`ALLOWED_IMPLS_AWAY`] aside).
//!
//! Test code (`#[cfg(test)]` modules, test-only files) and fixtures
//! (`fixtures.rs`) are left out of the last four. Each failure names the
//! file and line of every violation. `scripts/house` prints the same counts
//! with no allow-list (`report::house_counts`, run with `--ignored`).
//!
//! The allow-lists hold the violations still open: they may only shrink.
//! The circles' and the type names' are empty, and long files have none;
//! the impls' holds one, kept on purpose with its reason.
//!
//! The folder: `reader` (a file's code with comments and literals blanked,
//! its `crate::`/`super::` paths and `use` names, the crate's sources and
//! top-level arrows), `checks` (the rooms' arrows, circles, long files,
//! twice-defined type names), `report` (the counts `scripts/house` prints);
//! the rules' allow-lists and the enforcing tests are here.
use checks::{
    circles, circles_in, duplicate_types, house, house_sources, long_files, offending, rooms,
};

use placement::{folders_without_mod_rs, impls_away_from_their_type};

mod checks;
mod placement;
mod reader;
mod report;

/// Circles among the rooms of one folder still open, each as the set of its
/// rooms: a circle whose rooms all fall in one entry passes. Each needs a
/// comment saying why it cannot be broken yet; none is open today.
const ALLOWED_CIRCLES: &[&[&str]] = &[];

/// Rooms that import an item defined in their folder's `mod.rs`, as
/// (room, item), still open outside ls/ and ts/ (which hold none): empty
/// the list as the other folders' items move out of their `mod.rs`.
const ALLOWED_BACK_UP: &[(&str, &str)] = &[
    ("config::changes", "config::Config"),
    ("config::ls", "config::available_cores"),
    ("config::ts", "config::available_cores"),
    ("config::validate", "config::Config"),
    ("metrics::flush", "metrics::Shared"),
    ("metrics::flush", "metrics::json"),
    ("metrics::health", "metrics::ReadyState"),
    ("metrics::health", "metrics::Shared"),
    ("metrics::history", "metrics::HISTORY_SECS"),
    ("metrics::history", "metrics::Shared"),
    ("metrics::page", "metrics::HISTORY_SECS"),
    ("metrics::page", "metrics::Shared"),
    ("metrics::ts", "metrics::exposition"),
    ("metrics::ts", "metrics::not_found"),
    ("metrics::ts", "metrics::serve_app"),
    ("server::doh", "server::Action"),
    ("server::doh", "server::Handler"),
    ("server::doh", "server::Reply"),
    ("server::doh", "server::Request"),
    ("server::doh", "server::Shared"),
    ("server::doh3", "server::Handler"),
    ("server::doh3", "server::Shared"),
    ("server::doh_conn", "server::Handler"),
    ("server::doh_conn", "server::Shared"),
    ("server::doh_h2", "server::Handler"),
    ("server::doh_h2", "server::Shared"),
    // DoQ serves through the same Handler, Request and Shared as DoT and DoH
    // do; they leave server/mod.rs together.
    ("server::doq", "server::Action"),
    ("server::doq", "server::Handler"),
    ("server::doq", "server::Reply"),
    ("server::doq", "server::Request"),
    ("server::doq", "server::Shared"),
    ("server::tcp", "server::Action"),
    ("server::tcp", "server::Handler"),
    ("server::tcp", "server::Reply"),
    ("server::tcp", "server::Request"),
    ("server::tcp", "server::Shared"),
    ("server::tls", "server::Handler"),
    ("server::tls", "server::Shared"),
    ("server::udp", "server::Action"),
    ("server::udp", "server::Handler"),
    ("server::udp", "server::Reply"),
    ("server::udp", "server::Request"),
    ("server::udp", "server::Shared"),
];

/// The most code lines (neither blank nor comment) a file may have before
/// its `#[cfg(test)]` module.
const MAX_CODE_LINES: usize = 600;

/// The rooms every other may import, which import nothing of the crate:
/// client protection, the one health hysteresis, the wall clock.
const GROUND_FLOOR: &[&str] = &["guard", "hysteresis", "clock"];

/// Public type names allowed to be defined more than once: none (a name
/// that must stay twice needs its reason here).
const ALLOWED_DUPLICATE_TYPES: &[&str] = &[];

/// Inherent impls written away from their type's file, as (file under
/// src/, type). It may only shrink: a new one moves into its type's file,
/// or what it holds becomes a type or free functions of its own room.
/// One stays, on purpose: `LsConfig`'s in policy.rs (`policy`, `policy_of`,
/// `longest_timeout_ms`: the merge of `[ls]`'s policy keys with a pool's),
/// the config's one impl for that type (docs/ARCHITECTURE.md). The merge
/// needs `PolicyConfig` (policy.rs) and `LsConfig` (ls.rs, whose policy
/// fields policy.rs's `policy_keys!` declares): in ls.rs the two rooms
/// would import each other (a circle
/// `no_circle_among_the_rooms_of_any_folder` refuses), and
/// `LsConfig` in policy.rs would put all of `[ls]` in the room of its five
/// policy keys.
const ALLOWED_IMPLS_AWAY: &[(&str, &str)] = &[("config/policy.rs", "LsConfig")];

/// Fails with every violation, one a line, under `what`, unless `bad` is empty.
fn none_of(what: &str, bad: &[String]) {
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

#[test]
fn no_circle_among_the_rooms_of_any_folder() {
    let rooms = rooms(&house_sources());
    let bad: Vec<String> = circles_in(&rooms.siblings)
        .into_iter()
        .filter(|(members, _)| {
            !ALLOWED_CIRCLES
                .iter()
                .any(|allowed| members.iter().all(|m| allowed.contains(&m.as_str())))
        })
        .map(|(members, lines)| format!("{}:\n{}", members.join(" <-> "), lines.join("\n")))
        .collect();
    none_of("circles among the rooms of a folder", &bad);
}

#[test]
fn no_room_imports_an_item_defined_in_its_folders_mod_rs() {
    let rooms = rooms(&house_sources());
    let bad: Vec<String> = rooms
        .back_up
        .iter()
        .filter(|((f, t), _)| !ALLOWED_BACK_UP.contains(&(f.as_str(), t.as_str())))
        .map(|((f, t), at)| format!("{f} -> {t}: {}", at.join(", ")))
        .collect();
    none_of("arrows running back up to a mod.rs", &bad);
}

#[test]
fn no_file_has_more_than_600_code_lines_before_its_tests() {
    let bad: Vec<String> = long_files(&house_sources())
        .into_iter()
        .map(|(f, n)| format!("{f}:1: {n} code lines"))
        .collect();
    none_of(&format!("files over {MAX_CODE_LINES} code lines"), &bad);
}

#[test]
fn no_public_type_name_is_defined_twice() {
    let bad: Vec<String> = duplicate_types(&house_sources())
        .into_iter()
        .filter(|(name, _)| !ALLOWED_DUPLICATE_TYPES.contains(&name.as_str()))
        .map(|(name, at)| format!("{name}: {}", at.join(", ")))
        .collect();
    none_of("public type names defined more than once", &bad);
}

#[test]
fn the_ground_floor_imports_nothing_of_the_crate() {
    let a = house();
    let bad: Vec<String> = a
        .iter()
        .filter(|((f, _), _)| GROUND_FLOOR.contains(&f.as_str()))
        .map(|((f, t), at)| format!("{f} -> {t}: {}", at.join(", ")))
        .collect();
    none_of("the ground floor imports the crate", &bad);
}

#[test]
fn the_shared_layers_import_nothing_of_the_ls_or_the_ts() {
    let bad = offending(
        &house(),
        &["server", "dns", "config", "guard", "dnstap"],
        &["ls", "ts"],
    );
    none_of("a shared layer imports a role", &bad);
}

#[test]
fn the_ls_and_the_ts_never_import_each_other() {
    let bad = offending(&house(), &["ls", "ts"], &["ls", "ts"]);
    none_of("the LS and the TS import each other", &bad);
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let bad = circles(&house());
    none_of("circles between top-level modules", &bad);
}

#[test]
fn every_folder_has_a_mod_rs() {
    none_of(
        "folders without a mod.rs",
        &folders_without_mod_rs(&house_sources()),
    );
}

#[test]
fn every_inherent_impl_is_in_the_file_that_defines_its_type() {
    let bad: Vec<String> = impls_away_from_their_type(&house_sources())
        .into_iter()
        .filter(|(file, ty, _)| !ALLOWED_IMPLS_AWAY.contains(&(file.as_str(), ty.as_str())))
        .map(|(_, ty, at)| format!("impl {ty}: {at}"))
        .collect();
    none_of("inherent impls away from their type's file", &bad);
}

/// The one file that may hold `unsafe` code (the AF_XDP rings and their
/// memory); the library denies it everywhere else (lib.rs).
const UNSAFE_ROOM: &str = "xdp/ring.rs";

#[test]
fn unsafe_code_is_only_in_the_af_xdp_ring() {
    let bad: Vec<String> = house_sources()
        .iter()
        .filter(|s| s.rel != std::path::Path::new(UNSAFE_ROOM))
        .filter(|s| {
            String::from_utf8_lossy(&s.code)
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == "unsafe")
        })
        .map(|s| s.rel.display().to_string())
        .collect();
    none_of("unsafe code outside the AF_XDP ring", &bad);
}
