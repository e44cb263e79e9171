//! Every fenced code block of `README.md`, `CHANGELOG.md` and `docs/*.md` is run or checked,
//! by its info string, so that the docs stay true:
//!
//! * `toml`: a whole config file, written beside a copy of `zones/` and
//!   passed to `dnslb check`.
//! * `toml fragment` (or `toml fragment TABLE`, for bare keys of e.g. `ls`):
//!   part of a config, merged into the shipped `config.toml` (its tables
//!   merged key by key, a `[[ts]]` replacing the one of the same name) and
//!   checked with `dnslb check`.
//! * `proj`: a PROJ table, served by one `[[ts]]` and checked.
//! * `sh`: commands run against the shipped deployment (`dnslb up` on a
//!   copy of `config.toml`, its ports moved to free ones), each line
//!   exiting 0 and showing what its comment says (`NOERROR`, `NXDOMAIN`,
//!   the addresses, `flags include aa`, `no output`).
//! * `sh recipe`: a recipe's commands, run in order with the files of its
//!   section by tests/integration/deploy_recipes.rs (not against the
//!   shipped deployment).
//! * `json`: parses as JSON (one document, or one per line).
//! * `promql`: every `dnslb_*` metric it names exists in the source.
//! * `nsd.conf`, `knot.conf`, `unbound.conf`, `prometheus.yml`,
//!   `bird.conf`, `dnsdist.conf`: checked by `nsd-checkconf`, `knotc
//!   conf-check`, `unbound-checkconf`, `promtool check config`, `bird -p
//!   -c`, `dnsdist --check-config -C`.
//! * `LANG no-run REASON` (or `no-check`): not run, with the reason why
//!   (it installs, it needs root, it runs the whole suite...).
//! * `text`: output shown as an example, a file format, or a usage line.
//!
//! A block with no info string, or one this list does not know, fails
//! [`every_block_is_run_or_checked`].
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kit;
use crate::kit::recipes::{check_claims, fenced, file_of, move_ports, with_zones};
use crate::kit::{BIN, Proc, free_ports, poll_until, run, run_dnslb};

