//! Zones the TS signs itself (`dnssec` in `[[ts]]`, docs/CONFIG.md (the TS)): the unsigned
//! fixtures of the pre-signed tests (RFC 4035 Appendix A's `example.`, and
//! `sig.test.` with wildcards, empty non-terminals, a signed and an unsigned
//! delegation, CNAME chains), and a PROJ table, served signed by an
//! in-process TS whose keys are made on first start. The whole zone, as a
//! secondary transfers it (`dig AXFR`), must pass `dnssec-verify`,
//! `ldns-verify-zone` and `kzonecheck -d on`, for both algorithms and both
//! denials; `delv`, given the DS of the key the TS made, must call every
//! in-zone case of the pre-signed table "fully validated". A reload that
//! changes a table is signed again under a higher serial with the same key,
//! and a restart keeps the key.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dnslb::config::{Denial, Dnssec, DnssecAlgorithm};

use crate::kit::{self, TestTs, ZoneDir};
use crate::kit::{ZONES, delv_every_case};

const ALGORITHMS: [DnssecAlgorithm; 2] =
    [DnssecAlgorithm::EcdsaP256Sha256, DnssecAlgorithm::Ed25519];
const DENIALS: [Denial; 2] = [Denial::Nsec, Denial::Nsec3];

/// A TS serving `zones` signed with `algorithm` and `denial`, its keys in
/// `dir/keys`.
async fn signing_ts(
    dir: &ZoneDir,
    zones: Vec<PathBuf>,
    algorithm: DnssecAlgorithm,
    denial: Denial,
) -> TestTs {
    let mut s = kit::ts_settings(zones);
    s.dnssec = Some(Dnssec {
        keys: dir.path().join("keys"),
        algorithm,
        denial,
    });
    kit::start_ts(s).await
}

/// A TS serving the one-record PROJ table of tbl.test, written into `dir`,
/// signed with `algorithm` and `denial`, its keys in `dir/keys`.
async fn signed_table(dir: &ZoneDir, algorithm: DnssecAlgorithm, denial: Denial) -> TestTs {
    let table = dir.write("t.txt", "www.tbl.test 192.0.2.1 A\n");
    let mut s = kit::ts_settings(vec![table]);
    s.origin = "tbl.test.".parse().unwrap();
    s.dnssec = Some(Dnssec {
        keys: dir.path().join("keys"),
        algorithm,
        denial,
    });
    kit::start_ts(s).await
}

/// The zone `ts` serves now (its first).
fn served_zone(ts: &TestTs) -> dnslb::ts::zone::Zone {
    ts.ts.catalog().zones()[0].clone()
}

/// The fixture `zone` (`tests/data/dnssec/ZONE.zone`) copied into `dir`.
fn fixture(dir: &ZoneDir, zone: &str) -> PathBuf {
    let name = format!("{zone}.zone");
    dir.copy(&name, &kit::dnssec_fixture(&name))
}

/// The zone `zone` as `dig AXFR` transfers it from `server`.
fn axfr(server: SocketAddr, zone: &str) -> String {
    let args = ["AXFR", zone, "+nocmd", "+nostats", "+nocomments"];
    let out = kit::run_tool("dig", &kit::tool_args(server, &args));
    assert!(out.status.success(), "dig AXFR {zone}: {}", out.stderr);
    kit::axfr_zone_file(&out.stdout)
}

/// What `dnssec-verify`, `ldns-verify-zone` and `kzonecheck -d on` say of
/// the zone `zone` in `text`: each complaint, empty when all three pass.
fn verify_with_three_tools(dir: &Path, zone: &str, text: &str) -> String {
    let file = dir.join(format!("{zone}.axfr"));
    std::fs::write(&file, text).unwrap();
    let f = kit::path_str(&file).to_owned();
    let origin = format!("{}.", zone.trim_end_matches('.'));
    let runs: [(&str, Vec<String>); 3] = [
        // One key signs everything (a CSK): -z takes it as it is.
        (
            "dnssec-verify",
            vec!["-z".into(), "-o".into(), origin.clone(), f.clone()],
        ),
        ("ldns-verify-zone", vec![f.clone()]),
        (
            "kzonecheck",
            vec!["-o".into(), origin, "-d".into(), "on".into(), f],
        ),
    ];
    let mut complaints = String::new();
    for (prog, args) in runs {
        let out = kit::run_tool(prog, &args);
        if !out.status.success() {
            writeln!(
                complaints,
                "\n== {prog} {args:?}:\n{}{}",
                out.stdout, out.stderr
            )
            .unwrap();
        }
    }
    complaints
}

