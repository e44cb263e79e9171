//! Validating resolvers and secondaries in front of zones the TS signs
//! (docs/CONFIG.md (the TS) "Signed zones (DNSSEC)": "a validating resolver (Unbound,
//! `delv`) gets a secure answer for every name of a signed zone, through the
//! TS directly and through the LS"), each a real program:
//!
//! * A validating Unbound (`module-config: "validator iterator"`, the DS
//!   that `dnslb ds` prints as its `trust-anchor`, a `stub-zone` to the
//!   server) sets AD on a positive answer, NXDOMAIN, NODATA (at a name and
//!   at an empty non-terminal), a wildcard answer and a CNAME chain of
//!   `sig.test.` (tests/data/dnssec/sig.test.zone) signed by the TS, NSEC and
//!   NSEC3: from a `dnslb ts` directly, and through a replicated `dnslb ls`
//!   (sequential, round-robin: both answer) in front of it and a second
//!   `dnslb ts` signing with the same keys folder.
//! * The same Unbound answers SERVFAIL for the one RRset of a pre-signed
//!   zone file (`dnssec-signzone`) whose address was changed after signing,
//!   served by a TS, and AD for the zone's other names; with CD=1 it hands
//!   out the changed address (so the SERVFAIL is the validator's verdict).
//! * `delv`, trusting the DS of the keys the TS made, calls every in-zone
//!   case of the pre-signed table ([`crate::kit::ZONES`]) "fully
//!   validated" through that replicated LS, NSEC and NSEC3.
//! * A Knot and an NSD secondary transfer `sig.test.` (AXFR over TCP,
//!   `axfr_allow`) from a TS that signs it, and `delv` validates their
//!   positive, NXDOMAIN, NODATA and wildcard answers; after an edit and a
//!   SIGHUP, the TS's NOTIFY brings both the new address, signed anew,
//!   which `delv` validates too.
//!
//! Every process is stopped by PID (NSD by its process group) from a guard;
//! readiness is polled with real queries in bounded loops.
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::Knot;
use crate::kit::Nsd;
use crate::kit::Unbound;
use crate::kit::{self, Proc, ZoneDir, free_ports, local, ls_head_toml, pair_backends_toml};
use crate::kit::{PEER_READY_LIMIT, need, path_str, show, wait_for, wrapped};
use crate::kit::{anchor, delv, delv_every_case};

const ZONE: &str = "sig.test.";
/// How long a client waits for Unbound's answer.
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// How long a secondary may take to serve a change after the TS's SIGHUP.
const NOTIFY_LIMIT: Duration = Duration::from_secs(10);

/// The denials the TS signs with, as `dnssec.denial` spells them.
const DENIALS: [&str; 2] = ["nsec", "nsec3"];

/// One question to a validating resolver and what a secure answer holds.
struct Secure {
    name: &'static str,
    qtype: RecordType,
    what: &'static str,
    rcode: ResponseCode,
    /// An answer section that is empty (NXDOMAIN, NODATA) or not.
    empty: bool,
}

const fn secure(
    name: &'static str,
    qtype: RecordType,
    what: &'static str,
    rcode: ResponseCode,
    empty: bool,
) -> Secure {
    Secure {
        name,
        qtype,
        what,
        rcode,
        empty,
    }
}

/// Questions of `sig.test.` whose answers a validator must call secure.
const SECURE: &[Secure] = &[
    secure(
        "www.sig.test.",
        RecordType::A,
        "positive",
        ResponseCode::NoError,
        false,
    ),
    secure(
        "nope.sig.test.",
        RecordType::A,
        "NXDOMAIN",
        ResponseCode::NXDomain,
        true,
    ),
    secure(
        "deep.nope.sig.test.",
        RecordType::TXT,
        "NXDOMAIN, deeper",
        ResponseCode::NXDomain,
        true,
    ),
    secure(
        "www.sig.test.",
        RecordType::MX,
        "NODATA",
        ResponseCode::NoError,
        true,
    ),
    secure(
        "y.ent.sig.test.",
        RecordType::A,
        "NODATA at an empty non-terminal",
        ResponseCode::NoError,
        true,
    ),
    secure(
        "foo.wild.sig.test.",
        RecordType::A,
        "wildcard answer",
        ResponseCode::NoError,
        false,
    ),
    secure(
        "foo.wild.sig.test.",
        RecordType::MX,
        "wildcard NODATA",
        ResponseCode::NoError,
        true,
    ),
    secure(
        "chain.sig.test.",
        RecordType::A,
        "CNAME chain",
        ResponseCode::NoError,
        false,
    ),
];

