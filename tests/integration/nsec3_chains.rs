//! A pre-signed zone holding two NSEC3 chains, as it does while its NSEC3
//! parameters change (RFC 5155 §7.3, §10.4): the TS proves denial with the
//! chain its NSEC3PARAM names only. `sig.test.` is signed by
//! `dnssec-signzone` with no salt and 0 iterations (the NSEC3PARAM's
//! chain), then again with the same keys, salt `aabbccdd` and 5 iterations;
//! the second chain's NSEC3s and their RRSIGs are added to the first file.
//! Every NSEC3 of a negative or wildcard answer must carry the NSEC3PARAM's
//! parameters, `delv` must validate each answer, and the load must not call
//! either chain broken. Both fail when proofs
//! mix the chains (a closest encloser from one, a next closer from the
//! other).
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType::{self, A, AAAA, TXT};

use crate::kit::delv_signed;
use crate::kit::{self, Denial, Proc, Signer};

/// Negative and wildcard answers of `sig.test.`: each needs NSEC3 proofs.
const CASES: &[(&str, RecordType)] = &[
    ("nope.sig.test.", A),
    ("z.ent.sig.test.", A),
    ("mail.sig.test.", AAAA),
    ("www.sig.test.", RecordType::MX),
    ("ent.sig.test.", A),
    ("b.c.sig.test.", A),
    ("foo.wild.sig.test.", A),
    ("a.b.wild.sig.test.", TXT),
    ("foo.wild.sig.test.", AAAA),
    ("dangling.sig.test.", A),
    ("zz.sig.test.", A),
    ("a.sig.test.", A),
    ("m.sig.test.", TXT),
];

/// The NSEC3 and RRSIG NSEC3 lines of a `-O full` signed file.
fn nsec3_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 4 && (f[3] == "NSEC3" || (f[3] == "RRSIG" && f[4] == "NSEC3"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_come_from_the_chain_nsec3param_names() {
    let test = "proofs_come_from_the_chain_nsec3param_names";
    let progs = [
        "dnssec-keygen",
        "dnssec-signzone",
        "dnssec-dsfromkey",
        "delv",
        "timeout",
    ];
    if kit::need(test, progs).is_none() {
        return;
    }
    let unsigned = kit::dnssec_fixture("sig.test.zone");
    let signed = kit::sign_zone("sig.test", &unsigned, Signer::Bind, Denial::Nsec3);
    let mut cmd = std::process::Command::new("dnssec-signzone");
    cmd.args([
        "-q",
        "-S",
        "-K",
        ".",
        "-o",
        "sig.test.",
        "-O",
        "full",
        "-3",
        "aabbccdd",
        "-H",
        "5",
        "-f",
        "alt.zone",
        "unsigned.zone",
    ])
    .current_dir(signed.dir());
    kit::run_ok("dnssec-signzone (second chain)", cmd, kit::TOOL_LIMIT, "");
    let alt = std::fs::read_to_string(signed.dir().join("alt.zone")).unwrap();
    let second = nsec3_lines(&alt);
    assert!(second.contains("1 0 5 AABBCCDD"), "{second}");
    let file = signed.dir().join("two.zone");
    std::fs::write(&file, signed.text() + &second).unwrap();

    let port = kit::free_port();
    let mut ts = Proc::dnslb("dnslb ts", &kit::ts_args(port, &[&file]), signed.dir());
    let addr = kit::local(port);
    kit::wait_soa(addr, "sig.test.", kit::READY_LIMIT, &mut [&mut ts], |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;

    let mut failures = String::new();
    for &(name, qtype) in CASES {
        let m = kit::ask_dnssec_tcp(addr, name, qtype).await;
        let nsec3: Vec<String> = m
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::NSEC3)
            .map(kit::render)
            .collect();
        if nsec3.is_empty() {
            failures.push_str(&format!("\n{name} {qtype}: no NSEC3: {}", kit::show(&m)));
        }
        for r in nsec3.iter().filter(|r| !r.contains(" NSEC3 1 0 0 - ")) {
            failures.push_str(&format!("\n{name} {qtype}: NSEC3 of the other chain: {r}"));
        }
        let said = delv_signed(&signed, addr, name, qtype);
        if !said.contains("fully validated") && !said.contains("negative response") {
            failures.push_str(&format!("\n{name} {qtype}: delv: {said}"));
        }
    }
    // The load's warnings come before this line: once it is read, so are they.
    kit::wait_stderr(&mut ts, "table server ready", 1, kit::READY_LIMIT).await;
    let log = ts.stderr_now();
    assert!(
        !log.contains("chain is broken"),
        "{test}: both chains close:\n{log}"
    );
    assert!(failures.is_empty(), "{test}:{failures}");
}
