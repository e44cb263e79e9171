//! Keys made, read back, chosen to sign, and refused.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};

use super::*;
use crate::ts::dnssec::presigned::stamp;

/// 2026-01-01 00:00:00 UTC.
const NOW: u32 = 1_767_225_600;

use crate::dns::fixtures::name;

/// The `.key` and `.private` files of `dir`.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn one_key(keys: &ZoneKeys) -> &ZoneKey {
    let all: Vec<&ZoneKey> = keys.published().collect();
    assert_eq!(all.len(), 1);
    all[0]
}

#[test]
fn timing_decides_published_and_active() {
    let t = |publish, activate, inactive, delete| Timing {
        publish,
        activate,
        inactive,
        delete,
    };
    let (past, future) = (Some(NOW - 10), Some(NOW + 10));
    // (timing, published, active)
    for (timing, published, active) in [
        (Timing::default(), true, true),
        (t(past, past, None, None), true, true),
        (t(Some(NOW), Some(NOW), None, None), true, true),
        (t(past, future, None, None), true, false),
        (t(future, future, None, None), false, false),
        (t(past, past, past, None), true, false),
        (t(past, past, future, future), true, true),
        (t(past, past, past, past), false, false),
        (t(past, past, None, Some(NOW)), false, false),
        // A standby key (`dnssec-keygen -A none`): published, not signing.
        (t(past, None, None, None), true, false),
        (t(None, past, None, None), true, true),
    ] {
        assert_eq!(timing.published(NOW), published, "{timing:?}");
        assert_eq!(timing.active(NOW), active, "{timing:?}");
    }
}

#[test]
fn a_new_zone_gets_one_csk_written_as_dnssec_keygen_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys/ts1");
    let keys = ZoneKeys::load_or_create(
        &dir,
        &name("Example.COM."),
        DnssecAlgorithm::EcdsaP256Sha256,
        NOW,
    )
    .unwrap();
    let key = one_key(&keys);
    assert_eq!(
        (key.flags(), key.algorithm(), key.is_sep()),
        (257, 13, true)
    );
    assert_eq!(key.dnskey_rdata().len(), 4 + 64);
    let base = format!("Kexample.com.+013+{:05}", key.tag());
    let files = key_files(&dir);
    assert_eq!(
        files,
        [
            dir.join(format!("{base}.key")),
            dir.join(format!("{base}.private"))
        ]
    );
    let mode = std::fs::metadata(&files[1]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let private = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        private
            .starts_with("Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: ")
    );
    assert!(
        private.ends_with(
            "Created: 20260101000000\nPublish: 20260101000000\nActivate: 20260101000000\n"
        )
    );
    let public = std::fs::read_to_string(&files[0]).unwrap();
    let tag = key.tag();
    assert!(public.starts_with(&format!(
        "; This is a key-signing key, keyid {tag}, for example.com.\n\
         ; Created: 20260101000000 (Thu Jan  1 00:00:00 2026)\n"
    )));
    assert!(public.contains("\nexample.com. IN DNSKEY 257 3 13 "));
}

#[test]
fn a_restart_reads_the_same_key_and_the_root_zone_has_its_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (origin, alg, prefix) in [
        (
            "example.com.",
            DnssecAlgorithm::Ed25519,
            "Kexample.com.+015+",
        ),
        (".", DnssecAlgorithm::EcdsaP256Sha256, "K.+013+"),
    ] {
        let first = ZoneKeys::load_or_create(tmp.path(), &name(origin), alg, NOW).unwrap();
        let again = ZoneKeys::load_or_create(tmp.path(), &name(origin), alg, NOW + 1).unwrap();
        assert_eq!(first.tags(), again.tags());
        assert_eq!(
            one_key(&first).dnskey_rdata(),
            one_key(&again).dnskey_rdata()
        );
        let file = tmp
            .path()
            .join(format!("{prefix}{:05}.key", one_key(&first).tag()));
        assert!(file.exists(), "{}", file.display());
    }
    // The configured algorithm changed: the zone's keys of the other one
    // are still its keys (no new key made beside them, which would drop
    // the key the parent's DS names); `algorithm` only says what a key
    // made for an empty folder is.
    assert_eq!(key_files(tmp.path()).len(), 4);
    let ecdsa = ZoneKeys::load_or_create(
        tmp.path(),
        &name("example.com."),
        DnssecAlgorithm::EcdsaP256Sha256,
        NOW,
    )
    .unwrap();
    assert_eq!(one_key(&ecdsa).algorithm(), 15);
    assert_eq!(key_files(tmp.path()).len(), 4);
}

