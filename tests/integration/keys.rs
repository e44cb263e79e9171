//! DNSSEC keys in BIND's files, against BIND's own tools: keys made by
//! `dnssec-keygen` are read with their tag; `dnssec-dsfromkey` and
//! `dnssec-signzone` read the keys we make; a key roll done with
//! `dnssec-keygen` and `dnssec-settime` changes which keys publish and sign
//! when their times come; `dnslb ds` prints what `dnssec-dsfromkey` prints
//! (and nothing for a pre-signed zone); `dnslb check` refuses a pre-signed
//! zone split across partitions.
use std::path::{Path, PathBuf};
use std::process::Command;

use dnslb::config::DnssecAlgorithm;
use dnslb::ts::dnssec::ds::ds_line;
use dnslb::ts::dnssec::keys::{ZoneKey, ZoneKeys};
use hickory_proto::rr::Name;

use crate::kit::{TOOL_LIMIT, need, path_str, run_dnslb, run_ok};

const DAY: u32 = 86_400;

fn now_u32() -> u32 {
    u32::try_from(dnslb::clock::unix_now()).unwrap()
}

fn zone() -> Name {
    Name::from_ascii("example.com.").unwrap()
}

/// Runs BIND's `prog ARGS` in `dir`; its standard output, trimmed.
fn bind(dir: &Path, prog: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(prog);
    cmd.args(args).current_dir(dir);
    let name = format!("`{prog} {}`", args.join(" "));
    run_ok(&name, cmd, TOOL_LIMIT, "").stdout.trim().to_string()
}

/// The tag in a key file's name (`Kexample.com.+013+12345`).
fn tag_of(base: &str) -> u16 {
    base.rsplit('+').next().unwrap().parse().unwrap()
}

fn tags(keys: impl Iterator<Item = u16>) -> Vec<u16> {
    let mut tags: Vec<u16> = keys.collect();
    tags.sort_unstable();
    tags
}

/// Runs `body` in a fresh folder, unless one of `progs` is not installed
/// (then the test is skipped, see [`need`]).
fn in_folder<const N: usize>(progs: [&str; N], body: impl FnOnce(&Path)) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("keys");
    if need(test, progs).is_some() {
        let tmp = tempfile::tempdir().unwrap();
        body(tmp.path());
    }
}

/// The `.key` files of `dir`, sorted.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    files.sort();
    files
}

