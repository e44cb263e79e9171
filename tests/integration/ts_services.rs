//! `[[ts.service]]` (issue 38) through a TS run as `dnslb ts` runs it
//! (`TsService`, its endpoint checker started with it), against real TCP
//! endpoints on 127.0.0.x that the test stops and starts again:
//!
//! * a dead endpoint leaves the answers and comes back after `rise`; an AXFR
//!   meanwhile still carries every endpoint (fail-open for secondaries);
//!   other types at the name get NODATA with the SOA;
//! * `failover` moves to the second group and back; `when_all_down` as
//!   every endpoint, a fallback CNAME, or SERVFAIL;
//! * a view picks the group by source address (127.0.0.2 vs 127.0.0.3) and
//!   by ECS (`dig +subnet`), the scope echoed;
//! * weights hold over many queries (chi-square).
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpListener;

use dnslb::config::Config;
use dnslb::service::ts::{TsRun, TsService};
use dnslb::service::{Control, Controls, ServiceError};
use dnslb::ts::TsSettings;

use crate::kit::{ZoneDir, need, poll_until_async, query, run_tool, udp_raw_from};

/// How long an endpoint's death or return may take to show: checks every
/// 100 ms, 2 in a row, plus slack for a loaded machine.
const LIMIT: Duration = Duration::from_secs(10);

const ZONE: &str = "$ORIGIN example.org.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n";

/// A TS run in a task, with its address.
struct Ts {
    addr: SocketAddr,
    controls: tokio::sync::mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<Result<(), ServiceError>>,
    table: std::sync::Arc<dnslb::ts::TableServer>,
}

impl Ts {
    /// Starts a TS serving [`ZONE`] with the `[[ts.service]]` tables `services`.
    async fn start(dir: &ZoneDir, services: &str) -> Ts {
        let zone = dir.write("example.org.zone", ZONE);
        let text = format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\naxfr_allow = [\"127.0.0.0/8\"]\n{services}",
            zone.display().to_string()
        );
        let cfg = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
        let run = TsRun {
            settings: TsSettings::from_config(&cfg.ts[0]),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: None,
            workers: 1,
            dnstap: None,
            started: None,
        };
        let service = TsService::start(run).await.expect("the TS starts");
        let addr = service.local_addrs()[0];
        let table = service.table().clone();
        let (controls, rx) = Controls::channel();
        let task = tokio::spawn(service.serve(rx));
        Ts {
            addr,
            controls,
            task,
            table,
        }
    }

    async fn stop(self) {
        let _ = self.controls.send(Control::Shutdown);
        let end = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        end.expect("the TS stopped").unwrap().expect("a clean stop");
    }

    /// The answer to `name qtype` asked from `src`.
    async fn ask_from(&self, src: IpAddr, name: &str, qtype: RecordType) -> Message {
        let q = query(name, qtype, None).to_vec().unwrap();
        let raw = udp_raw_from(src, self.addr, &q, Duration::from_secs(2))
            .await
            .expect("an answer");
        Message::from_vec(&raw).unwrap()
    }

    async fn ask(&self, name: &str, qtype: RecordType) -> Message {
        self.ask_from(Ipv4Addr::LOCALHOST.into(), name, qtype).await
    }

    /// Asks `name A` until `want` holds for the sorted addresses.
    async fn until(&self, name: &str, want: &[Ipv4Addr]) {
        let mut last = Vec::new();
        let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
            last = addrs(&self.ask(name, RecordType::A).await);
            (last == want).then_some(())
        })
        .await;
        assert!(got.is_some(), "{name}: wanted {want:?}, last {last:?}");
    }
}

