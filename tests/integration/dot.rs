//! DNS over TLS on the LS (`[ls.tls]`, RFC 7858): real clients (kdig, dig, a rustls
//! client) through a test CA made with `openssl`; pipelining and out-of-order answers,
//! resumption, certificate rotation on reload, and hostile clients.
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::kit::tls::*;
use crate::kit::{
    Fake, Reply, TestTs, ZoneDir, empty_answer, free_ports, need, or_skip, path_str, query,
    read_frame, run_tool, start_ts_table, write_frame,
};

/// The usual set-up: a test CA, the LS's certificate, a TS serving [`TABLE`] and
/// the LS in front of it; `None` (skipped) without openssl.
async fn start_with_ts(test: &str) -> Option<(Pki, TestTs, Dot)> {
    let pki = Pki::new(test)?;
    let (cert, key) = pki.leaf("ls");
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let ls = Dot::start(pki.path(), ts.addr, &cert, &key).await;
    Some((pki, ts, ls))
}

/// `prog FLAG` (kdig or dig, `+tls`, `+https`...) trusting the CA at `ca`,
/// asking 127.0.0.1:`port` for `question`.
fn ask_tool(
    prog: &Path,
    flag: &str,
    ca: &Path,
    port: &str,
    question: &[&str],
) -> crate::kit::Output {
    let ca = format!("+tls-ca={}", path_str(ca));
    let host = format!("+tls-hostname={HOST}");
    let mut args = vec![flag, &ca, &host, "@127.0.0.1", "-p", port];
    args.extend_from_slice(question);
    run_tool(path_str(prog), &args)
}

/// kdig and dig, trusting the test CA, get the TS's answer through the LS over
/// TLS; a client that does not trust the certificate gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_and_dig_get_the_answer_over_tls() {
    const TEST: &str = "kdig_and_dig_get_the_answer_over_tls";
    let [kdig, dig] = or_skip!(need(TEST, ["kdig", "dig"]));
    let (pki, ts, ls) = or_skip!(start_with_ts(TEST).await);
    let (port, ca) = (ls.tls.port().to_string(), pki.ca());
    let over_tls = |prog: &Path, question: &[&str]| ask_tool(prog, "+tls", &ca, &port, question);
    let kdig_out = over_tls(&kdig, &["www.example.com", "A"]);
    // kdig pads its queries over TLS: the answer is padded to 468 bytes (RFC 8467).
    let want = [
        "TLS session",
        "status: NOERROR",
        "192.0.2.10",
        "PADDING:",
        "Received 468 B",
    ];
    for line in want {
        assert!(
            kdig_out.stdout.contains(line),
            "kdig +tls, no {line:?}: {}",
            kdig_out.stdout
        );
    }
    let nx = over_tls(&kdig, &["nope.example.com"]);
    assert!(nx.stdout.contains("status: NXDOMAIN"), "{}", nx.stdout);
    let dig_out = over_tls(&dig, &["www.example.com", "A", "+short"]);
    assert_eq!(dig_out.stdout.trim(), "192.0.2.10", "dig +tls: {dig_out:?}");
    // A client that does not trust the certificate does not get an answer.
    let untrusted = run_tool(
        path_str(&kdig),
        &["+tls-ca", "@127.0.0.1", "-p", &port, "www.example.com"],
    );
    assert!(
        !untrusted.stdout.contains("192.0.2.10"),
        "{}",
        untrusted.stdout
    );
    assert!(ls.tls_stats().handshakes.load(Relaxed) >= 3);
    let text = ls.metrics();
    assert!(
        text.contains("dnslb_encrypted_queries_total{transport=\"tls\"} 3\n"),
        "{text}"
    );
    // Queries over TLS are counted as any other.
    assert!(ls.run.balancer.metrics().queries.load(Relaxed) >= 3);
    ls.stop(Some(ts)).await;
}

