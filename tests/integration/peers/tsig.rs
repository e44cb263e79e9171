//! TSIG on zone transfers (docs/CONFIG.md (the TS) "Zone transfers secondaries can trust",
//! RFC 8945), against real peers: `dig -y` and `kdig -y` transfer a zone
//! with the key, and are refused NOTAUTH with the TSIG error without it,
//! with a wrong secret, an unknown key or a clock ten minutes off; NSD and
//! Knot, secondaries configured with the key, transfer the zone, and after
//! a SIGHUP that changes a record the signed NOTIFY brings them the change.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dnslb::dns::tsig::{self, Algorithm, Key, ResponseCheck, Signer};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rustix::process::Signal;

use crate::kit::Nsd;
use crate::kit::http::{http_get, parse_exposition, value};
use crate::kit::{Knot, SECRET_256};
use crate::kit::{PEER_READY_LIMIT, need, path_str, poll_answer, show, wrapped};
use crate::kit::{Proc, ZoneDir, answers_a, free_ports, local, soa_serial, wait_soa};

const SECRET_512: &str =
    "3q2+7wAAAAARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4iZqrvM3e7/ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iA==";

/// How long a secondary may take to follow a NOTIFY.
const NOTIFY_LIMIT: Duration = Duration::from_secs(8);

/// The zone's PROJ table, `www` at `addr`.
fn table(addr: &str) -> String {
    format!("www.tsig.test {addr} A\nmail.tsig.test 192.0.2.25 A\n")
}

/// A `[[ts]]` on `port` (metrics on `metrics`) requiring the key `xfr`
/// (`algorithm`, its secret in `xfr.key` as `tsig-keygen` writes it) and
/// NOTIFYing `notify`.
fn config(dir: &Path, port: u16, metrics: u16, algorithm: &str, secret: &str, notify: &[u16]) {
    std::fs::write(
        dir.join("xfr.key"),
        format!("key \"xfr\" {{\n\talgorithm {algorithm};\n\tsecret \"{secret}\";\n}};\n"),
    )
    .unwrap();
    let notify: Vec<String> = notify
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let text = format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"t.txt\"]\n\
         origin = \"tsig.test.\"\naxfr_allow = [\"127.0.0.0/8\"]\nxfr_key = \"xfr\"\n\
         metrics = \"127.0.0.1:{metrics}\"\nnotify = [{}]\n\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"{algorithm}\"\nsecret_file = \"xfr.key\"\n",
        notify.join(", ")
    );
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// `dnslb ts` of `dir/config.toml`, serving `tsig.test.` (SOA queries are
/// not transfers: they need no key).
async fn start(dir: &Path, port: u16) -> Proc {
    let conf = dir.join("config.toml");
    let mut ts = Proc::spawn(
        "dnslb ts --name primary",
        wrapped(&[], &["ts", "-c", path_str(&conf), "--name", "primary"]),
    );
    wait_soa(
        local(port),
        "tsig.test.",
        PEER_READY_LIMIT,
        &mut [&mut ts],
        |m| soa_serial(m).is_some(),
    )
    .await;
    ts
}

