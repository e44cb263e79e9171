//! `dnslb check` and pools: a
//! `[[ls.pool]]` that leaves out a table server holding names under the
//! pool's zones answers those names NXDOMAIN, so check warns of it, naming
//! the pool, the table server and a name; config.toml's own commented pool
//! example, uncommented, draws no such warning for the shipped tables.
use std::path::Path;
use std::time::Duration;

use crate::kit;

/// The shipped config.toml and zones/ copied into `dir`, with its commented
/// `[[ls.pool]]` example uncommented, or replaced by `pool` when given.
fn shipped_with_pool(dir: &Path, pool: Option<&str>) -> std::path::PathBuf {
    let root = kit::crate_dir();
    let text = std::fs::read_to_string(root.join("config.toml")).unwrap();
    let mut out = String::new();
    let mut in_example = false;
    for line in text.lines() {
        if line == "# [[ls.pool]]" {
            in_example = true;
            if let Some(p) = pool {
                out.push_str(p);
                out.push('\n');
                continue;
            }
        } else if in_example && !line.starts_with("# ") {
            in_example = false;
        }
        if in_example {
            // Keys are uncommented; the prose between them (capitalised) is not.
            let rest = line.trim_start_matches("# ");
            if pool.is_none() && !rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                out.push_str(rest);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    for z in ["ts1.txt", "ts2.txt"] {
        std::fs::copy(root.join("zones").join(z), dir.join("zones").join(z)).unwrap();
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, out).unwrap();
    path
}

fn check(dir: &Path, config: &Path) -> (bool, String) {
    let out = kit::run_dnslb(
        &["check", "-c", config.to_str().unwrap()],
        dir,
        None,
        Duration::from_secs(60),
    );
    (out.status.success(), out.stderr.clone())
}

#[test]
fn a_pool_leaving_out_a_table_server_that_holds_its_names_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    // The example config.toml shipped before: example.org asked of ts2 only,
    // while ts1 holds mail.example.org.
    let old = "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]";
    let config = shipped_with_pool(dir.path(), Some(old));
    let (ok, stderr) = check(dir.path(), &config);
    assert!(ok, "a warning does not make the config bad:\n{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning: pool org"))
        .unwrap_or_else(|| panic!("no warning about pool org:\n{stderr}"));
    assert!(
        warning.contains("ts1") && warning.to_lowercase().contains("mail.example.org"),
        "{warning}"
    );
    assert!(
        warning.starts_with(&format!("{}:", config.display())),
        "{warning}"
    );
}

#[test]
fn config_tomls_own_pool_example_fits_the_shipped_tables() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_with_pool(dir.path(), None);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\n[[ls.pool]]\n"),
        "the example was not uncommented"
    );
    let (ok, stderr) = check(dir.path(), &config);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}
