//! A PROJ table whose origin is a pre-signed zone file's: merged, the table's records would be served with no RRSIG and no
//! NSEC, bogus to validators, so the load is refused naming both files, by
//! the TS and by `dnslb check`. A table of another origin beside the
//! signed file, and a table sharing an unsigned file's origin, still load.
//!
//! The same below a pre-signed zone: a table (or an unsigned
//! zone) whose origin lies inside the signed zone with no delegation to it
//! there is served bogus (`delv`: "insecure response; parent indicates it
//! should be secure"), so it is refused; with a delegation, insecure (NS,
//! no DS) or secure (a DS of the keys the TS signs the table with), the
//! child answers for itself and `delv` validates it, as NSD and Knot serve
//! a parent and its child.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dnslb::config::{Denial as Denying, Dnssec, DnssecAlgorithm};
use dnslb::ts::TableServer;
use hickory_proto::rr::Name;

use crate::kit::{self, Denial, SignedZone, Signer, ZoneDir};

/// The programs that sign a zone with BIND and make its DS.
const SIGN: [&str; 3] = ["dnssec-keygen", "dnssec-signzone", "dnssec-dsfromkey"];

/// [`SIGN`]'s, and those that validate an answer (`delv`, bounded).
const SIGN_AND_VALIDATE: [&str; 5] = [
    "dnssec-keygen",
    "dnssec-signzone",
    "dnssec-dsfromkey",
    "delv",
    "timeout",
];

#[test]
fn a_table_sharing_a_pre_signed_zones_origin_is_refused_naming_both_files() {
    let test = "a_table_sharing_a_pre_signed_zones_origin_is_refused_naming_both_files";
    if kit::need(test, SIGN).is_none() {
        return;
    }
    let unsigned = kit::dnssec_fixture("sig.test.zone");
    let (_signed, dir, zone) = signed_in_dir(&unsigned, Denial::Nsec);
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
    let out = kit::dnslb_check(&config, dir.path());
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

/// `timeout 5 delv -a ANCHOR +root=sig.test. @SERVER NAME A`, trusting the
/// signed parent's KSK: its output and how it ended.
fn delv(signed: &SignedZone, server: SocketAddr, name: &str) -> String {
    let out = kit::delv(&signed.anchor, &signed.zone, server, name, "A");
    format!("{}{}({})", out.stdout, out.stderr, out.status)
}

/// `unsigned` (sig.test) signed by BIND with `denial`, copied as `sig.zone`
/// into a folder of its own: the signed zone, the folder and the copy.
fn signed_in_dir(unsigned: &Path, denial: Denial) -> (SignedZone, ZoneDir, PathBuf) {
    let signed = kit::sign_zone("sig.test", unsigned, Signer::Bind, denial);
    let dir = ZoneDir::new();
    let zone = dir.copy("sig.zone", &signed.file);
    (signed, dir, zone)
}

/// `extra.txt` in `dir`: a PROJ table of one name, `www.ORIGIN` at
/// 192.0.2.99.
fn table_at(dir: &ZoneDir, origin: &str) -> PathBuf {
    let text = format!("www.{} 192.0.2.99 A\n", origin.trim_end_matches('.'));
    dir.write("extra.txt", &text)
}

/// `settings` with its tables at `origin`.
fn at_origin(origin: &str, zones: Vec<PathBuf>) -> dnslb::ts::TsSettings {
    let mut s = kit::ts_settings(zones);
    s.origin = Name::from_ascii(origin).unwrap();
    s
}

/// `dnslb check` of one `[[ts]]` with tables at `origin` and `zones`
/// (file names in `dir`): its stderr, and whether it passed.
fn check(dir: &ZoneDir, origin: &str, zones: &[&str]) -> (bool, String) {
    let list: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    let config = dir.write(
        "c.toml",
        &format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{}\"\norigin = \"{origin}\"\n\
             zones = [{}]\n",
            kit::free_port(),
            list.join(", ")
        ),
    );
    let out = kit::dnslb_check(&config, dir.path());
    (out.status.success(), out.stderr)
}

/// The line of `file` holding the zone's SOA (1-based).
fn soa_line(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    1 + text
        .lines()
        .position(|l| l.split_whitespace().nth(3) == Some("SOA") || l.contains(" SOA "))
        .unwrap()
}