// ---------------------------------------------------------------------------
// Table servers that sign
// ---------------------------------------------------------------------------

/// A `[[ts]]` named `name` on 127.0.0.1:`port` signing `zones` with the
/// keys in `keys` (ECDSA P-256, `denial`); then the `extra` lines (a TS
/// behind an LS may not allow transfers from the LS's address, so those
/// that transfer say so in `extra`).
fn signer_toml(
    name: &str,
    port: u16,
    zones: &[PathBuf],
    keys: &Path,
    denial: &str,
    extra: &str,
) -> String {
    let zones: Vec<String> = zones
        .iter()
        .map(|z| format!("\"{}\"", path_str(z)))
        .collect();
    format!(
        "[[ts]]\n\
         name = \"{name}\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         zones = [{}]\n\
         workers = 1\n\
         dnssec = {{ keys = \"{}\", algorithm = \"ecdsap256sha256\", denial = \"{denial}\" }}\n\
         {extra}\n",
        zones.join(", "),
        path_str(keys)
    )
}

/// `dnslb ts -c CONFIG --name NAME`, waited for until it serves `zone`'s
/// DNSKEY (the zone is signed before it is served).
async fn start_signer(config: &Path, name: &str, port: u16, zone: &str) -> Proc {
    let mut ts = Proc::spawn(
        &format!("dnslb ts --name {name}"),
        wrapped(&[], &["ts", "-c", path_str(config), "--name", name]),
    );
    wait_signed(local(port), zone, &mut ts).await;
    ts
}

/// Polls `addr` until it answers `zone DNSKEY` authoritatively with keys;
/// panics if `proc` exits or after [`PEER_READY_LIMIT`].
async fn wait_signed(addr: SocketAddr, zone: &str, proc: &mut Proc) {
    let signed = |m: &Message| m.metadata.authoritative && !m.answers.is_empty();
    let mut procs = [proc];
    wait_for(
        addr,
        zone,
        RecordType::DNSKEY,
        false,
        PEER_READY_LIMIT,
        &mut procs,
        signed,
    )
    .await;
}

/// The DS lines `dnslb ds -c CONFIG --name NAME` prints for `zone` (it
/// makes the keys when the folder has none yet).
fn ds_lines(config: &Path, name: &str, zone: &str) -> Vec<String> {
    let out = kit::run_dnslb(
        &["ds", "-c", path_str(config), "--name", name],
        Path::new("/"),
        None,
        kit::TOOL_LIMIT,
    );
    assert!(out.status.success(), "dnslb ds: {}", out.stderr);
    let lines: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(zone))
        .map(str::to_owned)
        .collect();
    assert!(
        !lines.is_empty(),
        "dnslb ds printed no DS of {zone}:\n{}",
        out.stdout
    );
    lines
}

/// The fixture `zone` (`tests/data/dnssec/ZONE.zone`, unsigned) copied
/// into `dir`.
fn fixture(dir: &ZoneDir, zone: &str) -> PathBuf {
    let name = format!("{zone}.zone");
    dir.copy(&name, &kit::dnssec_fixture(&name))
}

/// Two `dnslb ts` signing `zones` with one keys folder, and a replicated
/// LS (sequential, round-robin: each TS answers every other question) in
/// front of them. Dropped in field order: the LS, the table servers, then
/// the folder.
struct Pair {
    ls: Proc,
    ts: [Proc; 2],
    /// The first table server's address.
    ts_addr: SocketAddr,
    ls_addr: SocketAddr,
    config: PathBuf,
    dir: ZoneDir,
}

impl Pair {
    async fn start(zones: &[&str], denial: &str) -> Pair {
        let dir = ZoneDir::new();
        let files: Vec<PathBuf> = zones.iter().map(|z| fixture(&dir, z)).collect();
        let keys = dir.path().join("keys");
        let [p1, p2, ls_port] = free_ports(3).try_into().unwrap();
        let text = format!(
            "{}strategy = \"sequential\"\norder = \"round-robin\"\nlayout = \"replicated\"\n\
             \n[ls.health]\nquery = \"{ZONE} SOA\"\n\n{}\n{}\n{}",
            ls_head_toml(ls_port, 2),
            pair_backends_toml(p1, p2),
            signer_toml("ts1", p1, &files, &keys, denial, ""),
            signer_toml("ts2", p2, &files, &keys, denial, ""),
        );
        let config = dir.write("config.toml", &text);
        // The keys first, so that both table servers read the same ones.
        ds_lines(&config, "ts1", ZONE);
        let ts = [
            start_signer(&config, "ts1", p1, ZONE).await,
            start_signer(&config, "ts2", p2, ZONE).await,
        ];
        let mut ls = Proc::spawn("dnslb ls", wrapped(&[], &["ls", "-c", path_str(&config)]));
        let ls_addr = local(ls_port);
        wait_signed(ls_addr, ZONE, &mut ls).await;
        Pair {
            ls,
            ts,
            ts_addr: local(p1),
            ls_addr,
            config,
            dir,
        }
    }

    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Panics if a process has exited.
    fn assert_running(&mut self) {
        self.ls.assert_running();
        self.ts.iter_mut().for_each(Proc::assert_running);
    }
}