/// 100 queries written at once on one connection are all answered, and the
/// first, slow at its backend, last: answers go out as they are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_on_one_connection_are_answered_out_of_order() {
    const TEST: &str = "pipelined_queries_on_one_connection_are_answered_out_of_order";
    // "slow." names are answered after 400 ms, every other at once.
    let backend = Fake::udp(|q, _| {
        let slow = q.windows(5).any(|w| w.eq_ignore_ascii_case(b"\x04slow"));
        if slow {
            Reply::After(Duration::from_millis(400), empty_answer(q))
        } else {
            Reply::Now(empty_answer(q))
        }
    })
    .await;
    let pki = or_skip!(Pki::new(TEST));
    let (cert, key) = pki.leaf("ls");
    let ls = Dot::start(pki.path(), backend.addr, &cert, &key).await;
    let mut conn = connect(&pki.client(), ls.tls).await;
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for i in 0..100 {
        let name = if i == 0 {
            "slow.example.com".to_string()
        } else {
            format!("q{i}.example.com")
        };
        let q = query(&name, RecordType::A, Some(1232));
        ids.push(q.metadata.id);
        let bytes = q.to_vec().unwrap();
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    // All 100 in one write: pipelined, no answer awaited in between.
    conn.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        let a = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut conn))
            .await
            .expect("an answer is missing after 10 s")
            .expect("connection closed");
        got.push(Message::from_vec(&a).unwrap().metadata.id);
    }
    let mut sorted = got.clone();
    sorted.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(sorted, want, "every query answered once");
    assert_ne!(got[0], ids[0], "the slow first query held the others back");
    assert_eq!(got[99], ids[0], "the slow query was not answered last");
    ls.stop(None).await;
}

/// A client that kept the first connection's session resumes it on the
/// second (a ticket), and /metrics counts the resumption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_resumes_the_first_session() {
    const TEST: &str = "a_second_connection_resumes_the_first_session";
    let (pki, ts, ls) = or_skip!(start_with_ts(TEST).await);
    let client = pki.client();
    let mut first = connect(&client, ls.tls).await;
    assert!(!ask(&mut first, "www.example.com").await.answers.is_empty());
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    drop(first);
    let mut second = connect(&client, ls.tls).await;
    assert!(!ask(&mut second, "www.example.com").await.answers.is_empty());
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the session ticket of the first connection was not taken"
    );
    let text = ls.metrics();
    assert!(text.contains("dnslb_tls_resumptions_total 1\n"), "{text}");
    assert!(text.contains("dnslb_tls_handshakes_total 2\n"), "{text}");
    ls.stop(Some(ts)).await;
}

/// Two leaf certificates of `pki`, "old" and "new", and the LS's files
/// (`ls.pem`, `ls.key` in its folder) holding the old one: the old
/// certificate, the new one and its key, the LS's certificate and key.
fn rotation(pki: &Pki) -> [std::path::PathBuf; 5] {
    let (old_cert, old_key) = pki.leaf("old");
    let (new_cert, new_key) = pki.leaf("new");
    let (cert, key) = (pki.dir.path().join("ls.pem"), pki.dir.path().join("ls.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    [old_cert, new_cert, new_key, cert, key]
}

/// Replaced files and a reload: new connections see the new certificate,
/// while an open one goes on. A broken file then is refused, and the last
/// good pair serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rotates_the_certificate_and_refuses_a_broken_one() {
    const TEST: &str = "a_reload_rotates_the_certificate_and_refuses_a_broken_one";
    let pki = or_skip!(Pki::new(TEST));
    let dir = &pki.dir;
    let [old_cert, new_cert, new_key, cert, key] = rotation(&pki);
    let ts = start_ts_table(dir, "t.txt", TABLE).await;
    let ls = Dot::start(dir.path(), ts.addr, &cert, &key).await;
    let client = pki.client();
    let mut open = connect(&client, ls.tls).await;
    assert_eq!(served(&open), der_of(&old_cert));
    ask(&mut open, "www.example.com").await;

    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    ls.reload().await;
    // A client without a session to resume (one would resume with the old one).
    let fresh = connect(&pki.client(), ls.tls).await;
    assert_eq!(
        served(&fresh),
        der_of(&new_cert),
        "a new connection sees the new certificate"
    );
    let a = ask(&mut open, "www.example.com").await;
    assert!(!a.answers.is_empty(), "the open connection goes on");

    std::fs::write(&cert, "not a certificate\n").unwrap();
    ls.reload().await;
    assert_eq!(ls.tls_stats().cert_reloads_refused.load(Relaxed), 1);
    let mut after = connect(&pki.client(), ls.tls).await;
    assert_eq!(
        served(&after),
        der_of(&new_cert),
        "the last good certificate serves on"
    );
    assert!(!ask(&mut after, "www.example.com").await.answers.is_empty());
    let text = ls.metrics();
    assert!(
        text.contains("dnslb_tls_cert_reloads_total{result=\"applied\"} 1\n")
            && text.contains("dnslb_tls_cert_reloads_total{result=\"refused\"} 1\n"),
        "{text}"
    );
    ls.stop(Some(ts)).await;
}

/// A reload to an expired certificate is refused (the valid one serves on),
/// and /metrics exports the notAfter of the one served; a renewal is applied
/// by a SIGHUP even when the config has an error elsewhere (the running
/// config's certificate files are read again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_and_a_renewal_is_not_blocked_by_a_bad_config() {
    const TEST: &str =
        "an_expired_certificate_is_refused_and_a_renewal_is_not_blocked_by_a_bad_config";
    let pki = or_skip!(Pki::new(TEST));
    let dir = &pki.dir;
    let [old_cert, new_cert, new_key, cert, key] = rotation(&pki);
    let ts = start_ts_table(dir, "t.txt", TABLE).await;
    let ls = Dot::start(dir.path(), ts.addr, &cert, &key).await;
    let gauge = "dnslb_tls_certificate_not_after_seconds{listener=\"tls\"} ";
    let not_after = |text: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(gauge)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {gauge} in {text}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The test CA's leaves are valid for 2 days.
    let first = not_after(&ls.metrics());
    assert!((now..now + 3 * 86_400).contains(&first), "{first}");
    // An expired pair (its key matching): refused, the old one serves on.
    let data = crate::kit::crate_dir().join("tests/data/tls");
    std::fs::copy(data.join("expired.pem"), &cert).unwrap();
    std::fs::copy(data.join("ls.key"), &key).unwrap();
    ls.reload().await;
    assert_eq!(ls.tls_stats().cert_reloads_refused.load(Relaxed), 1);
    let conn = connect(&pki.client(), ls.tls).await;
    assert_eq!(
        served(&conn),
        der_of(&old_cert),
        "the valid certificate serves on"
    );
    assert_eq!(not_after(&ls.metrics()), first);
    // A renewal while the config has an error elsewhere: applied all the same.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("name = \"b1\"", "name = \"b1\"\nweight = \"x\""),
    )
    .unwrap();
    ls.reload().await;
    let m = ls.run.balancer.metrics();
    assert_eq!(m.reloads_refused.load(Relaxed), 2, "the config was refused");
    assert_eq!(
        ls.tls_stats().cert_reloads.load(Relaxed),
        1,
        "the certificate applied"
    );
    let fresh = connect(&pki.client(), ls.tls).await;
    assert_eq!(
        served(&fresh),
        der_of(&new_cert),
        "the renewed certificate serves"
    );
    ls.stop(Some(ts)).await;
}