/// The SOA serial in an AXFR's text.
fn serial_of(text: &str) -> u32 {
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"SOA")).then(|| f[6].parse().unwrap())
        })
        .unwrap()
}

/// The DNSKEY records in an AXFR's text, as lines.
fn dnskeys_of(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("DNSKEY"))
        .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
        .collect();
    keys.sort();
    keys
}

/// `dig` to transfer a zone and the three zone verifiers.
const VERIFIERS: [&str; 4] = ["dig", "dnssec-verify", "ldns-verify-zone", "kzonecheck"];

/// Every zone the TS signs, with each algorithm and denial, transferred
/// whole, passes three validators' zone checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_the_ts_signs_pass_three_zone_verifiers() {
    let test = "zones_the_ts_signs_pass_three_zone_verifiers";
    kit::or_skip!(kit::need(test, VERIFIERS));
    let mut complaints = String::new();
    let mut checked = 0;
    for algorithm in ALGORITHMS {
        for denial in DENIALS {
            let dir = ZoneDir::new();
            let files = ZONES.iter().map(|(z, _)| fixture(&dir, z)).collect();
            let ts = signing_ts(&dir, files, algorithm, denial).await;
            for (zone, _) in ZONES {
                let text = axfr(ts.addr, zone);
                let nsec3 = text
                    .lines()
                    .any(|l| l.split_whitespace().nth(3) == Some("NSEC3"));
                assert_eq!(nsec3, denial == Denial::Nsec3, "{zone} {denial:?}:\n{text}");
                if denial == Denial::Nsec3 {
                    // RFC 9276: SHA-1, no opt-out, no extra iterations, no salt.
                    let param = text
                        .lines()
                        .map(|l| l.split_whitespace().collect::<Vec<_>>())
                        .find(|f| f.get(3) == Some(&"NSEC3PARAM"))
                        .map(|f| f[4..].join(" "));
                    assert_eq!(param.as_deref(), Some("1 0 0 -"), "{zone}:\n{text}");
                }
                let said = verify_with_three_tools(dir.path(), zone, &text);
                if !said.is_empty() {
                    writeln!(complaints, "\n#### {zone} {algorithm:?} {denial:?}{said}").unwrap();
                }
                checked += 1;
            }
            ts.stop().await;
        }
    }
    assert_eq!(checked, 8);
    assert!(complaints.is_empty(), "{complaints}");
}

/// `delv` with the DS of the key the TS made calls every in-zone case of
/// the pre-signed table "fully validated" (wildcard answers too: no
/// opt-out here), under NSEC and NSEC3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_every_case_of_a_zone_the_ts_signs() {
    let test = "delv_validates_every_case_of_a_zone_the_ts_signs";
    kit::or_skip!(kit::need(test, ["delv", "dnssec-dsfromkey", "timeout"]));
    let mut failures = String::new();
    let mut checked = 0;
    for denial in DENIALS {
        let dir = ZoneDir::new();
        let files = ZONES.iter().map(|(z, _)| fixture(&dir, z)).collect();
        let ts = signing_ts(&dir, files, DnssecAlgorithm::EcdsaP256Sha256, denial).await;
        let (asked, said) = delv_every_case(ts.addr, &dir.path().join("keys"), dir.path());
        checked += asked;
        if !said.is_empty() {
            writeln!(failures, "\n#### {denial:?}{said}").unwrap();
        }
        ts.stop().await;
    }
    assert!(checked > 40, "{checked} cases");
    assert!(failures.is_empty(), "delv disagrees:{failures}");
}