#[test]
fn keys_made_by_dnssec_keygen_are_read_with_their_tag() {
    in_folder(["dnssec-keygen"], |dir| {
        for (args, alg, flags) in [
            (
                &["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "example.com"][..],
                DnssecAlgorithm::EcdsaP256Sha256,
                257,
            ),
            (
                &["-q", "-a", "ED25519", "example.com"][..],
                DnssecAlgorithm::Ed25519,
                256,
            ),
        ] {
            // A folder each: keys of both algorithms in one are a rollover.
            let dir = &dir.join(alg.as_str());
            std::fs::create_dir(dir).unwrap();
            let base = bind(dir, "dnssec-keygen", args);
            let keys = ZoneKeys::load_or_create(dir, &zone(), alg, now_u32() + 5).unwrap();
            let read: Vec<&ZoneKey> = keys.published().collect();
            assert_eq!(read.len(), 1, "{base}");
            assert_eq!(read[0].tag(), tag_of(&base), "{base}");
            assert_eq!(read[0].flags(), flags, "{base}");
            // A lone key signs every type, its own DNSKEY RRset included.
            assert_eq!(tags(keys.signing(48).map(ZoneKey::tag)), [tag_of(&base)]);
            assert_eq!(tags(keys.signing(1).map(ZoneKey::tag)), [tag_of(&base)]);
            // Read, not replaced: no key was made beside it.
            assert_eq!(key_files(dir).len(), 1);
        }
    });
}

#[test]
fn bind_reads_the_keys_we_make() {
    in_folder(
        ["dnssec-dsfromkey", "dnssec-signzone", "dnssec-verify"],
        |dir| {
            let root = Name::root();
            for (origin, alg) in [
                (zone(), DnssecAlgorithm::EcdsaP256Sha256),
                (zone(), DnssecAlgorithm::Ed25519),
                (root, DnssecAlgorithm::EcdsaP256Sha256),
            ] {
                // The Ed25519 key made in a folder of its own (beside the
                // ECDSA one it would be read, not made), then moved beside it.
                let own = dir.join(alg.as_str());
                let at = if alg == DnssecAlgorithm::Ed25519 {
                    &own
                } else {
                    dir
                };
                let keys = ZoneKeys::load_or_create(at, &origin, alg, now_u32()).unwrap();
                // A restart reads the same key.
                let again = ZoneKeys::load_or_create(at, &origin, alg, now_u32()).unwrap();
                assert_eq!(keys.tags(), again.tags());
                let key = keys.published().next().unwrap();
                let base = format!(
                    "K{}+{:03}+{:05}",
                    if origin.is_root() {
                        "."
                    } else {
                        "example.com."
                    },
                    key.algorithm(),
                    key.tag()
                );
                let bind_ds = bind(at, "dnssec-dsfromkey", &["-2", &format!("{base}.key")]);
                assert_eq!(ds_line(&origin, key), bind_ds);
                for ext in ["key", "private"] {
                    let file = format!("{base}.{ext}");
                    if at != dir {
                        std::fs::rename(at.join(&file), dir.join(&file)).unwrap();
                    }
                }
            }
            // dnssec-signzone signs a zone with our ECDSA and Ed25519 keys (it reads
            // the .private files), and dnssec-verify accepts the result (`-z`: our
            // CSKs, flags 257, sign every RRset).
            let unsigned = "$TTL 300\n\
            @ IN SOA ns1 hostmaster 1 3600 600 604800 300\n\
            @ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.2\n";
            std::fs::write(dir.join("example.com.zone"), unsigned).unwrap();
            let args = [
                "-S",
                "-z",
                "-K",
                ".",
                "-o",
                "example.com",
                "-f",
                "signed.zone",
                "example.com.zone",
            ];
            bind(dir, "dnssec-signzone", &args);
            let signed = std::fs::read_to_string(dir.join("signed.zone")).unwrap();
            for alg in [" 13 ", " 15 "] {
                assert!(
                    signed
                        .lines()
                        .any(|l| l.contains("RRSIG") && l.contains(alg)),
                    "no RRSIG of algorithm{alg}in:\n{signed}"
                );
            }
            bind(
                dir,
                "dnssec-verify",
                &["-z", "-o", "example.com", "signed.zone"],
            );
        },
    );
}

#[test]
fn a_key_roll_made_with_bind_tools_takes_effect_on_time() {
    in_folder(["dnssec-keygen", "dnssec-settime"], |dir| {
        let keygen = |args: &[&str]| tag_of(&bind(dir, "dnssec-keygen", args));
        let ecdsa = ["-q", "-a", "ECDSAP256SHA256"];
        let ksk = keygen(&[&ecdsa[..], &["-f", "KSK", "example.com"]].concat());
        // The old ZSK retires in two days and leaves the RRset a day later; the
        // new one is published now and signs from the day after tomorrow.
        let old_base = bind(
            dir,
            "dnssec-keygen",
            &[&ecdsa[..], &["example.com"]].concat(),
        );
        bind(
            dir,
            "dnssec-settime",
            &["-I", "+2d", "-D", "+3d", &old_base],
        );
        let old = tag_of(&old_base);
        let new = keygen(&[&ecdsa[..], &["-P", "now", "-A", "+2d", "example.com"]].concat());

        let now = now_u32() + 60;
        let at = |when: u32| {
            ZoneKeys::load_or_create(dir, &zone(), DnssecAlgorithm::EcdsaP256Sha256, when).unwrap()
        };
        // (when, published, signing the DNSKEY RRset, signing the others):
        // a ZSK published less than a day ago does not sign data alone (a
        // resolver may hold a DNSKEY RRset without it), the KSK signs too.
        for (when, published, keyset, others) in [
            (
                now,
                vec![ksk, old, new],
                [ksk],
                tags([ksk, old].into_iter()),
            ),
            (now + DAY, vec![ksk, old, new], [ksk], vec![old]),
            (
                now + 2 * DAY + DAY / 2,
                vec![ksk, old, new],
                [ksk],
                vec![new],
            ),
            (now + 4 * DAY, vec![ksk, new], [ksk], vec![new]),
        ] {
            let keys = at(when);
            let day = (when - now) as f64 / f64::from(DAY);
            assert_eq!(
                tags(keys.published().map(ZoneKey::tag)),
                tags(published.into_iter()),
                "day {day}"
            );
            assert_eq!(
                tags(keys.signing(48).map(ZoneKey::tag)),
                keyset,
                "day {day}"
            );
            assert_eq!(tags(keys.signing(1).map(ZoneKey::tag)), others, "day {day}");
        }
        assert_ne!(at(now).tags(), at(now + 3 * DAY).tags());
        // The zone is signed again at each of those changes.
        let first = at(now).next_event(now).unwrap();
        assert!(
            first > now && first <= now + DAY,
            "next key event {first}, now {now}"
        );
        assert_eq!(key_files(dir).len(), 3, "no key made beside BIND's");
    });
}

/// A master file of `zone` (`example.net`), unsigned.
fn unsigned_zone(zone: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 604800 300\n\
         @ IN NS ns1\nns1 IN A 192.0.2.1\n"
    )
}

/// `FILE`, the zone `zone` signed by `dnssec-signzone` with a key made in
/// `dir/presigned` (a pre-signed zone file, as an external signer leaves it).
fn presigned_zone(dir: &Path, zone: &str, file: &str) {
    let signer = dir.join("presigned");
    std::fs::create_dir(&signer).unwrap();
    std::fs::write(signer.join("unsigned"), unsigned_zone(zone)).unwrap();
    bind(
        &signer,
        "dnssec-keygen",
        &["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", zone],
    );
    let out = path_str(&dir.join(file)).to_string();
    let args = ["-S", "-z", "-K", ".", "-o", zone, "-f", &out, "unsigned"];
    bind(&signer, "dnssec-signzone", &args);
}

