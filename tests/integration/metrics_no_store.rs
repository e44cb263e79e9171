//! METRICS.md: the LS's status page, `/metrics`, `/health` and `/ready`,
//! and the TS's `/metrics`, carry `Cache-Control: no-store`, so that no
//! cache between a dashboard and the server shows old figures.
use crate::kit::{self, TestMetrics, ZoneDir, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metrics_answer_carries_cache_control_no_store() {
    let cfg = kit::ls_config(&[("b", "127.0.0.1:9".parse().unwrap())]);
    let ls = TestMetrics::start_for(&cfg).await;
    let dir = ZoneDir::new();
    let ts = kit::start_ts_table(&dir, "t.txt", "www.example 192.0.2.1 A\n").await;
    let ts_metrics = TestMetrics::start_ts(ts.ts.clone()).await;
    let asked = [
        (ls.addr, "/"),
        (ls.addr, "/metrics"),
        (ls.addr, "/health"),
        (ls.addr, "/ready"),
        (ts_metrics.addr, "/metrics"),
    ];
    for (addr, path) in asked {
        let r = http_get(addr, path).await;
        no_store(addr, path, &r);
    }
    ts_metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

fn no_store(addr: std::net::SocketAddr, path: &str, r: &kit::HttpResponse) {
    {
        assert_eq!(
            r.headers.get("cache-control").map(String::as_str),
            Some("no-store"),
            "{addr}{path}: {} {:?}",
            r.status,
            r.headers
        );
    }
}
