//! Key rolls the operator drives with BIND's tools while the TS runs: keys
//! made by `dnssec-keygen`, their timing changed by `dnssec-settime`, and
//! the TS (in the test process, zone `rl.test.` signed from a keys folder)
//! told by a reload (what SIGHUP does) or by nothing at all, its periodic
//! wake reading the folder again ([`TableServer::refresh_signatures`] at a
//! chosen time: the clock is the test's). At each step the DNSKEY RRset and
//! the keys signing the data and the key set are checked, and `delv`,
//! given the DS set the roll's schedule puts in the parent, must call the
//! answers validated.
//!
//! [`TableServer::refresh_signatures`]: dnslb::ts::TableServer::refresh_signatures
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dnslb::config::{Denial, Dnssec, DnssecAlgorithm};
use dnslb::ts::dnssec::keys::SETTLE;

use crate::kit::{self, TestTs, ZoneDir};

const ZONE: &str = "rl.test.";

const TOOLS: [&str; 6] = [
    "dnssec-keygen",
    "dnssec-settime",
    "dnssec-dsfromkey",
    "dig",
    "delv",
    "timeout",
];

/// A key's file base name (`Krl.test.+013+TAG`) and tag.
type Key = (String, u16);

/// A test's start, when the [`TOOLS`] are installed (else `None`: skipped):
/// in a zone folder's `keys/`, a KSK and a ZSK published and active since
/// `since` (`dnssec-keygen -P/-A`) and the keys `more` (`dnssec-keygen`
/// arguments each), then the TS signing from it: the folder, `keys/`,
/// the TS and the keys made, in order.
async fn start_with(
    test: &str,
    since: &str,
    more: &[&[&str]],
) -> Option<(ZoneDir, PathBuf, TestTs, Vec<Key>)> {
    kit::need(test, TOOLS)?;
    let dir = ZoneDir::new();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let mut made = vec![
        keygen(&keys, &["-f", "KSK", "-P", since, "-A", since]),
        keygen(&keys, &["-P", since, "-A", since]),
    ];
    made.extend(more.iter().map(|args| keygen(&keys, args)));
    let ts = signing_ts(&dir, &keys).await;
    Some((dir, keys, ts, made))
}

/// [`start_with`] a KSK and a ZSK active for 30 days.
async fn start(test: &str) -> Option<(ZoneDir, PathBuf, TestTs, [Key; 2])> {
    let (dir, keys, ts, made) = start_with(test, "-30d", &[]).await?;
    Some((dir, keys, ts, made.try_into().unwrap()))
}

/// A key of `rl.test.` made in `dir` (`dnssec-keygen ARGS`): its file base
/// name (`Krl.test.+013+TAG`) and tag.
fn keygen(dir: &Path, args: &[&str]) -> (String, u16) {
    keygen_alg(dir, "ECDSAP256SHA256", args)
}

/// [`keygen`] with `algorithm` (`dnssec-keygen -a`).
fn keygen_alg(dir: &Path, algorithm: &str, args: &[&str]) -> (String, u16) {
    let mut all = vec!["-q", "-a", algorithm];
    all.extend_from_slice(args);
    all.push(ZONE);
    let base = kit::stdout_in(dir, "dnssec-keygen", &all);
    let tag = base.rsplit('+').next().unwrap().parse().unwrap();
    (base, tag)
}

/// `dnssec-settime ARGS base` in `dir`.
fn settime(dir: &Path, base: &str, args: &[&str]) {
    let mut all = args.to_vec();
    all.push(base);
    kit::stdout_in(dir, "dnssec-settime", &all);
}

/// A time as BIND's tools take it: `YYYYMMDDHHMMSS`, UTC.
fn stamp(secs: u32) -> String {
    let out = kit::run_tool("date", &["-u", &format!("-d@{secs}"), "+%Y%m%d%H%M%S"]);
    out.stdout.trim().to_owned()
}

/// The DS lines of `keys` (file base names in `dir`) as a `delv -a` file.
fn anchor(dir: &Path, keys: &[&str], name: &str) -> PathBuf {
    let mut text = String::from("trust-anchors {\n");
    for k in keys {
        let ds = kit::stdout_in(dir, "dnssec-dsfromkey", &["-2", &format!("{k}.key")]);
        text.push_str(&kit::static_ds(&ds));
        text.push('\n');
    }
    text.push_str("};\n");
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// What the TS at `addr` serves: the DNSKEY tags, the tags of the RRSIGs
/// over the DNSKEY RRset, and over `www`'s A.
#[derive(Debug, PartialEq, Eq)]
struct Served {
    dnskeys: BTreeSet<u16>,
    key_signers: BTreeSet<u16>,
    data_signers: BTreeSet<u16>,
}

fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let all = kit::tool_args(addr, &[&["+tcp", "+dnssec"], args].concat());
    let out = kit::run_tool("dig", &all);
    assert!(out.status.success(), "dig {args:?}: {}", out.stderr);
    out.stdout
}

