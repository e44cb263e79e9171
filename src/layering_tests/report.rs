//! The house's counts (the rules' violations, long files, twice-defined
//! type names), as `scripts/house` prints them (no allow-list).
use std::path::Path;

use super::MAX_CODE_LINES;
use super::checks::{
    circles_in, duplicate_types, house_sources, long_files, offending, rooms, top_level_names,
};
use super::reader::arrows;

/// The house's counts, printed with no allow-list
/// (`scripts/house` runs this). Every line of the output is `name: count`,
/// then the violations themselves, indented.
#[test]
#[ignore = "a report, run by scripts/house"]
#[allow(clippy::print_stdout, reason = "the report is the test's output")]
fn house_counts() {
    let sources = house_sources();
    let rooms = rooms(&sources);
    let house = arrows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let circles = circles_in(&rooms.siblings);
    let top: Vec<_> = circles
        .iter()
        .filter(|(m, _)| !m[0].contains("::"))
        .collect();
    let mut rules = offending(&house, &["server", "dns", "config", "guard"], &["ls", "ts"]);
    rules.extend(offending(&house, &["ls", "ts"], &["ls", "ts"]));
    rules.extend(offending(&house, &["guard"], &top_level_names(&house)));
    let back_up_in = |prefix: &str| -> Vec<String> {
        rooms
            .back_up
            .iter()
            .filter(|((f, _), _)| match prefix {
                "" => !f.contains("::"),
                "*" => true,
                p => f.starts_with(&format!("{p}::")),
            })
            .map(|((f, t), at)| format!("{f} -> {t}: {}", at.join(", ")))
            .collect()
    };
    let house_back_up: Vec<String> = rules.into_iter().chain(back_up_in("")).collect();
    let long = long_files(&sources);
    let dups = duplicate_types(&sources);
    let mut report = String::new();
    let mut section = |name: &str, lines: Vec<String>| {
        report.push_str(&format!("{name}: {}\n", lines.len()));
        for l in lines {
            report.push_str(&format!("    {}\n", l.replace('\n', "\n    ")));
        }
    };
    section(
        "circles (house level)",
        top.iter()
            .map(|(m, l)| format!("{}\n{}", m.join(" <-> "), l.join("\n")))
            .collect(),
    );
    section(
        "circles (inside folders)",
        circles
            .iter()
            .filter(|(m, _)| m[0].contains("::"))
            .map(|(m, l)| format!("{}\n{}", m.join(" <-> "), l.join("\n")))
            .collect(),
    );
    section("arrows running back up (house level)", house_back_up);
    section("arrows running back up (every folder)", back_up_in("*"));
    section("arrows running back up (inside ls/)", back_up_in("ls"));
    section("arrows running back up (inside ts/)", back_up_in("ts"));
    section(
        &format!("files over {MAX_CODE_LINES} code lines"),
        long.iter().map(|(f, n)| format!("{f}: {n}")).collect(),
    );
    section(
        "public type names defined twice",
        dups.iter()
            .map(|(n, at)| format!("{n}: {}", at.join(", ")))
            .collect(),
    );
    println!("{report}");
}