#[test]
fn a_table_below_a_pre_signed_zone_with_no_delegation_to_it_is_refused_naming_both_files() {
    let test =
        "a_table_below_a_pre_signed_zone_with_no_delegation_to_it_is_refused_naming_both_files";
    if kit::need(test, SIGN).is_none() {
        return;
    }
    let unsigned = kit::dnssec_fixture("sig.test.zone");
    let (_signed, dir, zone) = signed_in_dir(&unsigned, Denial::Nsec);
    let parent_at = format!("{}:{}", zone.display(), soa_line(&zone));
    // x.sig.test (absent from the signed zone), deep below an empty
    // non-terminal (b.c), and below plain data (www): no cut in the parent.
    for origin in ["x.sig.test.", "a.b.c.sig.test.", "in.www.sig.test."] {
        let table = table_at(&dir, origin);
        for files in [
            vec![zone.clone(), table.clone()],
            vec![table.clone(), zone.clone()],
        ] {
            let err = TableServer::load(at_origin(origin, files))
                .map(drop)
                .unwrap_err()
                .to_string();
            let want = format!(
                "{}: this PROJ table's origin {origin} lies inside sig.test., signed in its \
                 file (pre-signed) at {parent_at}, which has no delegation (NS) to it",
                table.display()
            );
            assert!(err.starts_with(&want), "{test}: {err}\nwant: {want}");
        }
        let (passed, stderr) = check(&dir, origin, &["sig.zone", "extra.txt"]);
        assert!(!passed, "{test}: {origin}: {stderr}");
        assert!(
            stderr.contains("extra.txt: this PROJ table's origin")
                && stderr.contains(&format!("sig.zone:{}", soa_line(&zone))),
            "{test}: {origin}: {stderr}"
        );
    }
    // An unsigned zone file below it, named at its SOA's line.
    let child = dir.write(
        "child.zone",
        "$ORIGIN x.sig.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n\
         @ NS ns\nns A 192.0.2.7\n",
    );
    let err = TableServer::load(at_origin(".", vec![zone.clone(), child.clone()]))
        .map(drop)
        .unwrap_err()
        .to_string();
    let want = format!(
        "{}:3: this zone x.sig.test. lies inside sig.test., signed in its file (pre-signed) \
         at {parent_at}",
        child.display()
    );
    assert!(err.starts_with(&want), "{test}: {err}\nwant: {want}");
    let (passed, stderr) = check(&dir, ".", &["sig.zone", "child.zone"]);
    assert!(
        !passed && stderr.contains("child.zone:3: this zone x.sig.test."),
        "{test}: {stderr}"
    );
}