/// The key tags of the RRSIGs of a `+noall +answer` listing.
fn rrsig_tags(answer: &str) -> BTreeSet<u16> {
    answer
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"RRSIG")).then(|| f[10].parse().unwrap())
        })
        .collect()
}

fn served(addr: SocketAddr) -> Served {
    let multi = dig(addr, &[ZONE, "DNSKEY", "+multi", "+noall", "+answer"]);
    let dnskeys = multi
        .lines()
        .filter_map(|l| l.split("key id = ").nth(1))
        .map(|t| t.trim().parse().unwrap())
        .collect();
    let keyset = dig(addr, &[ZONE, "DNSKEY", "+noall", "+answer"]);
    let data = dig(addr, &["www.rl.test.", "A", "+noall", "+answer"]);
    Served {
        dnskeys,
        key_signers: rrsig_tags(&keyset),
        data_signers: rrsig_tags(&data),
    }
}

fn set(tags: &[u16]) -> BTreeSet<u16> {
    tags.iter().copied().collect()
}

impl Served {
    /// The DNSKEYs `dnskeys`, their RRset signed by `keyset`, the data by `data`.
    fn of(dnskeys: &[u16], keyset: &[u16], data: &[u16]) -> Served {
        Served {
            dnskeys: set(dnskeys),
            key_signers: set(keyset),
            data_signers: set(data),
        }
    }
}

/// The TS at `addr` serves `want`, and `delv` validates it from the DS of
/// `parent`; `what` names the step.
fn validates(addr: SocketAddr, want: &Served, parent: &Path, what: &str) {
    assert_eq!(&served(addr), want, "{what}");
    let said = delv_complaints(addr, parent);
    assert!(said.is_empty(), "{what}: delv:{said}");
}

/// `delv`'s verdicts on `www.rl.test. A` and a missing name, validating
/// from `anchor`: empty when both are validated.
fn delv_complaints(addr: SocketAddr, anchor: &Path) -> String {
    let mut out = String::new();
    for name in ["www.rl.test.", "nx.rl.test."] {
        let said = kit::delv(anchor, ZONE, addr, name, "A");
        let text = format!("{}{}", said.stdout, said.stderr);
        if !text.contains("fully validated") {
            out.push_str(&format!("\n{name}: {text}"));
        }
    }
    out
}

/// [`validates`] for the TS at `addr`, each step named `test: what`.
fn steps(test: &str, addr: SocketAddr) -> impl Fn(&str, Served, &Path) + '_ {
    move |what, want, parent| validates(addr, &want, parent, &format!("{test}: {what}"))
}

/// A TS signing `rl.test.` from `dir/keys` (NSEC, ECDSA).
async fn signing_ts(dir: &ZoneDir, keys: &Path) -> TestTs {
    let file = dir.write("rl.zone", &kit::small_zone(ZONE, 2026010101));
    let mut s = kit::ts_settings(vec![file]);
    s.dnssec = Some(Dnssec {
        keys: keys.to_path_buf(),
        algorithm: DnssecAlgorithm::EcdsaP256Sha256,
        denial: Denial::Nsec,
    });
    kit::start_ts(s).await
}

