//! TSIG on the NOTIFYs the LS takes, over
//! real sockets:
//!
//! * `dig +opcode=notify -y` to an LS whose backend has `notify_key` (the
//!   config read from TOML): a NOTIFY signed with the key is acknowledged
//!   with a TSIG that dig verifies and flushes its zone; one with another
//!   secret gets NOTAUTH/BADSIG, one with a key the LS does not hold
//!   NOTAUTH/BADKEY, an unsigned one REFUSED, and none of them flushes;
//! * `dnslb up` with a cache and a table server with `xfr_key`: the TS's
//!   signed NOTIFY is verified with that key (nothing else configured),
//!   flushes the edited table's old answer, and is acknowledged signed, so
//!   the TS sends it once (before: acknowledged unsigned, which a signed
//!   NOTIFY must discard: sent five times, "notify not acknowledged").
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use rustix::process::Signal;

use crate::kit::SECRET_256;
use crate::kit::a_300;
use crate::kit::*;

/// How long a NOTIFY may take to be acted on, and a dig to end.
const LIMIT: Duration = Duration::from_secs(10);

/// Another secret of the same length.
const OTHER_SECRET: &str = "3q2+7wAAAAARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4g=";

/// `dig +opcode=notify` for `zone` SOA to `ls`, signed with `key`
/// (`ALG:NAME:SECRET`, as `-y` takes it) if given: its stdout and stderr.
async fn dig_notify(dig: &Path, ls: std::net::SocketAddr, zone: &str, key: Option<&str>) -> String {
    let mut cmd = Command::new(dig);
    cmd.args([
        &format!("@{}", ls.ip()),
        "-p",
        &ls.port().to_string(),
        "+opcode=notify",
        "+tries=1",
        "+time=5",
    ]);
    if let Some(key) = key {
        cmd.args(["-y", key]);
    }
    cmd.args([zone, "SOA"]);
    let out = tokio::task::spawn_blocking(move || run("dig", cmd, None, LIMIT))
        .await
        .unwrap();
    format!("{}\n{}", out.stdout, out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_flushes_only_when_its_tsig_verifies_and_is_answered_signed() {
    let Some([dig]) = need("notify_tsig", ["dig"]) else {
        return;
    };
    let backend = Fake::answering(a_300).await;
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\n\n[ls.cache]\n\n\
         [[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\nnotify_key = \"xfr\"\n\n\
         [[key]]\nname = \"xfr\"\nsecret = \"{SECRET_256}\"\n",
        backend.addr
    );
    let config = dnslb::config::Config::from_toml(&text, Path::new("config.toml")).unwrap();
    let ls = start_ls(config.ls.unwrap()).await;
    for name in ["www.a.test.", "www.b.test."] {
        let m = ask_a(ls.addr, name).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
    }
    let cache = ls.balancer.state().cache.clone().unwrap();
    assert_eq!(cache.stats().entries, 2);

    let good = format!("hmac-sha256:xfr:{SECRET_256}");
    let forged = format!("hmac-sha256:xfr:{OTHER_SECRET}");
    let unknown = format!("hmac-sha256:other:{SECRET_256}");
    let out = dig_notify(&dig, ls.addr, "a.test.", Some(&forged)).await;
    assert!(
        out.contains("status: NOTAUTH") && out.contains(" BADSIG "),
        "{out}"
    );
    let out = dig_notify(&dig, ls.addr, "a.test.", Some(&unknown)).await;
    assert!(
        out.contains("status: NOTAUTH") && out.contains(" BADKEY "),
        "{out}"
    );
    let out = dig_notify(&dig, ls.addr, "a.test.", None).await;
    assert!(out.contains("status: REFUSED"), "{out}");

    let out = dig_notify(&dig, ls.addr, "b.test.", Some(&good)).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("TSIG PSEUDOSECTION"), "signed: {out}");
    // dig checks the answer's TSIG with its key and says when it cannot.
    assert!(
        !out.contains("could not be validated") && !out.contains("Couldn't verify"),
        "the acknowledgement verifies: {out}"
    );
    // The flusher walks after the acknowledgement: b.test.'s entry goes,
    // and a.test.'s stays (a refused NOTIFY queues nothing, and the queue
    // is walked in order).
    let flushes = &ls.balancer.flushes().flushes[0];
    let walked = poll_until_async(LIMIT, ASK_POLL, async || {
        (flushes.load(Relaxed) >= 1).then_some(())
    })
    .await;
    assert!(walked.is_some(), "the signed NOTIFY was never flushed");
    assert_eq!(cache.stats().entries, 1, "a.test. is still cached");
    let f = ls.balancer.flushes();
    assert_eq!(f.notify_accepted.load(Relaxed), 1);
    assert_eq!(f.notify_tsig_refused.load(Relaxed), 3);
    assert_eq!(f.notify_refused.load(Relaxed), 0);
    assert_eq!(flushes.load(Relaxed), 1, "one zone flushed");
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_a_signing_ts_flushes_on_its_signed_notify_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let (pl, pm, p1, p2) = (ports[0], ports[1], ports[2], ports[3]);
    for t in ["ts1.txt", "ts2.txt"] {
        std::fs::copy(ls_fixture(t), dir.path().join(t)).unwrap();
    }
    let text = format!(
        "{}metrics = \"127.0.0.1:{pm}\"\n\n[ls.cache]\n\n{}\n{}\n{}\n\
         [[key]]\nname = \"xfr\"\nsecret = \"{SECRET_256}\"\n",
        ls_head_toml(pl, 2),
        pair_backends_toml(p1, p2),
        ts_toml("ts1", p1, "ts1.txt", "xfr_key = \"xfr\""),
        ts_toml("ts2", p2, "ts2.txt", ""),
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], Path::new("/"));
    // Answered, and so cached (TTL 300).
    wait_answers(local(pl), "www.example.com.", "192.0.2.10", &mut [&mut up]).await;
    wait_answers(local(pl), "www.example.com.", "192.0.2.10", &mut [&mut up]).await;

    let table = dir.path().join("ts1.txt");
    let edited = std::fs::read_to_string(&table)
        .unwrap()
        .replace("192.0.2.10 ", "192.0.2.11 ");
    let new = dir.path().join("ts1.txt.new");
    std::fs::write(&new, edited).unwrap();
    std::fs::rename(&new, &table).unwrap();
    up.signal(Signal::HUP);
    // Far below the entry's 300 s: the signed NOTIFY flushed it.
    wait_answers(local(pl), "www.example.com.", "192.0.2.11", &mut [&mut up]).await;
    // The LS's signed answer ends the TS's tries (before: every answer
    // discarded, five tries over 31 s, then "not acknowledged").
    wait_log(&mut up, LIMIT, "notify acknowledged", |log| {
        log.contains("notify acknowledged").then_some(())
    });
    // The first try again would be due a second after the first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = http_get(local(pm), "/metrics").await.body;
    let e = parse_exposition(&metrics);
    let notifies = |result| value(&e, "dnslb_notify_total", &[("result", result)]);
    let log = up.stderr_now();
    assert_eq!(notifies("accepted"), 1.0, "one NOTIFY, once\n{log}");
    assert_eq!(notifies("tsig_refused"), 0.0, "{log}");
    assert!(!log.contains("not acknowledged"), "{log}");
    up.signal(Signal::TERM);
    assert!(up.wait_exit(Duration::from_secs(10)).is_some(), "up stops");
}
