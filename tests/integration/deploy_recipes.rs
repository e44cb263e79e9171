//! DEPLOY.md's recipes run as written (operator-walk 5): the DS of a zone
//! signed with BIND's tools, from the block that follows `dnssec-signzone`,
//! run as it stands over a KSK and a ZSK (`dnssec-dsfromkey` over the glob of
//! both was "fatal: extraneous arguments").
use std::process::Command;

use crate::kit::{crate_dir, need};

/// The lines of DEPLOY.md from the one starting with `first` to the one
/// starting with `last`, both included.
fn recipe(first: &str, last: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(first).expect("the recipe's first line");
    let end = start + text[start..].find(last).expect("the recipe's last line") + last.len();
    text[start..end].to_owned()
}

#[test]
fn the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds() {
    let Some([keygen, _]) = need(
        "the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds",
        ["dnssec-keygen", "dnssec-dsfromkey"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for flags in [&["-f", "KSK"][..], &[]] {
        let out = Command::new(&keygen)
            .args(["-q", "-a", "ECDSAP256SHA256"])
            .args(flags)
            .args(["-n", "ZONE", "example.test"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let script = recipe("for k in Kexample.test.+013+*.key", "\ndone");
    let out = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("example.test. IN DS "), "{stdout}");
}