/// Plain DNS sent to the TLS port is counted as `not_tls` and closed; a
/// handshake stopped halfway holds nothing up for the next clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_half_handshake_do_not_hurt_other_clients() {
    const TEST: &str = "garbage_and_a_half_handshake_do_not_hurt_other_clients";
    let (pki, ts, ls) = or_skip!(start_with_ts(TEST).await);
    // Plain DNS over TCP sent to the TLS port: not TLS.
    let mut garbage = TcpStream::connect(ls.tls).await.unwrap();
    let q = query("www.example.com", RecordType::A, None)
        .to_vec()
        .unwrap();
    write_frame(&mut garbage, &q).await;
    // A ClientHello's record header promising 512 bytes, and only 5 of them.
    let mut half = TcpStream::connect(ls.tls).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .await
        .unwrap();
    let counted = crate::kit::poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(5),
        async || {
            (ls.tls_stats()
                .failures
                .iter()
                .map(|c| c.load(Relaxed))
                .sum::<u64>()
                >= 1)
                .then_some(())
        },
    )
    .await;
    assert!(counted.is_some(), "the garbage was not counted");
    let text = ls.metrics();
    assert!(
        text.contains("dnslb_tls_handshake_failures_total{reason=\"not_tls\"} 1\n"),
        "{text}"
    );
    // The garbage got no answer: its connection is closed.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), read_frame(&mut garbage))
            .await
            .unwrap()
            .is_none()
    );
    // With the half handshake still open, other clients are served.
    let client = pki.client();
    for _ in 0..3 {
        let mut conn = connect(&client, ls.tls).await;
        assert!(!ask(&mut conn, "www.example.com").await.answers.is_empty());
    }
    drop(half);
    ls.stop(Some(ts)).await;
}