// ---------------------------------------------------------------------------
// A validating Unbound
// ---------------------------------------------------------------------------

/// A validating Unbound on a free port resolving `sig.test.` through
/// `server`, trusting `ds` (DS lines), waited for.
async fn validating_unbound(bin: &Path, server: SocketAddr, ds: &[String]) -> Unbound {
    let mut extra = String::new();
    for line in ds {
        writeln!(extra, "\x20 trust-anchor: \"{line}\"").unwrap();
    }
    extra.push_str("\x20 val-log-level: 2\n");
    let port = kit::free_port();
    let mut u = Unbound::start_for(bin, port, (ZONE, server), "validator iterator", &extra);
    u.wait_ready().await;
    u
}

/// `name qtype` to Unbound with RD=1 and AD=1 (and CD as given).
async fn resolve(unbound: &Unbound, name: &str, qtype: RecordType, cd: bool) -> Message {
    let mut q = kit::query_rd(name, qtype, true);
    q.metadata.authentic_data = true;
    q.metadata.checking_disabled = cd;
    kit::udp_exchange(unbound.addr, &q, CLIENT_WAIT)
        .await
        .unwrap_or_else(|| {
            panic!("Unbound gave no answer to {name} {qtype} within {CLIENT_WAIT:?}")
        })
}

/// Asks Unbound every question of [`SECURE`]: each answer that is not
/// secure (AD=1) with the rcode and the (non-)empty answer expected, as a
/// line of text.
async fn insecure_answers(unbound: &Unbound, label: &str) -> String {
    let mut bad = String::new();
    for s in SECURE {
        let m = resolve(unbound, s.name, s.qtype, false).await;
        let md = &m.metadata;
        if !(md.authentic_data && md.response_code == s.rcode && m.answers.is_empty() == s.empty) {
            writeln!(
                bad,
                "{label}: {} {} ({}): want AD=1 {:?}, got AD={} {}",
                s.name,
                s.qtype,
                s.what,
                s.rcode,
                u8::from(md.authentic_data),
                show(&m)
            )
            .unwrap();
        }
    }
    bad
}

/// A validating Unbound in front of `server`, trusting `ds`, asked every
/// question of [`SECURE`]: [`insecure_answers`], followed by Unbound's log
/// when there are any. Unbound is stopped before it returns.
async fn unbound_verdicts(bin: &Path, server: SocketAddr, ds: &[String], label: &str) -> String {
    let mut unbound = validating_unbound(bin, server, ds).await;
    let mut bad = insecure_answers(&unbound, label).await;
    if !bad.is_empty() {
        bad.push_str(&unbound.proc.stderr_now());
    }
    unbound.proc.assert_running();
    bad
}

/// A TS signing `sig.test.` itself: a validating Unbound in front of it
/// sets AD on every answer of [`SECURE`], NSEC and NSEC3; so does one in
/// front of a replicated LS over that TS and another signing with the
/// same keys folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_unbound_sets_ad_from_a_signing_ts_and_through_an_ls() {
    let Some([bin]) = need("validating_unbound_on_signing_ts", ["unbound"]) else {
        return;
    };
    let mut bad = String::new();
    for denial in DENIALS {
        let mut pair = Pair::start(&["sig.test"], denial).await;
        let ds = ds_lines(&pair.config, "ts2", ZONE);
        let direct = format!("{denial}, from ts1 directly");
        bad.push_str(&unbound_verdicts(&bin, pair.ts_addr, &ds, &direct).await);
        let through = format!("{denial}, through the LS");
        bad.push_str(&unbound_verdicts(&bin, pair.ls_addr, &ds, &through).await);
        pair.assert_running();
    }
    assert!(
        bad.is_empty(),
        "answers Unbound did not call secure:\n{bad}"
    );
}