/// A KSK double-DS roll, then a ZSK pre-publish roll, each step a key file
/// made or its timing changed and a reload: the reload signs the zone as
/// the timing says now, whether a key was added or only its times moved,
/// and a time set in the future by the change is the TS's next wake (the
/// old ZSK's Delete, then followed at that time with no other reload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_by_settime_take_effect_at_the_reload() {
    let test = "rolls_by_settime_take_effect_at_the_reload";
    let Some((_dir, keys, ts, [(ksk, k1), (zsk, z1)])) = start(test).await else {
        return;
    };
    let step = steps(test, ts.addr);
    let serving = |dnskeys: &[u16], ksk: u16, data: &[u16]| Served::of(dnskeys, &[ksk], data);
    let old_ds = anchor(&keys, &[&ksk], "ds1.conf");
    step("start", serving(&[k1, z1], k1, &[z1]), &old_ds);

    // KSK double-DS roll: the new KSK made, not yet published; the parent
    // gets its DS beside the old one; then the zone swaps the KSKs (timing
    // only); then the parent drops the old DS.
    let (ksk2, k2) = keygen(&keys, &["-f", "KSK", "-P", "+365d", "-A", "+365d"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 0, "{test}: nothing yet");
    let both_ds = anchor(&keys, &[&ksk, &ksk2], "ds2.conf");
    step(
        "both DS at the parent",
        serving(&[k1, z1], k1, &[z1]),
        &both_ds,
    );
    settime(&keys, &ksk2, &["-P", "now", "-A", "now"]);
    settime(&keys, &ksk, &["-I", "now", "-D", "now"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 1, "{test}: the KSK swap");
    step("KSKs swapped", serving(&[k2, z1], k2, &[z1]), &both_ds);
    let new_ds = anchor(&keys, &[&ksk2], "ds3.conf");
    step("old DS gone", serving(&[k2, z1], k2, &[z1]), &new_ds);

    // ZSK roll. The new ZSK pre-published (its file says two days ago, so
    // that it may sign alone once active), not active.
    let (zsk2, z2) = keygen(&keys, &["-P", "-2d", "-A", "+365d"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 1, "{test}: pre-publish");
    step(
        "ZSK pre-published",
        serving(&[k2, z1, z2], k2, &[z1]),
        &new_ds,
    );
    // Timing only: the old ZSK retired, the new one activated.
    settime(&keys, &zsk, &["-I", "now"]);
    settime(&keys, &zsk2, &["-A", "now"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 1, "{test}: the swap");
    step("new ZSK signs", serving(&[k2, z1, z2], k2, &[z2]), &new_ds);
    // Timing only, ahead: the old ZSK's Delete ten minutes from now. The
    // reload changes nothing yet, but the TS wakes then and drops the key.
    let delete = now() + 600;
    settime(&keys, &zsk, &["-D", &stamp(delete)]);
    assert_eq!(ts.ts.reload().unwrap().changed, 0, "{test}: Delete ahead");
    assert_eq!(ts.ts.next_refresh(), Some(delete), "{test}: next wake");
    let dropped = ts.ts.refresh_signatures(delete).unwrap();
    assert_eq!(dropped.len(), 1, "{test}: at the Delete time");
    step("old ZSK removed", serving(&[k2, z2], k2, &[z2]), &new_ds);
    ts.stop().await;
}

/// Seconds since the epoch.
fn now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    u32::try_from(secs).unwrap()
}

/// A ZSK roll scheduled ahead with `dnssec-keygen -P/-A` and `dnssec-settime
/// -I/-D`, with no reload: each time the TS wakes it reads the keys again,
/// wakes next at the next timing event, and signs as the timing says at
/// each event (the clock is the test's: each step is at an event's time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_roll_happens_at_its_times_without_a_reload() {
    let test = "a_scheduled_roll_happens_at_its_times_without_a_reload";
    let Some((_dir, keys, ts, [(ksk, k1), (zsk, z1)])) = start(test).await else {
        return;
    };
    let parent = anchor(&keys, &[&ksk], "ds.conf");
    // The schedule, after the TS signed: the times are the test's (at most
    // 40 minutes ahead, so the signatures made then, valid from an hour
    // before, validate now).
    let t0 = now();
    let (publish, activate, inactive, delete) = (t0 + 600, t0 + 1200, t0 + 1800, t0 + 2400);
    let (_, z2) = keygen(&keys, &["-P", &stamp(publish), "-A", &stamp(activate)]);
    settime(&keys, &zsk, &["-I", &stamp(inactive), "-D", &stamp(delete)]);
    let steps = [
        // (now, signed again, DNSKEYs, data signers, next wake)
        (t0 + 1, false, vec![k1, z1], vec![z1], publish),
        (publish, true, vec![k1, z1, z2], vec![z1], activate),
        // Active but published for less than a day: the old ZSK signs too.
        (activate, true, vec![k1, z1, z2], vec![z1, z2], inactive),
        // The old one retired, the new one not settled: the KSK signs too.
        (inactive, true, vec![k1, z1, z2], vec![k1, z2], delete),
        (delete, true, vec![k1, z2], vec![k1, z2], publish + SETTLE),
    ];
    for (now, signed, dnskeys, data, next) in steps {
        let changed = ts.ts.refresh_signatures(now).unwrap();
        let at = now - t0;
        assert_eq!(!changed.is_empty(), signed, "{test}: t0+{at}: {changed:?}");
        let want = Served::of(&dnskeys, &[k1], &data);
        validates(ts.addr, &want, &parent, &format!("{test}: t0+{at}"));
        assert_eq!(
            ts.ts.next_refresh(),
            Some(next),
            "{test}: t0+{at}: next wake"
        );
    }
    ts.stop().await;
}

/// A standby key (`dnssec-keygen -A none`: a Publish time, no Activate),
/// kept ready for an emergency roll, is published and signs nothing, as
/// `dnssec-signzone -S` treats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_key_is_published_and_signs_nothing() {
    let test = "a_standby_key_is_published_and_signs_nothing";
    let none = ["-P", "-3d", "-A", "none"];
    let Some((_dir, keys, ts, made)) = start_with(test, "-3d", &[&none]).await else {
        return;
    };
    let [(ksk, k), (_, z), (_, standby)] = &made[..] else {
        unreachable!("three keys made")
    };
    let want = Served::of(&[*k, *z, *standby], &[*k], &[*z]);
    validates(ts.addr, &want, &anchor(&keys, &[ksk], "ds.conf"), test);
    ts.stop().await;
}

