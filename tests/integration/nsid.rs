//! NSID (RFC 5001): `dig +nsid` and `kdig +nsid` against a TS with an `nsid`,
//! against an LS in front of it (the backend's NSID passes through), and
//! against an LS in front of a TS without one (the LS names the backend);
//! without `+nsid` no NSID is sent. Also the TS's error answers, a request
//! with a payload (not a request), and a backend that answers without EDNS.
use std::net::SocketAddr;

use dnslb::config::Config;
use dnslb::ts::TsSettings;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use tokio::net::UdpSocket;

use crate::kit::{
    TestTs, ZoneDir, is_probe, ls_config, nsid_of, query, start_ls, start_ts, tcp, udp,
};
use crate::kit::{run_tool, tool_args};

const TABLE: &str = "www.example.com 192.0.2.1 A\n";

/// A TS serving [`TABLE`], from a `[[ts]]` section with `nsid = "..."` when
/// given (so the key is read the way `dnslb ts -c` reads it).
async fn ts_with(dir: &ZoneDir, nsid: Option<&str>) -> TestTs {
    let zone = dir.write("t.txt", TABLE);
    let mut text = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\n",
        zone.display().to_string()
    );
    if let Some(id) = nsid {
        text.push_str(&format!("nsid = {id:?}\n"));
    }
    let cfg = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
    let settings = TsSettings::from_config(&cfg.ts[0]);
    assert_eq!(settings.nsid.as_deref(), nsid);
    start_ts(settings).await
}

/// What a run of `prog` (dig or kdig) printed as NSID: the text between the
/// quotes of its `NSID:` line (dig: `; NSID: 74 73 31 ("ts1")`, kdig:
/// `;; NSID: 747331 "ts1"`), or `None` without such a line. The answer must
/// have come: the run succeeded and shows the A record.
async fn nsid_shown(prog: &'static str, at: SocketAddr, extra: &[&str]) -> Option<String> {
    let once = if prog == "kdig" {
        "+retry=0"
    } else {
        "+tries=1"
    };
    let plain = ["-t", "A", "+norec", "+time=2", once];
    let args = tool_args(at, &[&plain[..], extra, &["www.example.com"]].concat());
    let out = tokio::task::spawn_blocking(move || run_tool(prog, &args))
        .await
        .unwrap();
    assert!(
        out.status.success() && out.stdout.contains("192.0.2.1"),
        "{prog} {extra:?}: no answer ({}):\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let line = out.stdout.lines().find(|l| l.contains("NSID:"))?;
    let (start, end) = (line.find('"')?, line.rfind('"')?);
    Some(line.get(start + 1..end)?.to_owned())
}

/// `dig +nsid`, `kdig +nsid`, each over UDP and TCP, all show `want`; and
/// neither shows an NSID without `+nsid`.
async fn tools_show(at: SocketAddr, want: &str) {
    for prog in ["dig", "kdig"] {
        for transport in [&["+nsid"][..], &["+nsid", "+tcp"]] {
            assert_eq!(
                nsid_shown(prog, at, transport).await.as_deref(),
                Some(want),
                "{prog} {transport:?} at {at}"
            );
        }
        assert_eq!(
            nsid_shown(prog, at, &[]).await,
            None,
            "{prog} without +nsid at {at}"
        );
    }
}

/// A query for www.example.com A with an OPT carrying `nsid` as an NSID
/// option (empty: a request).
fn nsid_query(nsid: Option<&[u8]>) -> Message {
    let mut m = query("www.example.com", RecordType::A, Some(1232));
    if let Some(payload) = nsid {
        let mut e = m.edns.clone().unwrap();
        e.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(payload.to_vec()).unwrap(),
        ));
        m.set_edns(e);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_with_nsid_shows_it_to_dig_and_kdig_only_when_asked() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, Some("ts1.east")).await;
    tools_show(ts.addr, "ts1.east").await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ls_passes_the_backend_nsid_through() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, Some("ts1.east")).await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    tools_show(ls.addr, "ts1.east").await;
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ls_names_a_backend_that_has_no_nsid() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, None).await;
    // The TS alone says nothing.
    let m = udp(ts.addr, &nsid_query(Some(b""))).await;
    assert!(m.edns.is_some() && nsid_of(&m).is_none(), "{m:?}");
    let ls = start_ls(ls_config(&[("backend-7", ts.addr)])).await;
    tools_show(ls.addr, "dnslb-ls:backend-7").await;
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test]
async fn the_ts_answers_nsid_in_every_answer_with_an_opt() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, Some("ts1")).await;
    // A positive and a negative answer, over UDP and TCP.
    for name in ["www.example.com", "missing.example.com"] {
        let mut q = nsid_query(Some(b""));
        q.queries[0] = query(name, RecordType::A, None).queries[0].clone();
        assert_eq!(nsid_of(&udp(ts.addr, &q).await).unwrap(), b"ts1", "{name}");
        assert_eq!(nsid_of(&tcp(ts.addr, &q).await).unwrap(), b"ts1", "{name}");
    }
    // REFUSED (class CH) and BADVERS (EDNS version 1) carry it too.
    let mut q = nsid_query(Some(b""));
    q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let m = udp(ts.addr, &q).await;
    assert_eq!(m.response_code, hickory_proto::op::ResponseCode::Refused);
    assert_eq!(nsid_of(&m).unwrap(), b"ts1", "REFUSED");
    let mut q = nsid_query(Some(b""));
    let mut e = q.edns.clone().unwrap();
    e.set_version(1);
    q.set_edns(e);
    let m = udp(ts.addr, &q).await;
    assert_eq!(u16::from(m.response_code), 16, "BADVERS");
    assert_eq!(nsid_of(&m).unwrap(), b"ts1", "BADVERS");
    // An NSID option with a payload is not a request (RFC 5001 §2.1), and
    // no option is no request.
    assert_eq!(nsid_of(&udp(ts.addr, &nsid_query(Some(b"x"))).await), None);
    assert_eq!(nsid_of(&udp(ts.addr, &nsid_query(None)).await), None);
    ts.stop().await;
}

/// A backend that answers every query from the LS, probes included, with
/// one A record and no OPT at all (a server without EDNS).
async fn no_edns_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let mut r = Message::from_vec(&buf[..n]).unwrap();
            r.metadata.message_type = hickory_proto::op::MessageType::Response;
            r.metadata.authoritative = true;
            r.edns = None;
            if !is_probe(&buf[..n]) {
                let name = r.queries[0].name().clone();
                r.add_answer(hickory_proto::rr::Record::from_rdata(
                    name,
                    60,
                    hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
                ));
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_ls_adds_no_opt_to_a_backend_answer_without_one() {
    let (backend, task) = no_edns_backend().await;
    let ls = start_ls(ls_config(&[("old", backend)])).await;
    let m = udp(ls.addr, &nsid_query(Some(b""))).await;
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert!(m.edns.is_none(), "no OPT made up: {m:?}");
    ls.stop().await;
    task.abort();
}
