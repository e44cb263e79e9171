//! The load client the QUIC benchmarks run (`examples/qload`) against an
//! LS serving DoT, DoQ, DoH/2 and DoH/3: over each transport, for a second,
//! closed loop on two connections and then paced at a fixed rate, every
//! query it sent is counted once, as answered (NOERROR, NXDOMAIN) or
//! another rcode (REFUSED: a zone transfer asked of the LS), the two in the proportion its queries file
//! asks for, with no error and no timeout; a paced run sends what its rate
//! asks. So a benchmark's figures cannot silently come from a client that
//! counts wrong or no longer speaks a transport.
//!
//! Against a DoT server of the test's own, an answer to another question
//! (with the right ID) counts as an error, never as answered; a server that
//! closes its connections midway leaves qload sending nothing more on them
//! (their queries out are errors, once), its answers_per_s over the whole
//! run, and, paced, the queries never sent counted in `not_sent`.
//!
//! qload is built by `cargo test --all-targets` (scripts/test) beside the
//! `dnslb` binary; without it the test is skipped, unless
//! `DNSLB_REQUIRE_PEERS=1`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::kit::env::skip;
use crate::kit::tls::TABLE;
use crate::kit::{BIN, crate_dir, free_ports, local, path_str, start_ls_role, table_ts};

/// `target/<profile>/examples/qload`, beside the `dnslb` binary, if built.
fn qload(test: &str) -> Option<PathBuf> {
    let bin = PathBuf::from(BIN);
    let path = bin.parent()?.join("examples/qload");
    if path.is_file() {
        return Some(path);
    }
    skip(
        test,
        &format!("{} not built (cargo build --example qload)", path.display()),
    );
    None
}