/// Writes a key of `origin` and `alg` in `dir` with `timing` (as
/// `dnssec-keygen` then `dnssec-settime` would): its tag.
fn write_key(dir: &Path, origin: &Name, alg: DnssecAlgorithm, timing: Timing) -> u16 {
    let other = tempfile::tempdir().unwrap();
    let made = ZoneKeys::load_or_create(other.path(), origin, alg, NOW).unwrap();
    let tag = one_key(&made).tag();
    let line = |field: &str, t: Option<u32>| {
        t.map_or(String::new(), |t| format!("{field}: {}\n", stamp(t)))
    };
    for path in key_files(other.path()) {
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if path.extension().unwrap() == "private" {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("Publish") && !l.starts_with("Activate"))
                .collect();
            format!(
                "{}\n{}{}{}{}",
                kept.join("\n"),
                line("Publish", timing.publish),
                line("Activate", timing.activate),
                line("Inactive", timing.inactive),
                line("Delete", timing.delete)
            )
        } else {
            text.lines()
                .filter(|l| !l.starts_with(';'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    tag
}

fn timing(publish: Option<u32>, activate: Option<u32>, inactive: Option<u32>) -> Timing {
    Timing {
        publish,
        activate,
        inactive,
        delete: None,
    }
}

#[test]
fn an_algorithm_rollover_signs_every_rrset_with_both_algorithms() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = name("example.com.");
    let (ecdsa, ed) = (DnssecAlgorithm::EcdsaP256Sha256, DnssecAlgorithm::Ed25519);
    let long_ago = Some(NOW - 30 * 86_400);
    let old = write_key(tmp.path(), &origin, ecdsa, timing(long_ago, long_ago, None));
    let new = write_key(tmp.path(), &origin, ed, timing(Some(NOW), Some(NOW), None));
    // The keys that sign `rtype`'s RRsets, by algorithm then tag.
    let signing = |keys: &ZoneKeys, rtype| -> Vec<(u8, u16)> {
        let mut got: Vec<_> = keys
            .signing(rtype)
            .map(|k| (k.algorithm(), k.tag()))
            .collect();
        got.sort_unstable();
        got
    };
    let both = [(13, old), (15, new)];
    // Both active: every RRset signed by a key of each algorithm, whatever
    // the configured algorithm.
    for alg in [ecdsa, ed] {
        let keys = ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap();
        assert_eq!(keys.published().count(), 2);
        for rtype in [DNSKEY, DATA] {
            assert_eq!(signing(&keys, rtype), both);
        }
    }
    assert_eq!(key_files(tmp.path()).len(), 4);

    // The old algorithm retired before its Delete (RFC 6781 §4.1.4: its
    // RRSIGs go after its DNSKEYs): it still signs while published.
    let tmp = tempfile::tempdir().unwrap();
    let retired = timing(long_ago, long_ago, Some(NOW - 10));
    let old = write_key(tmp.path(), &origin, ecdsa, retired);
    let new = write_key(tmp.path(), &origin, ed, timing(Some(NOW), Some(NOW), None));
    let keys = ZoneKeys::load_or_create(tmp.path(), &origin, ed, NOW).unwrap();
    assert_eq!(signing(&keys, DATA), [(13, old), (15, new)]);
    // A new algorithm's key published before its Activate signs too.
    let tmp = tempfile::tempdir().unwrap();
    let old = write_key(tmp.path(), &origin, ecdsa, timing(long_ago, long_ago, None));
    let ahead = timing(Some(NOW), Some(NOW + 3600), None);
    let new = write_key(tmp.path(), &origin, ed, ahead);
    let keys = ZoneKeys::load_or_create(tmp.path(), &origin, ecdsa, NOW).unwrap();
    assert_eq!(signing(&keys, DNSKEY), [(13, old), (15, new)]);
    // A standby key of the other algorithm (no Activate) does not.
    let tmp = tempfile::tempdir().unwrap();
    let old = write_key(tmp.path(), &origin, ecdsa, timing(long_ago, long_ago, None));
    write_key(tmp.path(), &origin, ed, timing(Some(NOW), None, None));
    let keys = ZoneKeys::load_or_create(tmp.path(), &origin, ecdsa, NOW).unwrap();
    assert_eq!(signing(&keys, DATA), [(13, old)]);
    assert_eq!(keys.published().count(), 2);
}

#[test]
fn a_published_key_of_an_algorithm_the_ts_cannot_sign_with_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = name("example.com.");
    let alg = DnssecAlgorithm::EcdsaP256Sha256;
    ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap();
    // An RSASHA256 key as dnssec-keygen writes it (material cut short: it
    // is never read), retired but not deleted.
    let path = tmp.path().join("Kexample.com.+008+12345.key");
    std::fs::write(
        &path,
        "; Delete: 20260201000000 (Sun Feb  1 00:00:00 2026)\n\
         example.com. IN DNSKEY 257 3 8 AwEAAc0=\n",
    )
    .unwrap();
    std::fs::write(
        path.with_extension("private"),
        "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nModulus: AwEAAc0=\n\
         Inactive: 20251201000000\n",
    )
    .unwrap();
    let err = ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: algorithm 8 is not one the TS signs with",
            path.display()
        )),
        "{err}"
    );
    // Past its Delete it is gone from the zone: left alone.
    let keys = ZoneKeys::load_or_create(tmp.path(), &origin, alg, 1_769_904_000).unwrap();
    assert_eq!(keys.published().count(), 1);
}