/// A zone file signed by `dnssec-signzone`, then one address changed:
/// Unbound answers SERVFAIL for that RRset only (AD on the zone's other
/// names); with CD=1 it hands the changed address out, so the failure is
/// the validator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_unbound_refuses_a_record_changed_after_signing() {
    let test = "validating_unbound_refuses_a_changed_record";
    let Some([bin, _, _]) = need(test, ["unbound", "dnssec-keygen", "dnssec-signzone"]) else {
        return;
    };
    let signed = kit::sign_zone(
        ZONE,
        &kit::dnssec_fixture("sig.test.zone"),
        kit::Signer::Bind,
        kit::Denial::Nsec,
    );
    let mut changed = 0;
    let text: String = signed
        .text()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 5 && f[0] == "www.sig.test." && f[3] == "A" && f[4] == "192.0.2.10" {
                changed += 1;
                format!("{} {} {} A 192.0.2.11\n", f[0], f[1], f[2])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(
        changed, 1,
        "no `www A 192.0.2.10` line in the signed file:\n{text}"
    );
    let dir = ZoneDir::new();
    let file = dir.write("tampered.zone", &text);
    let port = kit::free_port();
    let mut ts = crate::kit::start_ts_ready("ts", port, &[&file], ZONE).await;
    let mut unbound = validating_unbound(&bin, local(port), std::slice::from_ref(&signed.ds)).await;

    let m = resolve(&unbound, "www.sig.test.", RecordType::A, false).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "a changed record passed validation: {}\n{}",
        show(&m),
        unbound.proc.stderr_now()
    );
    let m = resolve(&unbound, "www.sig.test.", RecordType::A, true).await;
    assert!(
        m.metadata.response_code == ResponseCode::NoError
            && !m.metadata.authentic_data
            && kit::a_addrs(&m) == ["192.0.2.11".parse::<Ipv4Addr>().unwrap()],
        "with CD=1 Unbound hands out what the TS serves: {}",
        show(&m)
    );
    for (name, qtype) in [
        ("mail.sig.test.", RecordType::A),
        ("www.sig.test.", RecordType::AAAA),
    ] {
        let m = resolve(&unbound, name, qtype, false).await;
        assert!(
            m.metadata.authentic_data && m.metadata.response_code == ResponseCode::NoError,
            "{name} {qtype} is untouched, yet not secure: {}\n{}",
            show(&m),
            unbound.proc.stderr_now()
        );
    }
    unbound.proc.assert_running();
    ts.assert_running();
}

// ---------------------------------------------------------------------------
// delv through the LS
// ---------------------------------------------------------------------------

/// `delv`, trusting the DS of the keys the two TS share, calls every
/// in-zone case of the pre-signed table "fully validated" through a
/// replicated LS in front of them, NSEC and NSEC3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_every_case_through_an_ls_over_two_signing_ts() {
    let test = "delv_validates_every_case_through_the_ls";
    if need(test, ["delv", "dnssec-dsfromkey", "timeout"]).is_none() {
        return;
    }
    let mut failures = String::new();
    let mut checked = 0;
    for denial in DENIALS {
        let zones: Vec<&str> = crate::kit::ZONES.iter().map(|(z, _)| *z).collect();
        let mut pair = Pair::start(&zones, denial).await;
        let (asked, said) = delv_every_case(pair.ls_addr, &pair.keys(), pair.dir.path());
        checked += asked;
        if !said.is_empty() {
            writeln!(failures, "\n#### {denial}{said}").unwrap();
        }
        pair.assert_running();
    }
    assert!(checked > 40, "{checked} cases");
    assert!(failures.is_empty(), "delv disagrees:{failures}");
}

// ---------------------------------------------------------------------------
// Secondaries of a signing TS
// ---------------------------------------------------------------------------

/// What `delv` says of `name qtype` at `server` that is not "fully
/// validated" (with `want` in its output when given), as text.
fn delv_complaint(
    anchor: &Path,
    server: SocketAddr,
    (name, qtype): (&str, &str),
    want: Option<&str>,
) -> String {
    let out = delv(anchor, ZONE, server, name, qtype);
    let ok = out.stdout.contains("fully validated") && want.is_none_or(|w| out.stdout.contains(w));
    if ok {
        return String::new();
    }
    format!(
        "\n== {server} {name} {qtype} (want {want:?}):\n{}{}",
        out.stdout, out.stderr
    )
}

/// The questions asked of each secondary: positive, NXDOMAIN, NODATA,
/// wildcard.
const SECONDARY_CASES: [(&str, &str, Option<&str>); 4] = [
    ("www.sig.test.", "A", Some("192.0.2.10")),
    ("nope.sig.test.", "A", None),
    ("www.sig.test.", "MX", None),
    ("foo.wild.sig.test.", "A", Some("192.0.2.99")),
];