/// Runs qload with `args` to its end: its one result line as key=value pairs.
async fn run(qload: &Path, args: Vec<String>) -> HashMap<String, f64> {
    let qload = qload.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(qload)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qload failed: {stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("qload "))
        .unwrap_or_else(|| panic!("no result line: {stdout}{stderr}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Over each transport qload's counts add up: every query sent is answered
/// (a name, an NXDOMAIN) or refused (an AXFR, which the LS never serves), in the
/// file's 2:1, no error, no timeout; paced at 200 q/s for a second it sends
/// about 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qload_counts_every_answer_over_each_transport() {
    const TEST: &str = "qload_counts_every_answer_over_each_transport";
    let Some(qload) = qload(TEST) else { return };
    let (dir, ts) = table_ts(TABLE).await;
    let p = free_ports(4);
    let (tls, quic, https) = (local(p[1]), local(p[2]), local(p[3]));
    let data = crate_dir().join("tests/data/tls");
    let (cert, key) = (data.join("ls.pem"), data.join("ls.key"));
    let (cert, key) = (path_str(&cert), path_str(&key));
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:{}\"]\nworkers = 1\n\n\
         [ls.tls]\nlisten = [\"{tls}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [ls.quic]\nlisten = [\"{quic}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [ls.https]\nlisten = [\"{https}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\nhttp3 = true\n\n\
         [[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\n",
        p[0], ts.addr
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let queries = dir.path().join("queries.txt");
    std::fs::write(
        &queries,
        "www.example.com A\nnone.example.com AAAA\nwww.example.com AXFR\n",
    )
    .unwrap();
    let ls = start_ls_role(&path).await;

    let cases: [(&str, SocketAddr); 4] = [
        ("dot", tls),
        ("doq", quic),
        ("doh2", https),
        ("doh3", https),
    ];
    for (transport, server) in cases {
        let base = vec![
            "--transport".into(),
            transport.to_string(),
            "--server".into(),
            server.to_string(),
            "--sni".into(),
            "dns.test".into(),
            "--insecure".into(),
            "--queries".into(),
            path_str(&queries).to_string(),
            "--seconds".into(),
            "1".into(),
            "--connections".into(),
            "2".into(),
        ];
        let mut closed = base.clone();
        closed.extend(["--inflight".into(), "8".into()]);
        let r = run(&qload, closed).await;
        let (sent, answered, other) = (r["sent"], r["answered"], r["other_rcode"]);
        assert!(answered >= 30.0, "{transport}: {r:?}");
        assert_eq!(answered + other, sent, "{transport}: {r:?}");
        assert_eq!(
            (r["errors"], r["timeouts"]),
            (0.0, 0.0),
            "{transport}: {r:?}"
        );
        // Each connection asks the three in turn: one in three refused.
        assert!((other * 3.0 - sent).abs() <= 6.0, "{transport}: {r:?}");
        assert!(
            r["answers_per_s"] > 0.0 && r["p50_us"] > 0.0,
            "{transport}: {r:?}"
        );

        let mut paced = base;
        paced.extend([
            "--inflight".into(),
            "4".into(),
            "--rate".into(),
            "200".into(),
        ]);
        let r = run(&qload, paced).await;
        assert!(
            (190.0..=201.0).contains(&r["sent"]),
            "{transport} paced: {r:?}"
        );
        assert_eq!(
            r["answered"] + r["other_rcode"],
            r["sent"],
            "{transport} paced: {r:?}"
        );
        assert_eq!(
            (r["errors"], r["timeouts"]),
            (0.0, 0.0),
            "{transport} paced: {r:?}"
        );
    }
    ls.stop().await;
    ts.stop().await;
}

/// How the test's DoT server answers.
#[derive(Clone, Copy)]
enum Fake {
    /// Every query, with its ID, NOERROR, for `wrong.invalid. A`.
    WrongQuestion,
    /// The first `n` queries of each connection rightly, then it closes.
    CloseAfter(usize),
}

/// A DoT server on 127.0.0.1 answering as `fake` says, with the test
/// certificate; it serves until the test ends.
async fn fake_dot(fake: Fake) -> SocketAddr {
    use dnslb::server::tls::{CertSwap, server_config};
    use hickory_proto::op::{Message, MessageType, Query};
    use hickory_proto::rr::{Name, RecordType};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let data = crate_dir().join("tests/data/tls");
    let certs = Arc::new(CertSwap::load(&data.join("ls.pem"), &data.join("ls.key")).unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(certs, &[b"dot"]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut served = 0;
                while let Ok(len) = tls.read_u16().await {
                    let mut q = vec![0; usize::from(len)];
                    if tls.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let Ok(q) = Message::from_vec(&q) else { return };
                    let mut a =
                        Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                    match fake {
                        Fake::WrongQuestion => {
                            let wrong = Name::from_ascii("wrong.invalid.").unwrap();
                            let _ = a.add_query(Query::query(wrong, RecordType::A));
                        }
                        Fake::CloseAfter(n) if served == n => return,
                        Fake::CloseAfter(_) => {
                            let _ = a.add_queries(q.queries.clone());
                        }
                    }
                    served += 1;
                    let a = a.to_vec().unwrap();
                    let mut framed = u16::try_from(a.len()).unwrap().to_be_bytes().to_vec();
                    framed.extend_from_slice(&a);
                    if tls.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An answer to another question is an error; a connection the server
/// closes is used no more, and the run's rate and `not_sent` show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qload_counts_wrong_answers_and_closed_connections_as_they_are() {
    const TEST: &str = "qload_counts_wrong_answers_and_closed_connections_as_they_are";
    let Some(qload) = qload(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, "www.example.com A\n").unwrap();
    let args = |server: SocketAddr, more: &[&str]| {
        let mut v: Vec<String> = [
            "--transport",
            "dot",
            "--server",
            &server.to_string(),
            "--insecure",
            "--queries",
            path_str(&queries),
            "--seconds",
            "1",
            "--connections",
            "2",
            "--inflight",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };

    let wrong = fake_dot(Fake::WrongQuestion).await;
    let r = run(&qload, args(wrong, &[])).await;
    assert!(r["sent"] >= 10.0, "{r:?}");
    assert_eq!((r["answered"], r["other_rcode"]), (0.0, 0.0), "{r:?}");
    assert_eq!(r["errors"], r["sent"], "{r:?}");

    // Closed loop: 10 answers a connection, then its close ends the run's
    // sending on it; the rate is over the whole second.
    let closing = fake_dot(Fake::CloseAfter(10)).await;
    let r = run(&qload, args(closing, &[])).await;
    assert_eq!(r["answered"], 20.0, "{r:?}");
    assert!(r["errors"] <= 8.0, "at most the queries out: {r:?}");
    assert_eq!(
        r["sent"],
        r["answered"] + r["errors"] + r["timeouts"],
        "{r:?}"
    );
    assert!(r["answers_per_s"] <= 20.0, "{r:?}");
    assert_eq!(r["not_sent"], 0.0, "closed loop: {r:?}");

    // Paced at 100 a second: the 80 or so due after the close are never sent.
    let r = run(&qload, args(closing, &["--rate", "100"])).await;
    assert_eq!(r["answered"], 20.0, "{r:?}");
    assert!(r["not_sent"] >= 100.0 - 20.0 - 8.0, "{r:?}");
    assert!(r["answers_per_s"] <= 20.0, "{r:?}");
}
