//! A PROJ table whose origin is a pre-signed zone file's (ts-dnssec fault
//! 11): merged, the table's records would be served with no RRSIG and no
//! NSEC, bogus to validators, so the load is refused naming both files, by
//! the TS and by `dnslb check`. A table of another origin beside the
//! signed file, and a table sharing an unsigned file's origin, still load.
use std::time::Duration;

use dnslb::ts::TableServer;
use hickory_proto::rr::Name;

use crate::kit::{self, Denial, Signer, ZoneDir};

#[test]
fn a_table_sharing_a_pre_signed_zones_origin_is_refused_naming_both_files() {
    let test = "a_table_sharing_a_pre_signed_zones_origin_is_refused_naming_both_files";
    if kit::need(
        test,
        ["dnssec-keygen", "dnssec-signzone", "dnssec-dsfromkey"],
    )
    .is_none()
    {
        return;
    }
    let unsigned = kit::dnssec_fixture("sig.test.zone");
    let signed = kit::sign_zone("sig.test", &unsigned, Signer::Bind, Denial::Nsec);
    let dir = ZoneDir::new();
    let zone = dir.copy("sig.zone", &signed.file);
    let table = dir.write("extra.txt", "extra.sig.test 192.0.2.99 A\n");
    let load = |origin: &str, zones: Vec<std::path::PathBuf>| {
        let mut s = kit::ts_settings(zones);
        s.origin = Name::from_ascii(origin).unwrap();
        TableServer::load(s).map(drop).map_err(|e| e.to_string())
    };
    let err = load("sig.test.", vec![zone.clone(), table.clone()]).unwrap_err();
    let want = format!(
        "{}: this PROJ table's origin sig.test. is the zone of {}, which is signed in its file",
        table.display(),
        zone.display()
    );
    assert!(err.starts_with(&want), "{test}: {err}");
    // The table listed first: the same.
    let err = load("sig.test.", vec![table.clone(), zone.clone()]).unwrap_err();
    assert!(err.starts_with(&want), "{test}: {err}");
    // `dnslb check` too.
    let config = dir.write(
        "c.toml",
        &format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{}\"\norigin = \"sig.test.\"\n\
             zones = [\"sig.zone\", \"extra.txt\"]\n",
            kit::free_port()
        ),
    );
    let out = kit::run_dnslb(
        &["check", "-c", kit::path_str(&config)],
        dir.path(),
        None,
        Duration::from_secs(10),
    );
    assert!(!out.status.success(), "{test}: {}", out.stderr);
    assert!(
        out.stderr
            .contains("this PROJ table's origin sig.test. is the zone of"),
        "{test}: {}",
        out.stderr
    );
    // Another origin beside the signed file, or the unsigned file: loads.
    let other = dir.write("other.txt", "www.other.test 192.0.2.98 A\n");
    load("other.test.", vec![zone, other]).unwrap();
    let plain = dir.copy("plain.zone", &unsigned);
    load("sig.test.", vec![plain, table]).unwrap();
}