/// Polls `addr` until it answers `www.sig.test. A` with `ip`; panics with
/// `logs` after `limit`.
async fn wait_www(
    addr: SocketAddr,
    ip: &str,
    limit: Duration,
    procs: &mut [&mut Proc],
    logs: &dyn Fn() -> String,
) {
    let want = [ip.parse::<Ipv4Addr>().unwrap()];
    let got = kit::poll_answer(
        addr,
        ("www.sig.test.", RecordType::A, false),
        limit,
        procs,
        |m| kit::answers_a(m, &want),
    )
    .await;
    if let Err(last) = got {
        panic!(
            "{addr} did not answer www.sig.test. A {ip} within {limit:?}; last: {}\n{}",
            last.as_ref().map_or("none".into(), show),
            logs()
        );
    }
}

/// Polls Knot, then NSD, until each answers `www.sig.test. A` with `ip`.
async fn wait_both(knot: &Knot, nsd: &Nsd, ip: &str, limit: Duration, ts: &mut Proc) {
    wait_www(knot.addr, ip, limit, &mut [&mut *ts], &|| knot.logs()).await;
    wait_www(nsd.addr, ip, limit, &mut [ts], &|| nsd.logs()).await;
}

/// Knot and NSD, secondaries of a TS that signs `sig.test.` (NSEC, then
/// NSEC3), serve the zone as transferred: `delv` validates their answers;
/// after an edit and a SIGHUP, both serve the new address, signed anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_and_nsd_secondaries_of_a_signing_ts_serve_answers_delv_validates() {
    let test = "secondaries_of_a_signing_ts";
    let Some([knotd, _, _, _]) = need(test, ["knotd", "nsd", "delv", "dnssec-dsfromkey"]) else {
        return;
    };
    for denial in DENIALS {
        secondaries_follow(&knotd, denial).await;
    }
}

/// [`knot_and_nsd_secondaries_of_a_signing_ts_serve_answers_delv_validates`]
/// with `denial`.
async fn secondaries_follow(knotd: &Path, denial: &str) {
    let dir = ZoneDir::new();
    let file = fixture(&dir, "sig.test");
    let keys = dir.path().join("keys");
    let [ts_port, knot_port, nsd_port] = free_ports(3).try_into().unwrap();
    let notify = format!(
        "notify = [\"127.0.0.1:{knot_port}\", \"127.0.0.1:{nsd_port}\"]\naxfr_allow = [\"127.0.0.0/8\"]"
    );
    let text = signer_toml(
        "primary",
        ts_port,
        std::slice::from_ref(&file),
        &keys,
        denial,
        &notify,
    );
    let config = dir.write("config.toml", &text);
    let mut ts = start_signer(&config, "primary", ts_port, ZONE).await;
    let ts_addr = local(ts_port);
    let anchor = anchor(&keys, ZONE, dir.path());

    let knot = Knot::secondary(knotd, knot_port, ZONE, ts_addr);
    let mut nsd = Nsd::secondary(nsd_port, ZONE, ts_addr);
    nsd.wait_ready(ZONE).await;
    wait_both(&knot, &nsd, "192.0.2.10", PEER_READY_LIMIT, &mut ts).await;

    let mut failures = String::new();
    for server in [knot.addr, nsd.addr] {
        for (name, qtype, want) in SECONDARY_CASES {
            failures.push_str(&delv_complaint(&anchor, server, (name, qtype), want));
        }
    }
    assert!(failures.is_empty(), "{denial}: delv disagrees:{failures}");

    // A new address: the TS signs it, NOTIFYs, and both secondaries follow.
    let unsigned = std::fs::read_to_string(&file).unwrap();
    let edited = unsigned.replace("www        A     192.0.2.10", "www        A     192.0.2.11");
    assert_ne!(edited, unsigned, "the fixture's www line moved");
    std::fs::write(&file, edited).unwrap();
    ts.signal(Signal::HUP);
    // The SOA's refresh is an hour: only the NOTIFY explains a transfer now.
    wait_both(&knot, &nsd, "192.0.2.11", NOTIFY_LIMIT, &mut ts).await;
    for server in [knot.addr, nsd.addr] {
        failures.push_str(&delv_complaint(
            &anchor,
            server,
            ("www.sig.test.", "A"),
            Some("192.0.2.11"),
        ));
        failures.push_str(&delv_complaint(
            &anchor,
            server,
            ("nope.sig.test.", "A"),
            None,
        ));
    }
    assert!(
        failures.is_empty(),
        "{denial}: after the change, delv disagrees:{failures}"
    );
    nsd.check_alive();
    ts.assert_running();
}
