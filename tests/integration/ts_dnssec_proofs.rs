//! The TS's DNSSEC proofs beside CNAMEs, against NSD 4.6 on the same signed
//! file: a wildcard CNAME into a delegation keeps its wildcard proof, an
//! RRSIG question at a CNAME's owner is not followed, every wildcard of a
//! chain is proved.
//!
//! The zone `rev.test.` (written below, signed as the test runs by
//! `dnssec-signzone`) holds a wildcard CNAME into a delegation whose glue
//! the zone holds, a plain CNAME, and a CNAME chain through six wildcards.
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::Nsd;
use crate::kit::ask_dnssec_tcp;
use crate::kit::{self, Denial, Proc, SignedZone, Signer};

const ZONE: &str = "rev.test.";

/// The unsigned zone: `*.wc` a wildcard CNAME to a name below the
/// delegation `sub` (glue `ns.sub`), `c5` a CNAME to `www`, and
/// `*.a1` .. `*.a6` a chain of six wildcards (five CNAMEs, then an A).
const UNSIGNED: &str = "\
$ORIGIN rev.test.
$TTL 3600
@      SOA   ns1 hostmaster 1 3600 600 604800 300
@      NS    ns1
; data, a wildcard CNAME into the signed delegation `sub`, a plain CNAME
ns1    A     192.0.2.1
www    A     192.0.2.10
*.wc   CNAME host.sub
c5     CNAME www
sub    NS    ns.sub
ns.sub A     192.0.2.53
*.a1   CNAME x.a2
*.a2   CNAME x.a3
*.a3   CNAME x.a4
*.a4   CNAME x.a5
*.a5   CNAME x.a6
*.a6   A     192.0.2.66
sub    DS    12345 13 2 0000000000000000000000000000000000000000000000000000000000000000
";

/// NSD and a `dnslb ts` serving `UNSIGNED` signed with `denial`.
struct Pair {
    _signed: SignedZone,
    _dir: tempfile::TempDir,
    nsd: Nsd,
    ts: Proc,
    ts_addr: std::net::SocketAddr,
}

async fn serve(denial: Denial) -> Option<Pair> {
    for p in [
        "nsd",
        "dnssec-keygen",
        "dnssec-signzone",
        "dnssec-dsfromkey",
    ] {
        if kit::find_program(p).is_none() {
            kit::skip("ts_dnssec_proofs", &format!("{p} not installed"));
            return None;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("rev.test.zone");
    std::fs::write(&unsigned, UNSIGNED).unwrap();
    let signed = kit::sign_zone(ZONE, &unsigned, Signer::Bind, denial);
    let mut nsd = Nsd::primary_bytes(ZONE, &std::fs::read(&signed.file).unwrap());
    let port = kit::free_port();
    let mut ts = Proc::dnslb(
        "dnslb ts",
        &kit::ts_args(port, &[&signed.file]),
        signed.dir(),
    );
    let ts_addr = kit::local(port);
    nsd.wait_ready(ZONE).await;
    kit::wait_soa(ts_addr, ZONE, kit::READY_LIMIT, &mut [&mut ts], |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    Some(Pair {
        _signed: signed,
        _dir: dir,
        nsd,
        ts,
        ts_addr,
    })
}

/// How many NSEC or NSEC3 records the authority section holds.
fn denial_records(m: &Message) -> usize {
    m.authorities
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
        .count()
}

/// How many NSEC/NSEC3 records NSD and the TS (serving the zone signed
/// with `denial`) put in the authority section of `name` A, DO=1; the
/// TS's answer is printed, and both must hold the same answer section.
async fn proofs_of(denial: Denial, name: &str) -> (usize, usize) {
    let Some(mut pair) = serve(denial).await else {
        return (1, 1);
    };
    let nsd = ask_dnssec_tcp(pair.nsd.addr, name, RecordType::A).await;
    let ts = ask_dnssec_tcp(pair.ts_addr, name, RecordType::A).await;
    eprintln!("{denial:?} {name}, the TS answers:\n{}", kit::dig(&ts));
    assert_eq!(ts.answers.len(), nsd.answers.len(), "{denial:?}");
    pair.ts.assert_running();
    (denial_records(&nsd), denial_records(&ts))
}

/// A name answered from a wildcard CNAME whose target lies below a
/// delegation with glue: the answer is the expanded CNAME (its RRSIG's
/// labels field tells the validator it was synthesized) and the referral.
/// RFC 4035 §3.1.3.3 / RFC 5155 §7.2.6: the NSEC (NSEC3) proving the name
/// itself does not exist must be there, or a validator calls the CNAME
/// bogus ("no valid NSEC" from `delv`). NSD includes it; the TS skips
/// the deferred wildcard proofs whenever the additional section holds
/// records (here the glue), so the proof is missing for NSEC, NSEC3 and
/// NSEC3 opt-out alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_cname_into_a_delegation_keeps_the_wildcard_proof() {
    for denial in [Denial::Nsec, Denial::Nsec3, Denial::Nsec3OptOut] {
        let (nsd, ts) = proofs_of(denial, "foo.wc.rev.test.").await;
        assert!(nsd > 0, "{denial:?}: NSD proves the expansion");
        assert_eq!(ts, nsd, "{denial:?}: the TS lacks the wildcard proof");
    }
}

/// A question for type RRSIG at a CNAME's owner: RRSIG is a
/// meta-question about the name's own signatures; NSD answers the RRSIGs
/// owned by `c5` (of its CNAME and NSEC), nothing else. The TS follows
/// the CNAME and adds `www`'s RRSIGs, owned by another name, to the
/// answer (RFC 1034 §3.6.2 restarts only for other types; RFC 4035 §3.1
/// leaves RRSIG queries to the RRSIGs at the name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsig_question_at_a_cname_owner_is_not_followed() {
    let Some(mut pair) = serve(Denial::Nsec).await else {
        return;
    };
    let name = "c5.rev.test.";
    let nsd = ask_dnssec_tcp(pair.nsd.addr, name, RecordType::RRSIG).await;
    let ts = ask_dnssec_tcp(pair.ts_addr, name, RecordType::RRSIG).await;
    assert!(!nsd.answers.is_empty());
    for m in [&nsd, &ts] {
        for r in &m.answers {
            assert_eq!(
                r.name.to_ascii().to_ascii_lowercase(),
                name,
                "only c5's own RRSIGs:\n{}",
                kit::dig(m)
            );
        }
    }
    assert_eq!(ts.answers.len(), nsd.answers.len());
    pair.ts.assert_running();
}

/// A CNAME chain through six wildcards (`foo.a1` -> `x.a2` -> ... ->
/// `x.a6` A): every expanded RRset needs the proof that its name does not
/// exist (RFC 4035 §3.1.3.3). NSD writes all six NSECs (12 authority
/// records with their RRSIGs); the TS notes at most four wildcard names
/// per answer (`WILDCARDS_MAX` in proof.rs) and silently drops the proofs
/// of the fifth and sixth. Validators that re-ask each CNAME target
/// (Unbound, delv) recover; one that validates the answer as given finds
/// `x.a5` and `x.a6` unproven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wildcard_of_a_cname_chain_is_proved() {
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let (nsd, ts) = proofs_of(denial, "foo.a1.rev.test.").await;
        // Six NSECs; with NSEC3, two next closer names may share a cover.
        let least = if matches!(denial, Denial::Nsec) { 6 } else { 5 };
        assert!(
            nsd >= least,
            "{denial:?}: NSD proves the six expansions ({nsd})"
        );
        assert_eq!(
            ts, nsd,
            "{denial:?}: wildcard proofs missing from the TS's answer"
        );
    }
}
