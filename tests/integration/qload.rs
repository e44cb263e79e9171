//! The load client the QUIC benchmarks run (`examples/qload`) against an
//! LS serving DoT, DoQ, DoH/2 and DoH/3: over each transport, for a second,
//! closed loop on two connections and then paced at a fixed rate, every
//! query it sent is counted once, as answered (NOERROR, NXDOMAIN) or
//! another rcode (REFUSED: a zone transfer asked of the LS), the two in the proportion its queries file
//! asks for, with no error and no timeout; a paced run sends what its rate
//! asks. So a benchmark's figures cannot silently come from a client that
//! counts wrong or no longer speaks a transport.
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
