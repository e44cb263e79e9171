//! What `dnslb resolve` accepts as the answer to its query: an error answer that does not echo the question (FORMERR, SERVFAIL,
//! REFUSED with QDCOUNT 0, as NSD and dnslb's own TS answer a query they
//! cannot read) is that query's answer, reported as a failure at once, not
//! waited out to the timeout. And `-t AAAA` asks for IPv6
//! addresses, written `hostname IP AAAA`; A stays the
//! default.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dnslb::resolve::{Outcome, ResolveOptions, resolve_all};

use crate::kit::{Fake, Reply};

/// The query's header alone, QR=1, with `rcode` and QDCOUNT 0.
fn bare_error(q: &[u8], rcode: u8) -> Vec<u8> {
    let mut r = q[..12].to_vec();
    r[2] |= 0x80;
    r[3] = (r[3] & 0xf0) | rcode;
    r[4..12].fill(0);
    r
}

#[tokio::test]
async fn an_error_answer_without_a_question_is_the_answer() {
    let _load = crate::kit::timed().await;
    // formerr.test -> FORMERR, servfail.test -> SERVFAIL, else REFUSED.
    let server = Fake::udp(|q, _| {
        let text = String::from_utf8_lossy(q);
        let rcode = if text.contains("formerr") {
            1
        } else if text.contains("servfail") {
            2
        } else {
            5
        };
        Reply::Now(bare_error(q, rcode))
    })
    .await;
    let addr: SocketAddr = server.addr;
    let opts = ResolveOptions {
        timeout: Duration::from_secs(3),
        retries: 1,
        ..ResolveOptions::new(addr)
    };
    let names = ["formerr.test", "servfail.test", "refused.test"];
    let t = Instant::now();
    let outcomes = resolve_all(names.iter().map(|n| (*n).to_owned()).collect(), &opts)
        .await
        .expect("answered");
    let took = t.elapsed();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Failed("FORMERR".into()),
            Outcome::Failed("SERVFAIL".into()),
            Outcome::Failed("REFUSED".into()),
        ]
    );
    // Generous: one try is 3 s; the answers came at once.
    assert!(took < Duration::from_secs(3), "waited {took:?}");
}

const TABLE: &str = "\
both.example.com 192.0.2.1 A
both.example.com 2001:db8::1 AAAA
v6only.example.com 2001:db8::2 AAAA
alias.example.com v6only.example.com CNAME
";

/// `dnslb resolve` as a process over `input`, with `extra` arguments.
fn resolve_process(addr: SocketAddr, extra: &[&str], input: &'static str) -> crate::kit::Output {
    let server = addr.to_string();
    let mut args = vec!["resolve", "-s", &server];
    args.extend_from_slice(extra);
    crate::kit::run_dnslb(
        &args,
        std::path::Path::new("/"),
        Some(input.as_bytes()),
        Duration::from_secs(20),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_aaaa_asks_for_ipv6_addresses_and_a_stays_the_default() {
    let dir = crate::kit::ZoneDir::new();
    let ts = crate::kit::start_ts_table(&dir, "t.txt", TABLE).await;
    let addr = ts.addr;
    let input = "both.example.com\nv6only.example.com\nalias.example.com\n";
    let (aaaa, a) = tokio::task::spawn_blocking(move || {
        (
            resolve_process(addr, &["-t", "AAAA"], input),
            resolve_process(addr, &[], input),
        )
    })
    .await
    .unwrap();
    ts.stop().await;
    assert!(aaaa.status.success(), "{aaaa:#?}");
    assert_eq!(
        aaaa.stdout,
        "both.example.com 2001:db8::1 AAAA\n\
         v6only.example.com 2001:db8::2 AAAA\n\
         alias.example.com 2001:db8::2 AAAA\n"
    );
    assert!(a.status.success(), "{a:#?}");
    assert_eq!(
        a.stdout,
        "both.example.com 192.0.2.1 A\n\
         v6only.example.com - Error:HOST NOT FOUND\n\
         alias.example.com - Error:HOST NOT FOUND\n"
    );
}