/// The A addresses of `m`, sorted.
fn addrs(m: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// TCP endpoints on 127.0.0.x, all on one port, stopped and started again.
struct Endpoints {
    port: u16,
    up: Vec<(u8, Option<TcpListener>)>,
}

impl Endpoints {
    /// Listeners on 127.0.0.`lasts`, one port for all (a few tries to find one free on each).
    async fn start(lasts: &[u8]) -> Endpoints {
        for _ in 0..20 {
            let first = TcpListener::bind((ip(lasts[0]), 0)).await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut up = vec![(lasts[0], Some(first))];
            for &l in &lasts[1..] {
                match TcpListener::bind((ip(l), port)).await {
                    Ok(s) => up.push((l, Some(s))),
                    Err(_) => break,
                }
            }
            if up.len() == lasts.len() {
                return Endpoints { port, up };
            }
        }
        panic!("no port free on every endpoint address");
    }

    /// Stops 127.0.0.`last` (connections refused).
    fn kill(&mut self, last: u8) {
        for (l, s) in &mut self.up {
            if *l == last {
                *s = None;
            }
        }
    }

    /// Starts 127.0.0.`last` again.
    async fn revive(&mut self, last: u8) {
        let port = self.port;
        for (l, s) in &mut self.up {
            if *l == last {
                *s = Some(TcpListener::bind((ip(last), port)).await.unwrap());
            }
        }
    }

    /// The service's `check` line.
    fn check(&self) -> String {
        format!(
            "check = {{ kind = \"tcp\", port = {}, interval_ms = 100, timeout_ms = 500, rise = 2, fall = 2 }}\n",
            self.port
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_leaves_the_answers_and_comes_back_and_axfr_keeps_it() {
    let dir = ZoneDir::new();
    let mut eps = Endpoints::start(&[2, 3]).await;
    let services = format!(
        "[[ts.service]]\nname = \"www.example.org\"\n{}endpoint = [ {{ addr = \"127.0.0.2\" }}, {{ addr = \"127.0.0.3\" }} ]\n",
        eps.check()
    );
    let ts = Ts::start(&dir, &services).await;
    ts.until("www.example.org", &[ip(2), ip(3)]).await;
    let m = ts.ask("www.example.org", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 30, "the service's ttl");

    eps.kill(3);
    ts.until("www.example.org", &[ip(2)]).await;
    let mut metrics = String::new();
    ts.table.write_service_metrics(&mut metrics);
    assert!(
        metrics.contains(
            "dnslb_ts_endpoint_up{service=\"www.example.org.\",endpoint=\"127.0.0.3\"} 0"
        ),
        "{metrics}"
    );
    // Other types: NODATA with the SOA; AAAA too (no IPv6 endpoint).
    for t in [RecordType::AAAA, RecordType::TXT] {
        let m = ts.ask("www.example.org", t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "{t}: {m:?}");
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{t}");
    }
    // A transfer carries every endpoint, the dead one too.
    if let Some([dig]) = need("ts_services axfr", ["dig"]) {
        let (port, ip_text) = (ts.addr.port().to_string(), format!("@{}", ts.addr.ip()));
        let out = tokio::task::spawn_blocking(move || {
            run_tool(
                dig.to_str().unwrap(),
                &[&ip_text, "-p", &port, "example.org", "AXFR", "+tcp"],
            )
        })
        .await
        .unwrap();
        for want in ["127.0.0.2", "127.0.0.3"] {
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with("www.example.org.") && l.ends_with(want)),
                "{want} missing from the AXFR:\n{}",
                out.stdout
            );
        }
    }

    eps.revive(3).await;
    ts.until("www.example.org", &[ip(2), ip(3)]).await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_and_comes_back_and_all_down_answers_each_way() {
    let dir = ZoneDir::new();
    let mut eps = Endpoints::start(&[4, 5]).await;
    let body = format!(
        "select = \"failover\"\n{}endpoint = [ {{ addr = \"127.0.0.4\", group = \"dc1\" }}, {{ addr = \"127.0.0.5\", group = \"dc2\" }} ]\n",
        eps.check()
    );
    let services = format!(
        "[[ts.service]]\nname = \"fo.example.org\"\nwhen_all_down = {{ fallback = \"sorry.example.org\" }}\n{body}\
         [[ts.service]]\nname = \"sf.example.org\"\nwhen_all_down = \"servfail\"\n{body}\
         [[ts.service]]\nname = \"open.example.org\"\n{body}"
    );
    let ts = Ts::start(&dir, &services).await;
    ts.until("fo.example.org", &[ip(4)]).await;
    eps.kill(4);
    ts.until("fo.example.org", &[ip(5)]).await;
    eps.revive(4).await;
    ts.until("fo.example.org", &[ip(4)]).await;

    eps.kill(4);
    eps.kill(5);
    // All down: every endpoint (the default), the fallback, SERVFAIL.
    ts.until("open.example.org", &[ip(4), ip(5)]).await;
    let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = ts.ask("fo.example.org", RecordType::A).await;
        m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii()),
            _ => None,
        })
    })
    .await;
    assert_eq!(got.as_deref(), Some("sorry.example.org."));
    let m = ts.ask("sf.example.org", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());

    eps.revive(5).await;
    ts.until("sf.example.org", &[ip(5)]).await;
    ts.until("fo.example.org", &[ip(5)]).await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_pick_the_group_by_source_address_and_by_ecs_with_the_scope_echoed() {
    let dir = ZoneDir::new();
    let services = "[[ts.service]]\nname = \"www.example.org\"\nselect = \"failover\"\n\
        endpoint = [ { addr = \"192.0.2.1\", group = \"dc1\" }, { addr = \"198.51.100.1\", group = \"dc2\" } ]\n\
        view = [ { clients = [\"127.0.0.2/32\", \"10.0.0.0/8\"], groups = [\"dc2\", \"dc1\"] } ]\n";
    let ts = Ts::start(&dir, services).await;
    let (dc1, dc2) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1));
    let from = |l: u8| IpAddr::from(ip(l));
    let m = ts.ask_from(from(2), "www.example.org", RecordType::A).await;
    assert_eq!(addrs(&m), [dc2], "127.0.0.2 is in the view");
    let m = ts.ask_from(from(3), "www.example.org", RecordType::A).await;
    assert_eq!(addrs(&m), [dc1], "127.0.0.3 is not");

    let Some([dig]) = need("ts_services ecs", ["dig"]) else {
        ts.stop().await;
        return;
    };
    let (port, at) = (ts.addr.port().to_string(), format!("@{}", ts.addr.ip()));
    let run = |subnet: &'static str| {
        let (dig, port, at) = (dig.clone(), port.clone(), at.clone());
        tokio::task::spawn_blocking(move || {
            let args = [
                &at[..],
                "-p",
                &port,
                "+norec",
                "+tries=1",
                "+time=2",
                subnet,
                "www.example.org",
                "A",
            ];
            run_tool(dig.to_str().unwrap(), &args).stdout
        })
    };
    let inside = run("+subnet=10.1.2.0/24").await.unwrap();
    assert!(inside.contains("198.51.100.1"), "{inside}");
    // The longest view network of the family is /32: the scope echoed.
    assert!(inside.contains("CLIENT-SUBNET: 10.1.2.0/24/32"), "{inside}");
    let outside = run("+subnet=192.0.2.0/24").await.unwrap();
    assert!(outside.contains("192.0.2.1"), "{outside}");
    assert!(
        outside.contains("CLIENT-SUBNET: 192.0.2.0/24/32"),
        "{outside}"
    );
    // A source prefix of 0: no view by ECS (the source address decides), scope 0.
    let zero = run("+subnet=0.0.0.0/0").await.unwrap();
    assert!(zero.contains("192.0.2.1"), "{zero}");
    assert!(zero.contains("CLIENT-SUBNET: 0.0.0.0/0/0"), "{zero}");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_hold_over_many_queries() {
    let dir = ZoneDir::new();
    let services = "[[ts.service]]\nname = \"w.example.org\"\nselect = \"weighted\"\n\
        endpoint = [ { addr = \"192.0.2.1\", weight = 1 }, { addr = \"192.0.2.2\", weight = 2 },\n\
                     { addr = \"192.0.2.3\", weight = 3 }, { addr = \"192.0.2.4\", weight = 4 } ]\n";
    let ts = Ts::start(&dir, services).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = query("w.example.org", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut counts = [0u64; 4];
    let mut buf = vec![0u8; 512];
    let n = 10_000;
    for _ in 0..n {
        sock.send_to(&q, ts.addr).await.unwrap();
        let (len, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let m = Message::from_vec(&buf[..len]).unwrap();
        let got = addrs(&m);
        assert_eq!(got.len(), 1, "pick = 1");
        counts[usize::from(got[0].octets()[3] - 1)] += 1;
    }
    let x2: f64 = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let expected = n as f64 * (i + 1) as f64 / 10.0;
            (c as f64 - expected).powi(2) / expected
        })
        .sum();
    // 3 degrees of freedom: 16.27 is the 0.999 quantile.
    assert!(x2 < 16.27, "chi-square {x2} for {counts:?}");
    ts.stop().await;
}