/// One fenced block.
struct Block {
    file: String,
    line: usize,
    info: String,
    body: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{} (```{})", self.file, self.line, self.info)
    }
}

/// What a block's info string asks for.
#[derive(Debug, PartialEq)]
enum Kind {
    Toml,
    Fragment(Option<String>),
    Proj,
    Sh,
    Recipe,
    Json,
    Promql,
    Checked(&'static str),
    NotRun,
    Text,
}

fn kind(info: &str) -> Result<Kind, String> {
    let words: Vec<&str> = info.split_whitespace().collect();
    match words.as_slice() {
        [] => Err("no info string: say what it is (see tests/integration/docs.rs)".into()),
        [_, "no-run" | "no-check", reason @ ..] => {
            if reason.is_empty() {
                Err("no-run without a reason".into())
            } else {
                Ok(Kind::NotRun)
            }
        }
        ["toml"] => Ok(Kind::Toml),
        ["toml", "fragment"] => Ok(Kind::Fragment(None)),
        ["toml", "fragment", table] => Ok(Kind::Fragment(Some((*table).to_owned()))),
        ["proj"] => Ok(Kind::Proj),
        ["sh"] => Ok(Kind::Sh),
        ["sh", "recipe"] => Ok(Kind::Recipe),
        ["json"] => Ok(Kind::Json),
        ["promql"] => Ok(Kind::Promql),
        ["nsd.conf"] => Ok(Kind::Checked("nsd.conf")),
        ["knot.conf"] => Ok(Kind::Checked("knot.conf")),
        ["unbound.conf"] => Ok(Kind::Checked("unbound.conf")),
        ["prometheus.yml"] => Ok(Kind::Checked("prometheus.yml")),
        ["bird.conf"] => Ok(Kind::Checked("bird.conf")),
        ["dnsdist.conf"] => Ok(Kind::Checked("dnsdist.conf")),
        ["text"] => Ok(Kind::Text),
        _ => Err(format!("unknown info string {info:?}")),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The docs whose blocks are kept true.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md"), repo().join("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every fenced block of every doc file.
fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.strip_prefix(repo()).unwrap().display().to_string();
        let found = fenced(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        out.extend(found.into_iter().map(|(line, info, body)| Block {
            file: file.clone(),
            line,
            info,
            body,
        }));
    }
    out
}

fn of_kind(want: impl Fn(&Kind) -> bool) -> Vec<(Block, Kind)> {
    blocks()
        .into_iter()
        .filter_map(|b| {
            let k = kind(&b.info).ok()?;
            want(&k).then_some((b, k))
        })
        .collect()
}

#[test]
fn every_block_is_run_or_checked() {
    let all = blocks();
    assert!(all.len() > 30, "only {} blocks found", all.len());
    let bad: Vec<String> = all
        .iter()
        .filter_map(|b| kind(&b.info).err().map(|e| format!("{}: {e}", b.at())))
        .collect();
    assert!(
        bad.is_empty(),
        "code blocks no test runs:\n{}",
        bad.join("\n")
    );
}

/// `dnslb check -c` on `text` written as `dir/config.toml`; `Err` with its output.
fn check(dir: &Path, text: &str) -> Result<(), String> {
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    let out = run_dnslb(
        &["check", "-c", config.to_str().unwrap()],
        dir,
        None,
        Duration::from_secs(30),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}\n--- config ---\n{text}",
            out.stdout, out.stderr
        ))
    }
}

/// `fragment` merged into `base`: tables key by key, `[[ts]]` and
/// `[[ls.backend]]` entries replacing the one of the same name or added,
/// any other value (a `listen` list too) replaced.
fn merge(base: &mut toml::Table, fragment: toml::Table) {
    for (key, value) in fragment {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(f)) => merge(b, f),
            (Some(toml::Value::Array(b)), toml::Value::Array(f))
                if f.iter().all(toml::Value::is_table) =>
            {
                for item in f {
                    let name = item.get("name").cloned();
                    match b
                        .iter_mut()
                        .find(|x| name.is_some() && x.get("name") == name.as_ref())
                    {
                        Some(slot) => *slot = item,
                        None => b.push(item),
                    }
                }
            }
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[test]
fn toml_blocks_pass_dnslb_check() {
    let shipped = std::fs::read_to_string(repo().join("config.toml")).unwrap();
    // Zone files a recipe writes (`; zones/shop.zone`), beside `zones/`.
    let recipe_zones: Vec<(String, String)> = blocks()
        .into_iter()
        .filter_map(|b| {
            let name = file_of(&b.body)?;
            name.starts_with("zones/")
                .then(|| (name.to_owned(), b.body.clone()))
        })
        .collect();
    let mut failed = Vec::new();
    let mut n = 0;
    for (b, k) in of_kind(|k| matches!(k, Kind::Toml | Kind::Fragment(_))) {
        n += 1;
        let dir = with_zones();
        for (name, body) in &recipe_zones {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let text = match k {
            Kind::Toml => b.body.clone(),
            Kind::Fragment(table) => {
                let mut base: toml::Table = shipped.parse().unwrap();
                let mut frag: toml::Table = match b.body.parse() {
                    Ok(t) => t,
                    Err(e) => {
                        failed.push(format!("{}: not TOML: {e}", b.at()));
                        continue;
                    }
                };
                if let Some(t) = table {
                    let mut outer = toml::Table::new();
                    outer.insert(t, toml::Value::Table(frag));
                    frag = outer;
                }
                merge(&mut base, frag);
                toml::to_string(&base).unwrap()
            }
            _ => unreachable!(),
        };
        if let Err(e) = check(dir.path(), &text) {
            failed.push(format!("{}: dnslb check fails:\n{e}", b.at()));
        }
    }
    assert!(n >= 5, "only {n} toml blocks");
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn proj_blocks_are_tables_a_ts_loads() {
    let mut failed = Vec::new();
    for (b, _) in of_kind(|k| *k == Kind::Proj) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.txt"), &b.body).unwrap();
        let config = "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\n";
        if let Err(e) = check(dir.path(), config) {
            failed.push(format!("{}: {e}\n--- table ---\n{}", b.at(), b.body));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn json_blocks_parse() {
    let mut failed = Vec::new();
    for (b, _) in of_kind(|k| *k == Kind::Json) {
        let lines = b
            .body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .try_for_each(|l| serde_json::from_str::<serde_json::Value>(l).map(drop));
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&b.body)
            && lines.is_err()
        {
            failed.push(format!("{}: {e}", b.at()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Every file of `src/`, concatenated.
fn source() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut s = String::new();
    walk(&repo().join("src"), &mut s);
    s
}

#[test]
fn promql_blocks_name_metrics_that_exist() {
    let src = source();
    let mut missing = Vec::new();
    for (b, _) in of_kind(|k| *k == Kind::Promql) {
        for word in b
            .body
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("dnslb_"))
        {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            if !src.contains(&format!("\"{base}\"")) && !src.contains(&format!("{base} ")) {
                missing.push(format!("{}: {word}", b.at()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics named in the docs but not in src/:\n{}",
        missing.join("\n")
    );
}

#[test]
fn peer_configs_pass_their_own_checkers() {
    for (b, k) in of_kind(|k| matches!(k, Kind::Checked(_))) {
        let Kind::Checked(what) = k else {
            unreachable!()
        };
        let (prog, args): (&str, &[&str]) = match what {
            "nsd.conf" => ("nsd-checkconf", &[]),
            "knot.conf" => ("knotc", &["conf-check"]),
            "unbound.conf" => ("unbound-checkconf", &[]),
            "prometheus.yml" => ("promtool", &["check", "config"]),
            "bird.conf" => ("bird", &["-p"]),
            "dnsdist.conf" => ("dnsdist", &["--check-config", "-C"]),
            _ => unreachable!(),
        };
        let Some(bin) = crate::kit::find_program(prog) else {
            kit::skip(&b.at(), &format!("{prog} not installed"));
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(what);
        std::fs::write(&file, &b.body).unwrap();
        let mut cmd = std::process::Command::new(bin);
        if what == "knot.conf" || what == "bird.conf" {
            cmd.arg("-c").arg(&file).args(args);
        } else {
            cmd.args(args).arg(&file);
        }
        cmd.current_dir(dir.path());
        run_ok(prog, cmd, &b.at(), &format!("\n--- {what} ---\n{}", b.body));
    }
}

/// Runs `cmd` (named `what`, for at most 30 s); it must succeed, or the
/// failure names `at`, its status and output, then `context`.
fn run_ok(what: &str, cmd: std::process::Command, at: &str, context: &str) -> kit::Output {
    kit::run_ok(
        &format!("{at}: `{what}`"),
        cmd,
        Duration::from_secs(30),
        context,
    )
}

/// The shipped ports, in the order they are replaced.
const SHIPPED_PORTS: [u16; 4] = [5300, 5301, 5302, 5390];

#[test]
fn sh_blocks_run_against_the_shipped_deployment() {
    let runnable = of_kind(|k| *k == Kind::Sh);
    assert!(!runnable.is_empty(), "no ```sh block is run");
    if crate::kit::find_program("dig").is_none() {
        kit::skip(
            "sh_blocks_run_against_the_shipped_deployment",
            "dig not installed",
        );
        return;
    }
    let dir = with_zones();
    let ports = free_ports(SHIPPED_PORTS.len());
    let shipped = std::fs::read_to_string(repo().join("config.toml")).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, move_ports(&shipped, &SHIPPED_PORTS, &ports)).unwrap();
    let mut up = Proc::dnslb(
        "dnslb up",
        &["up", "-c", config.to_str().unwrap()],
        dir.path(),
    );
    let dig = |args: &str| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("dig {args}"))
            .current_dir(dir.path());
        run("dig", cmd, None, Duration::from_secs(20)).stdout
    };
    let ready = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let out = dig(&format!(
            "@127.0.0.1 -p {} www.example.com +time=1 +tries=1",
            ports[0]
        ));
        out.contains("status: NOERROR").then_some(())
    });
    if ready.is_none() {
        up.assert_running();
        panic!(
            "the shipped deployment never answered; stderr:\n{}",
            up.stderr_now()
        );
    }
    let mut ran = 0;
    for (b, _) in runnable {
        for line in b.body.lines().filter(|l| !l.trim().is_empty()) {
            let (cmd, comment) = line.split_once(" #").unwrap_or((line, ""));
            let cmd = move_ports(cmd, &SHIPPED_PORTS, &ports)
                .replace("cargo run --release --", BIN)
                .replacen(
                    "dnslb ",
                    &format!("{BIN} "),
                    usize::from(cmd.starts_with("dnslb ")),
                );
            let mut sh = std::process::Command::new("sh");
            sh.arg("-c").arg(&cmd).current_dir(dir.path());
            let out = run_ok(line, sh, &b.at(), "");
            if let Err(e) = check_claims(line, comment, &out.stdout) {
                panic!("{}: {e}", b.at());
            }
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} commands run");
    up.assert_running();
    up.signal(rustix::process::Signal::TERM);
    assert!(
        up.wait_exit(Duration::from_secs(10)).is_some(),
        "dnslb up did not stop on SIGTERM"
    );
}