/// `dnslb check` names the key that is not the certificate's, at its line.
#[test]
fn dnslb_check_names_the_certificate_file_at_fault() {
    let dir = ZoneDir::new();
    let data = crate::kit::crate_dir().join("tests/data/tls");
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:5300\"]\n\n[ls.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[[ls.backend]]\nname = \"b1\"\naddr = \"127.0.0.1:5301\"\n",
        path_str(&data.join("ls.pem")),
        path_str(&data.join("other.key")),
    );
    std::fs::write(dir.path().join("config.toml"), &text).unwrap();
    let out = crate::kit::run_dnslb(
        &["check", "-c", "config.toml"],
        dir.path(),
        None,
        crate::kit::TOOL_LIMIT,
    );
    assert!(!out.status.success(), "{out:?}");
    let want = format!(
        "config.toml:6: ls.tls.key: {}: the key does not belong to the certificate in {}",
        path_str(&data.join("other.key")),
        path_str(&data.join("ls.pem"))
    );
    assert!(
        out.stdout.contains(&want) || out.stderr.contains(&want),
        "{out:?}"
    );
    // With its own key the same file is fine.
    let good = text.replace("other.key", "ls.key");
    std::fs::write(dir.path().join("config.toml"), good).unwrap();
    let out = crate::kit::run_dnslb(
        &["check", "-c", "config.toml"],
        dir.path(),
        None,
        crate::kit::TOOL_LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
}

/// Unbound as a stub forwarding every name to the LS over TLS
/// (`forward-tls-upstream: yes`, the LS's name checked against the test CA)
/// resolves a name of the TS behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_forwarding_over_tls_resolves_through_the_ls() {
    const TEST: &str = "unbound_forwarding_over_tls_resolves_through_the_ls";
    let [unbound] = or_skip!(need(TEST, ["unbound"]));
    let (pki, ts, ls) = or_skip!(start_with_ts(TEST).await);
    let port = free_ports(1)[0];
    let d = pki.path().display();
    let conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  num-threads: 1\n  module-config: \"iterator\"\n  do-not-query-localhost: no\n  outgoing-interface: 127.0.0.1\n  access-control: 127.0.0.0/8 allow\n  tls-cert-bundle: \"{}\"\nremote-control:\n  control-enable: no\nforward-zone:\n  name: \".\"\n  forward-tls-upstream: yes\n  forward-addr: 127.0.0.1@{}#{HOST}\n",
        path_str(&pki.ca()),
        ls.tls.port()
    );
    let path = pki.path().join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = std::process::Command::new(unbound);
    cmd.arg("-d").arg("-c").arg(&path);
    let mut proc = crate::kit::Proc::spawn("unbound", cmd);
    let answer = crate::kit::wait_for(
        crate::kit::local(port),
        "www.example.com",
        RecordType::A,
        true,
        Duration::from_secs(10),
        &mut [&mut proc],
        |m| !m.answers.is_empty(),
    )
    .await;
    assert_eq!(
        crate::kit::a_addrs(&answer),
        ["192.0.2.10".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert!(ls.tls_stats().handshakes.load(Relaxed) >= 1, "not over TLS");
    drop(proc);
    ls.stop(Some(ts)).await;
}

/// kdig (POST and GET) and curl (GET and POST, HTTP/2 and HTTP/1.1) get the
/// answer over HTTPS, with `Cache-Control: max-age` its TTL; bad requests get
/// their status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_and_curl_get_the_answer_over_https() {
    const TEST: &str = "kdig_and_curl_get_the_answer_over_https";
    let (pki, ts, ls) = or_skip!(start_with_ts(TEST).await);
    let [kdig, curl_bin] = or_skip!(need(TEST, ["kdig", "curl"]));
    let (port, ca) = (ls.https.port().to_string(), pki.ca());
    for how in ["+https", "+https-get"] {
        let out = ask_tool(&kdig, how, &ca, &port, &["www.example.com", "A"]);
        assert!(
            out.stdout.contains("status: 200")
                && out.stdout.contains("192.0.2.10")
                && out.stdout.contains("Received 468 B"),
            "kdig {how}: {}",
            out.stdout
        );
    }
    let url = format!("https://{HOST}:{port}/dns-query");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let get = format!("{url}?dns={}", get_param());
    let q = query("www.example.com", RecordType::A, None)
        .to_vec()
        .unwrap();
    let body = pki.path().join("query");
    std::fs::write(&body, &q).unwrap();
    let post = format!("@{}", path_str(&body));
    let tls = ["--cacert", path_str(&ca), "--resolve", &resolve];
    // 200 over HTTP version `want`, the answer in a body of its length.
    let answered = |got: &Curl, what: &str, want: &str| {
        assert_eq!(
            (got.code.as_str(), got.version.as_str()),
            ("200", want),
            "{what}"
        );
        assert!(answers_ten(&got.body), "{what}");
        assert_eq!(
            content_length(&got.headers),
            Some(got.body.len()),
            "{what}: {}",
            got.headers
        );
    };
    for (version, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let got = curl(
            &curl_bin,
            pki.path(),
            &[&tls[..], &[version, &get]].concat(),
        );
        answered(&got, &format!("GET {version}"), want);
        assert!(
            got.headers
                .contains("content-type: application/dns-message"),
            "{}",
            got.headers
        );
        assert!(
            got.headers.contains("cache-control: max-age=300"),
            "{}",
            got.headers
        );
        let posted = [
            version,
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
            &post,
            &url,
        ];
        let got = curl(&curl_bin, pki.path(), &[&tls[..], &posted].concat());
        answered(&got, &format!("POST {version}"), want);
    }
    // Each bad request gets its status: another path 404, a bad or missing
    // `dns` 400, another method 405, another media type 415, a body too large 413.
    let base = format!("https://{HOST}:{port}");
    let big = pki.path().join("big");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    let big = format!("@{}", path_str(&big));
    let dns = "-Hcontent-type: application/dns-message";
    let cases: [(&str, Vec<String>); 6] = [
        ("404", vec![format!("{base}/nope?dns={}", get_param())]),
        ("400", vec![format!("{base}/dns-query?dns=@@")]),
        ("400", vec![format!("{base}/dns-query")]),
        ("405", vec!["-XPUT".into(), format!("{base}/dns-query")]),
        (
            "415",
            vec![
                "-Hcontent-type: text/plain".into(),
                "--data-binary".into(),
                "x".into(),
                format!("{base}/dns-query"),
            ],
        ),
        (
            "413",
            vec![
                dns.into(),
                "--data-binary".into(),
                big,
                format!("{base}/dns-query"),
            ],
        ),
    ];
    // Over both versions, each with an empty body: `content-length: 0`.
    for version in ["--http2", "--http1.1"] {
        for (want, args) in &cases {
            let mut all = tls.to_vec();
            all.push(version);
            all.extend(args.iter().map(String::as_str));
            let got = curl(&curl_bin, pki.path(), &all);
            assert_eq!(&got.code, want, "{version} {args:?}");
            assert!(got.body.is_empty(), "{version} {args:?}");
            assert_eq!(
                content_length(&got.headers),
                Some(0),
                "{version} {args:?}: {}",
                got.headers
            );
        }
    }
    // A refused request that carries a body (another method, another path)
    // keeps its status over HTTP/2 with curl (which drops it when the stream
    // is reset before its body is sent: the order is tested, without a race,
    // by `enc_hostile::a_refused_request_is_answered_once_its_body_is_in`).
    for (want, method, path) in [("405", "-XPUT", "/dns-query"), ("404", "-XPOST", "/nope")] {
        let url = format!("{base}{path}");
        let args = [method, dns, "--data-binary", &post, &url];
        let got = curl(
            &curl_bin,
            pki.path(),
            &[&tls[..], &["--http2"], &args].concat(),
        );
        assert_eq!(
            (got.code.as_str(), got.version.as_str()),
            (want, "2"),
            "{args:?}"
        );
        assert_eq!(content_length(&got.headers), Some(0), "{}", got.headers);
    }
    // Two kdig and four curl queries; six refusals over each version, two
    // with a body.
    let text = ls.metrics();
    assert!(
        text.contains("dnslb_encrypted_queries_total{transport=\"https\"} 6\n"),
        "{text}"
    );
    assert!(text.contains("dnslb_https_refused_total 14\n"), "{text}");
    ls.stop(Some(ts)).await;
}