/// `prog` (dig or kdig) `args` against the TS: its output.
fn run(prog: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(["-p", &port.to_string(), "@127.0.0.1", "+time=3"])
        .arg(if prog.ends_with("kdig") {
            "+retry=0"
        } else {
            "+tries=1"
        })
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// An AXFR of `tsig.test.` signed with `key` at `at`, over TCP: the answer
/// and the request's MAC.
async fn signed_axfr(addr: SocketAddr, key: &Arc<Key>, at: u64) -> (Vec<u8>, Vec<u8>) {
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("tsig.test.").unwrap(),
        RecordType::AXFR,
    ));
    let mut q = m.to_vec().unwrap();
    let mut signer = Signer::request(key.clone());
    signer.sign_at(&mut q, at);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    crate::kit::tcp_send(&mut s, &q).await;
    let answer = crate::kit::tcp_recv(&mut s).await.expect("an answer");
    (answer, signer.last_mac().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_dig_transfers_with_the_key_and_is_refused_without_it() {
    let Some([dig, kdig]) = need("tsig_dig", ["dig", "kdig"]) else {
        return;
    };
    for (algorithm, secret) in [("hmac-sha256", SECRET_256), ("hmac-sha512", SECRET_512)] {
        let dir = ZoneDir::new();
        dir.write("t.txt", &table("192.0.2.1"));
        let [port, metrics] = free_ports(2).try_into().unwrap();
        config(dir.path(), port, metrics, algorithm, secret, &[]);
        let mut ts = start(dir.path(), port).await;
        let y = format!("{algorithm}:xfr:{secret}");

        // With the key: the whole zone, every message verified by dig and kdig.
        let out = run(&dig, port, &["-y", &y, "tsig.test.", "AXFR"]);
        assert!(
            out.contains("XFR size: 4 records")
                && out.contains("www.tsig.test.")
                && !out.contains("tsig verify failure"),
            "{algorithm}: dig -y AXFR:\n{out}\n{}",
            ts.stderr_now()
        );
        let out = run(&kdig, port, &["-y", &y, "tsig.test.", "AXFR"]);
        assert!(
            out.contains("4 records") && out.contains("NOERROR"),
            "kdig -y AXFR:\n{out}"
        );
        // A signed plain query gets a signed answer (secondaries ask SOA so).
        let out = run(&dig, port, &["-y", &y, "tsig.test.", "SOA"]);
        assert!(
            out.contains("status: NOERROR") && out.contains("TSIG"),
            "{out}"
        );

        // Without the key, with a wrong secret, with an unknown key.
        let out = run(&dig, port, &["tsig.test.", "AXFR"]);
        assert!(out.contains("Transfer failed"), "unsigned:\n{out}");
        let wrong = format!("{algorithm}:xfr:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let out = run(&dig, port, &["-y", &wrong, "tsig.test.", "AXFR"]);
        assert!(
            out.contains("BADSIG") && out.contains("Transfer failed"),
            "wrong secret:\n{out}"
        );
        let other = format!("{algorithm}:other:{secret}");
        let out = run(&dig, port, &["-y", &other, "tsig.test.", "AXFR"]);
        assert!(
            out.contains("BADKEY") && out.contains("Transfer failed"),
            "unknown key:\n{out}"
        );
        let out = run(&dig, port, &["-y", &wrong, "+tcp", "tsig.test.", "SOA"]);
        assert!(
            out.contains("status: NOTAUTH"),
            "a signed query with a wrong secret:\n{out}"
        );

        // Ten minutes off: NOTAUTH, BADTIME, signed, the server's time in
        // the other data.
        let alg = Algorithm::from_name(algorithm).unwrap();
        let bytes = data_encoding::BASE64.decode(secret.as_bytes()).unwrap();
        let key = Arc::new(Key::new("xfr", alg, &bytes).unwrap());
        let now = dnslb::clock::unix_now();
        let (answer, mac) = signed_axfr(local(port), &key, now - 600).await;
        assert_eq!(answer[3] & 0x0f, 9, "NOTAUTH");
        let t = tsig::find(&answer).unwrap().expect("a TSIG in the answer");
        assert_eq!(t.error, 18, "BADTIME");
        let server_time = t.other.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        assert!(
            server_time.abs_diff(now) < 60,
            "the server's time: {server_time} vs {now}"
        );
        assert_eq!(
            tsig::verify_response(&answer, &key, &mac, now - 600),
            Ok(ResponseCheck::Signed(18)),
            "the BADTIME answer is signed"
        );
        // In time, our own signer is accepted.
        let (answer, mac) = signed_axfr(local(port), &key, now).await;
        assert_eq!(answer[3] & 0x0f, 0, "NOERROR");
        assert_eq!(
            tsig::verify_response(&answer, &key, &mac, now),
            Ok(ResponseCheck::Signed(0))
        );

        // Counted by error.
        let e = parse_exposition(&http_get(local(metrics), "/metrics").await.body);
        let refused = |error: &str| value(&e, "dnslb_ts_tsig_refused_total", &[("error", error)]);
        assert_eq!(refused("unsigned"), 1.0);
        assert_eq!(refused("BADSIG"), 2.0);
        assert_eq!(refused("BADKEY"), 1.0);
        assert_eq!(refused("BADTIME"), 1.0);
        assert_eq!(
            value(&e, "dnslb_ts_answers_total", &[("rcode", "NOTAUTH")]),
            5.0
        );

        // A key file that no longer reads refuses the reload: the old key
        // keeps serving.
        std::fs::write(dir.path().join("xfr.key"), "not base64 !!\n").unwrap();
        ts.signal(Signal::HUP);
        crate::kit::poll_until_async(PEER_READY_LIMIT, Duration::from_millis(50), async || {
            let e = parse_exposition(&http_get(local(metrics), "/metrics").await.body);
            (value(&e, "dnslb_ts_reloads_total", &[("result", "refused")]) >= 1.0).then_some(())
        })
        .await
        .expect("the reload refused");
        let out = run(&dig, port, &["-y", &y, "tsig.test.", "AXFR"]);
        assert!(
            out.contains("XFR size: 4 records"),
            "after a refused reload:\n{out}"
        );
        // Counted and logged by the same reload, in no set order, and read
        // from the pipe later still.
        ts.wait_line("reload refused", PEER_READY_LIMIT).await;
    }
}

/// Polls `addr` for `www.tsig.test. A` until it is `want`.
async fn follows(
    addr: SocketAddr,
    want: &str,
    limit: Duration,
    procs: &mut [&mut Proc],
    who: &str,
) {
    let want: [Ipv4Addr; 1] = [want.parse().unwrap()];
    let found = poll_answer(
        addr,
        ("www.tsig.test.", RecordType::A, false),
        limit,
        procs,
        |m| answers_a(m, &want),
    )
    .await;
    if let Err(last) = found {
        panic!(
            "{who} on {addr} did not serve www.tsig.test. A {want:?} within {limit:?}; last: {}",
            last.as_ref().map_or("none".into(), show)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_nsd_and_knot_secondaries_transfer_with_the_key_and_follow_signed_notify() {
    let Some([knotd, _nsd]) = need("tsig_secondaries", ["knotd", "nsd"]) else {
        return;
    };
    let dir = ZoneDir::new();
    let table_path = dir.write("t.txt", &table("192.0.2.1"));
    let [port, metrics, nsd_port, knot_port] = free_ports(4).try_into().unwrap();
    config(
        dir.path(),
        port,
        metrics,
        "hmac-sha256",
        SECRET_256,
        &[nsd_port, knot_port],
    );
    let mut ts = start(dir.path(), port).await;
    let key = ("hmac-sha256", "xfr", SECRET_256);

    let mut nsd = Nsd::secondary_with_key(nsd_port, "tsig.test.", local(port), key);
    let mut knot = Knot::secondary_with_key(&knotd, knot_port, "tsig.test.", local(port), key);
    // The data can only come by a signed transfer: neither has a zone file;
    // then one address changes, SIGHUP, and the signed NOTIFY (the SOA
    // refresh is an hour away) brings both the new record.
    for (want, limit) in [
        ("192.0.2.1", PEER_READY_LIMIT),
        ("192.0.2.99", NOTIFY_LIMIT),
    ] {
        if want != "192.0.2.1" {
            std::fs::write(&table_path, table(want)).unwrap();
            ts.signal(Signal::HUP);
        }
        follows(nsd.addr, want, limit, &mut [&mut ts], "NSD").await;
        let procs: &mut [&mut Proc] = &mut [&mut ts, &mut knot.proc];
        follows(knot.addr, want, limit, procs, "Knot").await;
    }
    nsd.check_alive();

    // Nothing was refused: every transfer and SOA query came signed.
    let e = parse_exposition(&http_get(local(metrics), "/metrics").await.body);
    for error in ["unsigned", "FORMERR", "BADSIG", "BADKEY", "BADTIME"] {
        assert_eq!(
            value(&e, "dnslb_ts_tsig_refused_total", &[("error", error)]),
            0.0,
            "{error}\n{}\n{}",
            nsd.logs(),
            knot.logs()
        );
    }
    // Both secondaries acknowledged the signed NOTIFY: the TS logs each
    // acknowledgement when it comes, maybe after the secondary has
    // transferred and served the change.
    crate::kit::wait_stderr(&mut ts, "notify acknowledged", 2, NOTIFY_LIMIT).await;
}

/// A signed answer over UDP stays within the size the client can take
/// (512 bytes without EDNS): RFC 8945 §5.3 has the server make room for
/// its TSIG (truncating the answer, TC set) rather than append it past the
/// limit. Names with 20 to 32 addresses put some unsigned answers just
/// under 512 bytes, where the TSIG (76 bytes here) pushes them over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_a_signed_udp_answer_fits_the_clients_size() {
    let dir = ZoneDir::new();
    let mut text = table("192.0.2.1");
    for n in 20..=32u8 {
        for i in 0..n {
            text.push_str(&format!("big{n}.tsig.test 10.0.{n}.{i} A\n"));
        }
    }
    dir.write("t.txt", &text);
    let [port, metrics] = free_ports(2).try_into().unwrap();
    config(dir.path(), port, metrics, "hmac-sha256", SECRET_256, &[]);
    let ts = start(dir.path(), port).await;
    let bytes = data_encoding::BASE64.decode(SECRET_256.as_bytes()).unwrap();
    let key = Arc::new(Key::new("xfr", Algorithm::HmacSha256, &bytes).unwrap());
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut over = Vec::new();
    let mut truncated = 0u32;
    for n in 20..=32u8 {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii(format!("big{n}.tsig.test.")).unwrap(),
            RecordType::A,
        ));
        let mut q = m.to_vec().unwrap();
        Signer::request(key.clone()).sign(&mut q);
        sock.send_to(&q, local(port)).await.unwrap();
        let mut buf = vec![0u8; 65_535];
        let (len, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let answer = &buf[..len];
        if len > 512 {
            over.push((n, len));
        }
        // Whole, or truncated (TC=1) and empty: never a record dropped
        // silently; signed either way.
        let tc = answer[2] & 0x02 != 0;
        let count = u16::from_be_bytes([answer[6], answer[7]]);
        assert!(
            (tc && count == 0) || (!tc && count == u16::from(n)),
            "big{n}: TC={tc}, {count} addresses"
        );
        assert!(
            tsig::find(answer).unwrap().is_some(),
            "big{n}: the answer is signed"
        );
        truncated += u32::from(tc);
    }
    assert!(
        over.is_empty(),
        "signed answers over the 512 bytes a client without EDNS takes (name's addresses, bytes): {over:?}\n{}",
        ts.stderr_now()
    );
    assert!(
        truncated > 0,
        "some names are too large for 512 bytes signed"
    );
}

/// A signed transfer whose one message, with its TSIG, would pass the
/// 65,535 bytes a TCP message can hold (a TXT record of 65,471 bytes of
/// RDATA alone in its message: 65,506 bytes, 65,582 signed): the TS must
/// fail the transfer loudly (close the connection, count it failed), not
/// skip the message and go on streaming the rest of the zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_a_signed_message_too_large_fails_the_transfer_loudly() {
    let dir = ZoneDir::new();
    let strings: Vec<String> = (0..255)
        .map(|_| format!("\"{}\"", "x".repeat(255)))
        .chain(std::iter::once(format!("\"{}\"", "y".repeat(190))))
        .collect();
    dir.write(
        "t.zone",
        &format!(
            "$ORIGIN tsig.test.\n$TTL 300\n@ 3600 IN SOA ns.tsig.test. h.tsig.test. 7 3600 600 86400 60\n\
             @ IN NS ns.tsig.test.\nhuge IN TXT {}\nafter IN A 192.0.2.2\n",
            strings.join(" ")
        ),
    );
    let [port, metrics] = free_ports(2).try_into().unwrap();
    config(dir.path(), port, metrics, "hmac-sha256", SECRET_256, &[]);
    let text = std::fs::read_to_string(dir.path().join("config.toml"))
        .unwrap()
        .replace("zones = [\"t.txt\"]", "zones = [\"t.zone\"]");
    std::fs::write(dir.path().join("config.toml"), text).unwrap();
    let ts = start(dir.path(), port).await;
    let bytes = data_encoding::BASE64.decode(SECRET_256.as_bytes()).unwrap();
    let key = Arc::new(Key::new("xfr", Algorithm::HmacSha256, &bytes).unwrap());

    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("tsig.test.").unwrap(),
        RecordType::AXFR,
    ));
    let mut q = m.to_vec().unwrap();
    Signer::request(key).sign(&mut q);
    let mut s = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    crate::kit::tcp_send(&mut s, &q).await;
    // Records received (SOA, NS, huge, after, SOA: 5 when whole).
    let mut records = 0u32;
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_secs(2), crate::kit::tcp_recv(&mut s)).await
    {
        records += u32::from(u16::from_be_bytes([msg[6], msg[7]]));
    }
    let e = parse_exposition(&http_get(local(metrics), "/metrics").await.body);
    let failed = value(&e, "dnslb_ts_xfr_failed_total", &[]);
    assert!(
        records == 5 || failed >= 1.0,
        "{records} records of 5 arrived and the transfer was not counted failed: a message was skipped\n{}",
        ts.stderr_now()
    );
}