#[test]
fn dnslb_ds_prints_what_dnssec_dsfromkey_prints() {
    let progs = ["dnssec-dsfromkey", "dnssec-keygen", "dnssec-signzone"];
    in_folder(progs, |dir| {
        // A PROJ table (origin example.com), a master file of its own zone,
        // and a pre-signed zone file: the TS does not sign that one.
        std::fs::write(dir.join("t.txt"), "www.example.com 192.0.2.1 A\n").unwrap();
        std::fs::write(dir.join("org.zone"), unsigned_zone("example.org")).unwrap();
        presigned_zone(dir, "example.net", "net.zone");
        let config = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\n\
            zones = [\"t.txt\", \"org.zone\", \"net.zone\"]\norigin = \"example.com\"\n\
            dnssec = { keys = \"keys\", algorithm = \"ed25519\" }\n\n\
            [[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"t.txt\"]\n";
        std::fs::write(dir.join("config.toml"), config).unwrap();

        let ds = |name: &str| {
            run_dnslb(
                &["ds", "-c", "config.toml", "--name", name],
                dir,
                None,
                TOOL_LIMIT,
            )
        };
        let out = ds("ts1");
        assert!(out.status.success(), "{}", out.stderr);
        let keys = dir.join("keys");
        let files = key_files(&keys);
        assert_eq!(files.len(), 2, "one key per zone it signs, made now");
        let mut bind_ds: Vec<String> = files
            .iter()
            .map(|f| bind(&keys, "dnssec-dsfromkey", &["-2", path_str(f)]))
            .collect();
        let mut ours: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        bind_ds.sort();
        ours.sort();
        assert_eq!(ours, bind_ds);
        assert!(ours[0].starts_with("example.com. IN DS "), "{ours:?}");
        assert!(ours[1].starts_with("example.org. IN DS "), "{ours:?}");
        // Again: the same keys, the same DS.
        assert_eq!(ds("ts1").stdout, out.stdout);

        let out = ds("ts2");
        assert!(!out.status.success());
        assert_eq!(
            out.stderr.trim(),
            "dnslb: error: ts 'ts2' has no dnssec: it signs no zone (add dnssec = { keys = \"DIR\" }); \
             the DS of a zone signed before it is loaded comes from its signer's keys: \
             dnssec-dsfromkey -2 on the KSK's .key file"
        );
    });
}

#[test]
fn check_refuses_a_pre_signed_zone_split_across_partitions() {
    in_folder(["dnssec-keygen", "dnssec-signzone"], |dir| {
        presigned_zone(dir, "example.net", "net.zone");
        std::fs::write(dir.join("t.txt"), "www.example.net 192.0.2.1 A\n").unwrap();
        let config = |layout: &str| {
            format!(
                "[ls]\nlisten = [\"127.0.0.1:0\"]\nlayout = \"{layout}\"\n\n\
                 [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n\n\
                 [[ls.backend]]\nname = \"ts2\"\naddr = \"127.0.0.1:5302\"\n\n\
                 [[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"net.zone\"]\n\n\
                 [[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"t.txt\"]\n\
                 origin = \"example.net\"\n"
            )
        };
        let check = |layout: &str| {
            std::fs::write(dir.join("config.toml"), config(layout)).unwrap();
            run_dnslb(&["check", "-c", "config.toml"], dir, None, TOOL_LIMIT)
        };
        let out = check("partitioned");
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        let want = "config.toml:21: ts.zones: the signed zone example.net. (ts1's zone file \
                    holds its DNSKEY) is split across partitions: table servers ts1, ts2";
        assert!(out.stderr.starts_with(want), "{}", out.stderr);
        let out = check("replicated");
        assert!(out.status.success(), "{}", out.stderr);
    });
}

#[test]
fn dnslb_ds_leaves_out_a_revoked_key() {
    let progs = ["dnssec-dsfromkey", "dnssec-keygen", "dnssec-revoke"];
    in_folder(progs, |dir| {
        std::fs::write(dir.join("t.txt"), "www.rv.test 192.0.2.1 A\n").unwrap();
        let config = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\n\
            zones = [\"t.txt\"]\norigin = \"rv.test\"\ndnssec = { keys = \"keys\" }\n";
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let keys = dir.join("keys");
        std::fs::create_dir(&keys).unwrap();
        let keygen = ["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "rv.test."];
        let old = bind(&keys, "dnssec-keygen", &keygen);
        let new = bind(&keys, "dnssec-keygen", &keygen);
        // RFC 5011: the old KSK revoked (flags 385), its files replaced.
        bind(&keys, "dnssec-revoke", &["-r", old.trim()]);
        let out = run_dnslb(
            &["ds", "-c", "config.toml", "--name", "ts1"],
            dir,
            None,
            TOOL_LIMIT,
        );
        assert!(out.status.success(), "{}", out.stderr);
        let want = bind(
            &keys,
            "dnssec-dsfromkey",
            &["-2", &format!("{}.key", new.trim())],
        );
        assert_eq!(out.stdout.trim(), want.trim());
    });
}