#[test]
fn signatures_verify_with_the_dnskey_public_key() {
    for alg in DnssecAlgorithm::ALL.iter().copied() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = ZoneKeys::load_or_create(tmp.path(), &name("a.test."), alg, NOW).unwrap();
        let key = one_key(&keys);
        let public = &key.dnskey_rdata()[4..];
        let data = b"the RRSIG RDATA and the RRset, canonical";
        let sig = key.sign(data).unwrap();
        assert_eq!(sig.len(), 64);
        let verify = |data: &[u8]| match alg {
            DnssecAlgorithm::EcdsaP256Sha256 => {
                let point = [&[4u8][..], public].concat();
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(data, &sig)
            }
            DnssecAlgorithm::Ed25519 => UnparsedPublicKey::new(&ED25519, public).verify(data, &sig),
        };
        assert!(verify(data).is_ok(), "{alg}");
        assert!(verify(b"other data").is_err(), "{alg}");
    }
}

/// The one `.key` file of `dir`, rewritten by `edit`.
fn edit_file(dir: &Path, ext: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let path = key_files(dir)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    path
}

#[test]
fn key_files_are_read_tolerantly() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = name("example.com.");
    let alg = DnssecAlgorithm::EcdsaP256Sha256;
    let made = ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap();
    let rdata = one_key(&made).dnskey_rdata().to_vec();
    // TTL and class, the key split over words and lines in parentheses,
    // a comment after the record.
    edit_file(tmp.path(), "key", |text| {
        let (comments, record) = text.split_at(text.find("example.com. IN").unwrap());
        let key = record.rsplit(' ').next().unwrap().trim();
        let (a, b) = key.split_at(40);
        format!("{comments}EXAMPLE.com. 3600 IN DNSKEY 257 3 13 ( {a}\n  {b} ) ; ksk\n")
    });
    let read = ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap();
    assert_eq!(one_key(&read).dnskey_rdata(), rdata);
}