/// With a transfer key, a message that cannot be walked before any TSIG (an
/// unsigned query whose ARCOUNT promises a record that is not there) is no
/// TSIG matter: it gets the ordinary FORMERR, as from NSD and Knot, and is
/// not counted as refused for its TSIG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_a_malformed_unsigned_query_gets_the_ordinary_formerr() {
    let dir = ZoneDir::new();
    dir.write("t.txt", &table("192.0.2.1"));
    let [port, metrics] = free_ports(2).try_into().unwrap();
    config(dir.path(), port, metrics, "hmac-sha256", SECRET_256, &[]);
    let ts = start(dir.path(), port).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for qtype in [RecordType::SOA, RecordType::AXFR] {
        let mut m = Message::query();
        m.metadata.id = 0x4a4a;
        m.add_query(Query::query(Name::from_ascii("tsig.test.").unwrap(), qtype));
        let mut q = m.to_vec().unwrap();
        q[11] = 1; // ARCOUNT 1, no record
        sock.send_to(&q, local(port)).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let (len, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{qtype}: no answer\n{}", ts.stderr_now()))
            .unwrap();
        let a = &buf[..len];
        assert_eq!(&a[..2], &[0x4a, 0x4a], "{qtype}: the query's ID");
        assert_eq!((a[2] & 0x80, a[3] & 0x0f), (0x80, 1), "{qtype}: FORMERR");
    }
    let e = parse_exposition(&http_get(local(metrics), "/metrics").await.body);
    let refused = |error: &str| value(&e, "dnslb_ts_tsig_refused_total", &[("error", error)]);
    assert_eq!(
        (refused("FORMERR"), refused("unsigned")),
        (0.0, 0.0),
        "not a TSIG refusal"
    );
    assert_eq!(
        value(&e, "dnslb_ts_answers_total", &[("rcode", "FORMERR")]),
        2.0,
        "counted as the FORMERR answers they got"
    );
}