/// `[ls.https]` without `cert` and `key` serves plain HTTP/2 (prior knowledge,
/// as a TLS-terminating proxy speaks it) and HTTP/1.1, and closes idle
/// connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http2_serves_behind_a_proxy() {
    const TEST: &str = "plain_http2_serves_behind_a_proxy";
    let dir = ZoneDir::new();
    let [curl_bin] = or_skip!(need(TEST, ["curl"]));
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let ls = Dot::start_pair(dir.path(), ts.addr, None).await;
    let get = format!("http://{}/dns-query?dns={}", ls.https, get_param());
    for (version, want) in [("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")] {
        let got = curl(&curl_bin, dir.path(), &[version, &get]);
        assert_eq!(
            (got.code.as_str(), got.version.as_str()),
            ("200", want),
            "{version}"
        );
        assert!(answers_ten(&got.body), "{version}");
    }
    // A kept-alive connection with no request in progress is closed after the
    // TCP idle timeout (10 s): idle clients cannot hold the connection cap.
    let mut idle = TcpStream::connect(ls.https).await.unwrap();
    let request = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: dns.test\r\n\r\n",
        get_param()
    );
    idle.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut seen);
    let closed = tokio::time::timeout(Duration::from_secs(30), read).await;
    assert!(closed.is_ok(), "an idle connection was kept open 30 s");
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    ls.stop(Some(ts)).await;
}