#[test]
fn bad_key_files_are_errors_naming_the_file() {
    let origin = name("example.com.");
    let alg = DnssecAlgorithm::EcdsaP256Sha256;
    let fresh = || {
        let tmp = tempfile::tempdir().unwrap();
        ZoneKeys::load_or_create(tmp.path(), &origin, alg, NOW).unwrap();
        tmp
    };
    let load = |dir: &Path| {
        ZoneKeys::load_or_create(dir, &origin, alg, NOW)
            .unwrap_err()
            .to_string()
    };

    let tmp = fresh();
    let path = edit_file(tmp.path(), "private", |t| {
        t.replace("PrivateKey: ", "PrivateKey: !!")
    });
    assert_eq!(
        load(tmp.path()),
        format!("{}:3: PrivateKey: bad base64", path.display())
    );

    // Another key's private half: ring refuses the pair.
    let tmp = fresh();
    let other = fresh();
    let theirs = edit_file(other.path(), "private", str::to_string);
    let path = edit_file(tmp.path(), "private", |_| {
        std::fs::read_to_string(&theirs).unwrap()
    });
    let err = load(tmp.path());
    assert!(
        err.starts_with(&format!("{}: not a usable key: ", path.display())),
        "{err}"
    );

    let tmp = fresh();
    let path = edit_file(tmp.path(), "key", |t| t.replace(" 257 3 13 ", " 257 3 8 "));
    assert!(
        load(tmp.path()).starts_with(&format!("{}:5: expected a zone key", path.display())),
        "{}",
        load(tmp.path())
    );

    let tmp = fresh();
    let path = edit_file(tmp.path(), "key", |t| {
        t.replace("example.com. IN", "other. IN")
    });
    assert!(load(tmp.path()).starts_with(&format!(
        "{}:5: expected a DNSKEY of example.com., got 'other.'",
        path.display()
    )));

    let tmp = fresh();
    let path = edit_file(tmp.path(), "private", |t| {
        t.replace("Activate: 20260101000000", "Activate: 2026-01-01")
    });
    assert_eq!(
        load(tmp.path()),
        format!(
            "{}:6: Activate: expected a time YYYYMMDDHHMMSS, got '2026-01-01'",
            path.display()
        )
    );

    let tmp = fresh();
    let private = edit_file(tmp.path(), "private", str::to_string);
    std::fs::remove_file(&private).unwrap();
    let key = private.with_extension("key");
    assert_eq!(
        load(tmp.path()),
        format!(
            "{}: no private key beside it ({} is missing)",
            key.display(),
            private.display()
        )
    );

    // Keys, but none active: an error, not a new key beside them.
    let tmp = fresh();
    edit_file(tmp.path(), "private", |t| {
        format!("{t}Inactive: 20251231000000\n")
    });
    let tag = load(tmp.path());
    assert!(
        tag.contains("no key of example.com. is active now (keys "),
        "{tag}"
    );
    assert_eq!(key_files(tmp.path()).len(), 2);
}

/// A key of `flags` made on the spot, published long ago (settled), and
/// active or not.
fn key(flags: u16, active: bool) -> ZoneKey {
    let alg = DnssecAlgorithm::Ed25519;
    let (private, public) = KeyPair::generate(alg).unwrap();
    let mut rdata = flags.to_be_bytes().to_vec();
    rdata.extend_from_slice(&[3, 15]);
    rdata.extend_from_slice(&public);
    ZoneKey {
        pair: KeyPair::from_halves(alg, &private, &public).unwrap(),
        tag: material::key_tag(&rdata),
        rdata,
        published: true,
        active,
        settled: true,
        timing: Timing::default(),
    }
}