/// An algorithm rollover (RFC 6781 §4.1.4), ECDSA P-256 to Ed25519, driven
/// by `dnssec-keygen`/`dnssec-settime` and reloads: the new algorithm's
/// keys sign beside the old ones from their publication, the parent's DS
/// moves to the new KSK, the old keys retired keep signing until they
/// leave the DNSKEY RRset (every algorithm there signs every RRset, RFC
/// 4035 §2.2), and `delv` validates every step from the DS the parent
/// holds then. A published key of an algorithm the TS cannot sign with
/// (RSASHA256) is refused at the reload, the zone in force serving on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_rollover_keeps_the_zone_validating_at_every_step() {
    let test = "an_algorithm_rollover_keeps_the_zone_validating_at_every_step";
    let Some((_dir, keys, ts, [(ksk, k1), (zsk, z1)])) = start(test).await else {
        return;
    };
    let serving = Served::of;
    let step = steps(test, ts.addr);
    let old_ds = anchor(&keys, &[&ksk], "ds1.conf");
    step("start", serving(&[k1, z1], &[k1], &[z1]), &old_ds);

    // A key the TS cannot sign with: refused, the zone in force serves on.
    let (rsa, _) = keygen_alg(&keys, "RSASHA256", &["-f", "KSK"]);
    let err = ts.ts.reload().unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "{rsa}.key: algorithm 8 is not one the TS signs with"
        )),
        "{test}: {err}"
    );
    step("RSA refused", serving(&[k1, z1], &[k1], &[z1]), &old_ds);
    settime(&keys, &rsa, &["-D", "-1d"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 0, "{test}: RSA deleted");

    // The new algorithm's KSK and ZSK published and active: both algorithms
    // sign (the new ZSK too new to sign alone: its KSK signs data too).
    let ed = "ED25519";
    let (ksk2, k2) = keygen_alg(&keys, ed, &["-f", "KSK", "-P", "now", "-A", "now"]);
    let (_, z2) = keygen_alg(&keys, ed, &["-P", "now", "-A", "now"]);
    assert_eq!(ts.ts.reload().unwrap().changed, 1, "{test}: new algorithm");
    let all = [k1, z1, k2, z2];
    step(
        "both algorithms",
        serving(&all, &[k1, k2], &[z1, k2, z2]),
        &old_ds,
    );
    // The parent holds both DS, then the new one alone.
    let both_ds = anchor(&keys, &[&ksk, &ksk2], "ds2.conf");
    step("both DS", serving(&all, &[k1, k2], &[z1, k2, z2]), &both_ds);
    let new_ds = anchor(&keys, &[&ksk2], "ds3.conf");
    step("new DS", serving(&all, &[k1, k2], &[z1, k2, z2]), &new_ds);

    // The old keys retired, deleted an hour ahead: still in the DNSKEY
    // RRset, so still signing until then.
    let delete = now() + 3600;
    for base in [&ksk, &zsk] {
        settime(&keys, base, &["-I", "now", "-D", &stamp(delete)]);
    }
    ts.ts.reload().unwrap();
    step(
        "old retired",
        serving(&all, &[k1, k2], &[z1, k2, z2]),
        &new_ds,
    );
    assert_eq!(ts.ts.next_refresh(), Some(delete), "{test}: next wake");
    let dropped = ts.ts.refresh_signatures(delete).unwrap();
    assert_eq!(dropped.len(), 1, "{test}: at the Delete time");
    step("old gone", serving(&[k2, z2], &[k2], &[k2, z2]), &new_ds);
    ts.stop().await;
}