/// A PROJ table signed by the TS: a reload that changes one address is
/// signed again (the new address with its RRSIG, every check passing)
/// under a higher serial and the same key, the unchanged RRsets keeping
/// their signatures; a restart keeps the key and
/// raises the serial again (its signatures are new).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_table_is_signed_again_with_a_higher_serial_and_the_same_key() {
    let test = "a_changed_table_is_signed_again_with_a_higher_serial_and_the_same_key";
    kit::or_skip!(kit::need(test, VERIFIERS));
    let dir = ZoneDir::new();
    let table = dir.write(
        "t.txt",
        "tbl.test ns1.tbl.test NS\nns1.tbl.test 192.0.2.53 A\nwww.tbl.test 192.0.2.1 A\nmail.tbl.test 192.0.2.2 A\n",
    );
    let settings = |dir: &ZoneDir| {
        let mut s = kit::ts_settings(vec![table.clone()]);
        s.origin = "tbl.test.".parse().unwrap();
        s.dnssec = Some(Dnssec {
            keys: dir.path().join("keys"),
            algorithm: DnssecAlgorithm::EcdsaP256Sha256,
            denial: Denial::Nsec,
        });
        s
    };
    let ts = kit::start_ts(settings(&dir)).await;
    let first = axfr(ts.addr, "tbl.test");
    assert_eq!(verify_with_three_tools(dir.path(), "tbl.test", &first), "");
    std::fs::write(
        &table,
        "tbl.test ns1.tbl.test NS\nns1.tbl.test 192.0.2.53 A\nwww.tbl.test 192.0.2.9 A\nmail.tbl.test 192.0.2.2 A\n",
    )
    .unwrap();
    let report = ts.ts.reload().unwrap();
    assert_eq!(report.changed, 1, "{report:?}");
    let second = axfr(ts.addr, "tbl.test");
    assert!(
        second.contains("192.0.2.9") && !second.contains("192.0.2.1\n"),
        "{second}"
    );
    assert_eq!(verify_with_three_tools(dir.path(), "tbl.test", &second), "");
    assert!(serial_of(&second) > serial_of(&first), "{first}\n{second}");
    assert_eq!(dnskeys_of(&first), dnskeys_of(&second));
    // Only what changed is signed anew: the new address and the SOA get
    // new RRSIGs, the unchanged RRsets keep theirs (an IXFR stays small).
    let sig = |text: &str, owner: &str, covered: &str| -> String {
        let found = text.lines().find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&owner) && f.get(3) == Some(&"RRSIG") && f.get(4) == Some(&covered)
        });
        found
            .unwrap_or_else(|| panic!("no RRSIG {covered} at {owner}:\n{text}"))
            .to_string()
    };
    for (owner, covered) in [
        ("mail.tbl.test.", "A"),
        ("ns1.tbl.test.", "NSEC"),
        ("tbl.test.", "DNSKEY"),
    ] {
        assert_eq!(sig(&first, owner, covered), sig(&second, owner, covered));
    }
    for (owner, covered) in [("www.tbl.test.", "A"), ("tbl.test.", "SOA")] {
        assert_ne!(sig(&first, owner, covered), sig(&second, owner, covered));
    }
    // The same files and keys: nothing to sign again.
    assert_eq!(ts.ts.reload().unwrap().changed, 0);
    ts.stop().await;
    let again = kit::start_ts(settings(&dir)).await;
    let third = axfr(again.addr, "tbl.test");
    assert_eq!(
        dnskeys_of(&third),
        dnskeys_of(&second),
        "a restart made new keys"
    );
    assert!(serial_of(&third) > serial_of(&second), "{second}\n{third}");
    assert_eq!(verify_with_three_tools(dir.path(), "tbl.test", &third), "");
    again.stop().await;
}

/// Signatures are made anew before a tenth of their life is left, with no
/// reload: the zone is signed again under a higher serial, its signatures
/// valid from then on, and nothing happens before it is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_refreshed_before_a_tenth_of_their_life_is_left() {
    let dir = ZoneDir::new();
    let ts = signed_table(&dir, DnssecAlgorithm::Ed25519, Denial::Nsec3).await;
    let before = served_zone(&ts);
    let sig = before.signature().unwrap().clone();
    let life = sig.expiration - sig.inception;
    assert_eq!(life, 14 * 86_400 + 3600, "{sig:?}");
    let due = sig.refresh_at();
    assert_eq!(sig.expiration - due, life / 10);
    assert_eq!(ts.ts.next_refresh(), Some(due));
    assert!(ts.ts.refresh_signatures(due - 1).unwrap().is_empty());
    assert_eq!(served_zone(&ts).serial(), before.serial());
    let refreshed = ts.ts.refresh_signatures(due).unwrap();
    assert_eq!(refreshed, vec![before.origin().clone()]);
    let after = served_zone(&ts);
    let new = after.signature().unwrap();
    assert!(after.serial() > before.serial());
    assert_eq!(
        (new.inception, new.expiration),
        (due - 3600, due + 14 * 86_400)
    );
    assert_eq!(new.tags, sig.tags, "the same keys");
    assert!(after.same_data(&before));
    assert!(ts.ts.next_refresh().unwrap() > due);
    ts.stop().await;
}