#[test]
fn sep_keys_sign_the_key_set_and_the_others_the_rest() {
    let signing = |keys: &ZoneKeys, rtype: u16| -> Vec<u16> {
        keys.signing(rtype).map(ZoneKey::tag).collect()
    };
    // KSK + ZSK: the KSK signs DNSKEY, CDS and CDNSKEY; the ZSK all else.
    let keys = ZoneKeys {
        keys: vec![key(257, true), key(256, true)],
    };
    let (ksk, zsk) = (keys.keys[0].tag(), keys.keys[1].tag());
    for rtype in [48, 59, 60] {
        assert_eq!(signing(&keys, rtype), [ksk]);
    }
    for rtype in [1, 6, 46, 47, 50] {
        assert_eq!(signing(&keys, rtype), [zsk]);
    }
    // Published, signing the key set, signing the data: each counted.
    assert_eq!(keys.tags(), [2, ksk, zsk, 1, ksk, 1, zsk]);
    // A CSK alone signs everything.
    let keys = ZoneKeys {
        keys: vec![key(257, true)],
    };
    assert_eq!(signing(&keys, 48), signing(&keys, 1));
    // ZSKs alone (no SEP flag): every active key signs the key set too.
    let keys = ZoneKeys {
        keys: vec![key(256, true), key(256, false)],
    };
    let active = keys.keys[0].tag();
    assert_eq!(signing(&keys, 48), [active]);
    assert_eq!(signing(&keys, 1), [active]);
    // A ZSK pre-published, not yet active: the KSK signs everything meanwhile.
    let keys = ZoneKeys {
        keys: vec![key(257, true), key(256, false)],
    };
    let ksk = keys.keys[0].tag();
    assert_eq!(signing(&keys, 1), [ksk]);
    assert_eq!(keys.published().count(), 2);
    assert_eq!(keys.tags(), [2, ksk, keys.keys[1].tag(), 1, ksk, 1, ksk]);
    // A ZSK published less than a day ago, already active: a resolver may
    // still hold the DNSKEY RRset without it, so the KSK signs data too.
    let mut fresh = key(256, true);
    fresh.settled = false;
    let keys = ZoneKeys {
        keys: vec![key(257, true), fresh],
    };
    let (ksk, zsk) = (keys.keys[0].tag(), keys.keys[1].tag());
    assert_eq!(signing(&keys, 1), [ksk, zsk]);
    assert_eq!(signing(&keys, 48), [ksk]);
    // Settled, it signs data alone: what the keys do changed.
    let before = keys.tags();
    let mut keys = keys;
    keys.keys[1].settled = true;
    assert_ne!(keys.tags(), before);
}

#[test]
fn the_next_key_event_is_the_first_timing_change_after_now() {
    let t = Timing {
        publish: Some(1000),
        activate: Some(5000),
        inactive: None,
        delete: Some(900_000),
    };
    assert_eq!(t.next_event(0, true), Some(1000));
    assert_eq!(t.next_event(1000, true), Some(5000));
    // Then, for a ZSK, the day after its publication, when it may sign data
    // alone; a SEP key has no such day.
    assert_eq!(t.next_event(5000, true), Some(1000 + SETTLE));
    assert_eq!(t.next_event(5000, false), Some(900_000));
    assert_eq!(t.next_event(1000 + SETTLE, true), Some(900_000));
    assert_eq!(t.next_event(900_000, true), None);
    assert!(!t.settled(1000 + SETTLE - 1) && t.settled(1000 + SETTLE));
}

#[test]
fn servers_starting_together_make_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let tags: Vec<Vec<u16>> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let alg = DnssecAlgorithm::EcdsaP256Sha256;
                    ZoneKeys::load_or_create(&dir, &name("a.test."), alg, NOW)
                        .unwrap()
                        .tags()
                })
            })
            .collect();
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(tags.iter().all(|t| *t == tags[0]), "{tags:?}");
    assert_eq!(key_files(&dir).len(), 2);
}

#[test]
fn zone_keys_are_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ZoneKeys>();
    send_sync::<ZoneKey>();
}

#[test]
fn canonical_wire_lowers_the_case() {
    assert_eq!(canonical_wire(&name("A.Example.")), b"\x01a\x07example\x00");
    assert_eq!(canonical_wire(&Name::root()), b"\x00");
}
