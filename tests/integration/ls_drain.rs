//! A backend set by hand under `layout = "partitioned"` (the default),
//! where no other backend holds its names: drained, it is asked last, once
//! the others have said "no", so its names are still answered (never the
//! made-up NXDOMAIN) and a name no one holds gets the real NXDOMAIN; and
//! `dnslb backend NAME down` says what it does there (its names get the
//! `on_timeout` answer while it is down).
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::*;

/// Client queries sent to backend `i`.
fn sent(ls: &TestLs, i: usize) -> u64 {
    ls.balancer.state().backends[i].stats.sent.load(Relaxed)
}

/// `name` A over `via`: its rcode, AA and addresses.
async fn ask(ls: SocketAddr, name: &str, via: Via) -> (ResponseCode, bool, Vec<Ipv4Addr>) {
    let m = ask_via(ls, &query(name, RecordType::A, Some(1232)), via).await;
    (
        m.metadata.response_code,
        m.metadata.authoritative,
        a_addrs(&m),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_partition_still_answers_its_names() {
    let (_d1, ts1) = table_ts("one.drain.example 10.9.0.1 A\n").await;
    let (_d2, ts2) = table_ts("two.drain.example 10.9.0.2 A\n").await;
    // Defaults: partitioned, hedge, on_timeout nxdomain.
    let ls = start_ls(ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)])).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let addr = metrics.addr.to_string();

    let (ok, out, err) = dnslb_cli(&["backend", "ts1", "drain", "--addr", &addr]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("backend ts1: drain (was auto)\n"), "{out}");
    assert!(out.contains("its names are still answered"), "{out}");

    for via in [Via::Udp, Via::Tcp] {
        for _ in 0..20 {
            let one = ask(ls.addr, "one.drain.example", via).await;
            assert_eq!(
                one,
                (
                    ResponseCode::NoError,
                    true,
                    vec![Ipv4Addr::new(10, 9, 0, 1)]
                ),
                "{via:?}: the drained partition's name"
            );
            let two = ask(ls.addr, "two.drain.example", via).await;
            assert_eq!(
                two,
                (
                    ResponseCode::NoError,
                    true,
                    vec![Ipv4Addr::new(10, 9, 0, 2)]
                ),
                "{via:?}"
            );
            // No one holds it: the backends' own NXDOMAIN (AA), not made up.
            let none = ask(ls.addr, "none.drain.example", via).await;
            assert_eq!(none, (ResponseCode::NXDomain, true, vec![]), "{via:?}");
        }
    }
    // Asked only where the others said "no": not for ts2's names.
    let before = sent(&ls, 0);
    for _ in 0..20 {
        let two = ask(ls.addr, "two.drain.example", Via::Udp).await;
        assert_eq!(two.0, ResponseCode::NoError);
    }
    assert_eq!(sent(&ls, 0), before, "the drained backend got ts2's names");

    // Down by hand: as if health said down, and the reply says what that
    // does to its names here.
    let (ok, out, err) = dnslb_cli(&["backend", "ts1", "down", "--addr", &addr]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("backend ts1: down (was drain)\n"), "{out}");
    assert!(
        out.contains("they get the on_timeout answer (nxdomain) while it is down"),
        "{out}"
    );
    let one = ask(ls.addr, "one.drain.example", Via::Udp).await;
    assert_eq!(one.0, ResponseCode::NXDomain, "down: the on_timeout answer");
    assert!(!one.1, "made up, so not authoritative");

    let (ok, out, _) = dnslb_cli(&["backend", "ts1", "auto", "--addr", &addr]).await;
    assert!(
        ok && out.starts_with("backend ts1: auto (was down)\n"),
        "{out}"
    );
    let one = ask(ls.addr, "one.drain.example", Via::Udp).await;
    assert_eq!(one.0, ResponseCode::NoError);
    metrics.token.cancel();
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}
