//! The first answers after a TS starts: a
//! dead endpoint is not answered while its first checks run. The TS probes
//! every endpoint at once at start, takes each first result as its state
//! and answers only once that round ended (bounded by the largest
//! `timeout_ms`), as gdnsd runs its first round of monitoring before it
//! opens its listeners.
use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::rr::RecordType;

use crate::kit::{Endpoint, ServiceTs, ZoneDir, a_addrs_sorted, free_ports};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_answer_after_start_leaves_a_dead_endpoint_out() {
    let dir = ZoneDir::new();
    let port = free_ports(1)[0];
    let live = Ipv4Addr::new(127, 0, 62, 1);
    let dead = Ipv4Addr::new(127, 0, 62, 2);
    let _endpoint = Endpoint::tcp(SocketAddr::from((live, port))).await;
    // fall 2 every second: fail-open at start answered the dead endpoint
    // for about a second.
    let services = format!(
        "[[ts.service]]\nname = \"app.example.test\"\n\
         check = {{ kind = \"tcp\", port = {port}, interval_ms = 1000, timeout_ms = 500, rise = 2, fall = 2 }}\n\
         endpoint = [ {{ addr = \"{live}\" }}, {{ addr = \"{dead}\" }} ]\n"
    );
    let ts = ServiceTs::start(&dir, "example.test", &services).await;
    let first = ts.ask("app.example.test", RecordType::A).await;
    assert_eq!(a_addrs_sorted(&first), [live], "{first:?}");
    let mut metrics = String::new();
    ts.table.write_service_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "dnslb_ts_endpoint_up{{service=\"app.example.test.\",endpoint=\"{dead}\"}} 0"
        )),
        "{metrics}"
    );
    ts.stop().await;
}