/// A clock stepped back after a signing (it ran ahead, then NTP corrected
/// it) leaves signatures whose validity has not begun: the next wake signs
/// the zone again, valid from an hour before the new time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_a_clock_that_ran_ahead_are_made_anew() {
    let dir = ZoneDir::new();
    let ts = signed_table(&dir, DnssecAlgorithm::EcdsaP256Sha256, Denial::Nsec).await;
    let signed = served_zone(&ts).signature().unwrap().clone();
    // The clock 30 days ahead: the signatures are due, made anew then.
    let ahead = signed.inception + 30 * 86_400;
    assert_eq!(ts.ts.refresh_signatures(ahead).unwrap().len(), 1);
    // Back to the right time: they are not valid yet, made anew.
    let back = signed.inception + 3600;
    assert_eq!(ts.ts.refresh_signatures(back).unwrap().len(), 1);
    let new = served_zone(&ts).signature().unwrap().clone();
    assert_eq!(new.inception, back - 3600, "{new:?}");
    // And kept after that.
    assert!(ts.ts.refresh_signatures(back + 60).unwrap().is_empty());
    ts.stop().await;
}

/// Three things a zone file may hold that the signer must not take at face
/// value: data below a DNAME (occluded, RFC 6672 §2.4: kept unsigned and
/// out of the NSEC chain, as `dnssec-signzone` leaves it), a DNSKEY pasted
/// into an unsigned file (no RRSIG over it: the zone is signed, the stray
/// key dropped), and a serial raised with nothing else changed (served at
/// once: the served serial never stays below the file's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occluded_data_a_pasted_key_and_a_raised_serial_are_handled() {
    let test = "occluded_data_a_pasted_key_and_a_raised_serial_are_handled";
    kit::or_skip!(kit::need(
        test,
        ["dig", "dnssec-verify", "ldns-verify-zone"]
    ));
    let dir = ZoneDir::new();
    let zone = |serial: u32| {
        format!(
            "$ORIGIN ex.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 604800 300\n\
             @ NS ns1\nns1 A 192.0.2.1\n\
             @ DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n\
             dn DNAME other.example.\n"
        )
    };
    let file = dir.write("ex.zone", &zone(2026010101));
    let ts = signing_ts(
        &dir,
        vec![file.clone()],
        DnssecAlgorithm::EcdsaP256Sha256,
        Denial::Nsec,
    )
    .await;
    let text = axfr(ts.addr, "ex.test");
    assert!(
        !text.contains("mdsswUyr3DPW"),
        "the pasted DNSKEY is served:\n{text}"
    );
    let owners_signed: Vec<&str> = text
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(3), Some("RRSIG" | "NSEC")))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // Data below the DNAME (x.dn) is refused at load now, as NSD and Knot
    // refuse it (tests/integration/zonefile_reader.rs), so none is signed.
    assert!(
        owners_signed.contains(&"dn.ex.test."),
        "the DNAME unsigned:\n{text}"
    );
    // The two signers' verifiers judge the signing (kzonecheck's complaints
    // are left aside, as they were with data below the DNAME).
    let said = verify_with_three_tools(dir.path(), "ex.test", &text);
    let complaints: Vec<&str> = said
        .split("\n== ")
        .filter(|c| !c.is_empty() && !c.starts_with("kzonecheck"))
        .collect();
    assert!(complaints.is_empty(), "{said}");
    assert_eq!(serial_of(&text), 2026010101);
    std::fs::write(&file, zone(2026010500)).unwrap();
    assert_eq!(ts.ts.reload().unwrap().changed, 1);
    assert_eq!(serial_of(&axfr(ts.addr, "ex.test")), 2026010500);
    ts.stop().await;
}