/// The TS serving the pre-signed `sig.test` and a table at `origin` (a
/// name below it), signing the table when `dnssec` is given.
async fn serve_below(
    dir: &ZoneDir,
    zone: PathBuf,
    origin: &str,
    dnssec: Option<Dnssec>,
) -> kit::TestTs {
    let table = table_at(dir, origin);
    let mut s = at_origin(origin, vec![zone, table]);
    s.dnssec = dnssec;
    kit::start_ts(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_at_an_insecure_delegation_of_a_pre_signed_zone_is_served_provably_insecure() {
    let test = "a_table_at_an_insecure_delegation_of_a_pre_signed_zone_is_served_provably_insecure";
    if kit::need(test, SIGN_AND_VALIDATE).is_none() {
        return;
    }
    // sig.test delegates insecure.sig.test (NS, no DS; the NSEC says so).
    let unsigned = kit::dnssec_fixture("sig.test.zone");
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let (signed, dir, zone) = signed_in_dir(&unsigned, denial);
        // At the cut, and below it.
        for origin in ["insecure.sig.test.", "x.insecure.sig.test."] {
            let ts = serve_below(&dir, zone.clone(), origin, None).await;
            let name = format!("www.{origin}");
            let said = delv(&signed, ts.addr, &name);
            assert!(
                said.contains("; unsigned answer") && said.contains("192.0.2.99"),
                "{test}: {denial:?} {name}: {said}"
            );
            // The parent's own data still validates.
            let said = delv(&signed, ts.addr, "www.sig.test.");
            assert!(said.contains("; fully validated"), "{test}: {said}");
            ts.stop().await;
            let (passed, stderr) = check(&dir, origin, &["sig.zone", "extra.txt"]);
            assert!(passed, "{test}: {origin}: {stderr}");
        }
    }
    // The other way round, a pre-signed zone below an unsigned table: a
    // child like any other, loaded.
    let (_signed, dir, zone) = signed_in_dir(&unsigned, Denial::Nsec);
    let table = table_at(&dir, "test.");
    TableServer::load(at_origin("test.", vec![zone, table])).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_ts_signs_at_a_secure_delegation_of_a_pre_signed_zone_validates() {
    let test = "a_table_the_ts_signs_at_a_secure_delegation_of_a_pre_signed_zone_validates";
    if kit::need(test, SIGN_AND_VALIDATE).is_none() {
        return;
    }
    // The table's keys made first, their DS put in the parent at
    // secure.sig.test (in place of the fixture's made-up DS), the parent
    // signed; the TS signs the table with those keys.
    let dir = ZoneDir::new();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let keygen = |ksk: bool| {
        let mut args = vec!["-q", "-a", "ECDSAP256SHA256", "-n", "ZONE", "-K"];
        args.push(kit::path_str(&keys));
        if ksk {
            args.extend(["-f", "KSK"]);
        }
        args.push("secure.sig.test.");
        kit::run_tool("dnssec-keygen", &args)
            .stdout
            .trim()
            .to_owned()
    };
    let ksk = keygen(true);
    keygen(false);
    let ds = kit::run_tool(
        "dnssec-dsfromkey",
        &["-2", kit::path_str(&keys.join(format!("{ksk}.key")))],
    )
    .stdout;
    let ds = ds.trim();
    assert!(ds.contains(" DS "), "{test}: {ds}");
    let fixture = std::fs::read_to_string(kit::dnssec_fixture("sig.test.zone")).unwrap();
    let text: String = fixture
        .lines()
        .map(|l| {
            if l.starts_with("secure ") && l.contains(" DS ") {
                ds.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(ds), "{test}");
    let unsigned = dir.write("parent.zone", &(text + "\n"));
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let signed = kit::sign_zone("sig.test", &unsigned, Signer::Bind, denial);
        let zone = dir.copy("sig.zone", &signed.file);
        let dnssec = Dnssec {
            keys: keys.clone(),
            algorithm: DnssecAlgorithm::EcdsaP256Sha256,
            denial: Denying::Nsec,
        };
        let ts = serve_below(&dir, zone, "secure.sig.test.", Some(dnssec)).await;
        let said = delv(&signed, ts.addr, "www.secure.sig.test.");
        assert!(
            said.contains("; fully validated") && said.contains("192.0.2.99"),
            "{test}: {denial:?}: {said}"
        );
        ts.stop().await;
    }
}

/// A table below a zone the TS signs itself (`dnssec`), with no delegation
/// to it, would be served bogus (`delv` with the zone's DS: "broken trust
/// chain" for the table's name): it is refused as below a pre-signed zone;
/// at a delegation it loads.
#[test]
fn a_table_below_a_zone_the_ts_signs_with_no_delegation_to_it_is_refused() {
    let test = "a_table_below_a_zone_the_ts_signs_with_no_delegation_to_it_is_refused";
    let dir = ZoneDir::new();
    let zone = dir.copy("sig.zone", &kit::dnssec_fixture("sig.test.zone"));
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let signing = |origin: &str, files: Vec<PathBuf>| {
        let mut s = at_origin(origin, files);
        s.dnssec = Some(Dnssec {
            keys: keys.clone(),
            algorithm: DnssecAlgorithm::EcdsaP256Sha256,
            denial: Denying::Nsec,
        });
        s
    };
    let table = table_at(&dir, "x.sig.test.");
    let err = TableServer::load(signing("x.sig.test.", vec![zone.clone(), table.clone()]))
        .map(drop)
        .unwrap_err()
        .to_string();
    let want = format!(
        "{}: this PROJ table's origin x.sig.test. lies inside sig.test., signed by this TS \
         (`dnssec`) at {}:{}, which has no delegation (NS) to it",
        table.display(),
        zone.display(),
        soa_line(&zone)
    );
    assert!(err.starts_with(&want), "{test}: {err}\nwant: {want}");
    // Unsigned, the same files are two zones as before.
    TableServer::load(at_origin("x.sig.test.", vec![zone.clone(), table])).unwrap();
    // At the parent's insecure delegation the table answers for itself.
    let table = table_at(&dir, "insecure.sig.test.");
    TableServer::load(signing("insecure.sig.test.", vec![zone, table])).unwrap();
}
