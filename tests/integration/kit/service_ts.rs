//! A TS with `[[ts.service]]`s run in the test process as `dnslb ts` runs it
//! (`TsRole`: its endpoint checker started with it), serving one small
//! zone ([`ServiceTs`]): `service_answers` and `service_peers` start theirs here.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use dnslb::config::Config;
use dnslb::roles::ts::{TsRole, TsRun};
use dnslb::roles::{Control, Controls, RoleError};
use dnslb::ts::TsSettings;

use super::client::{query, udp_raw_from};
use super::servers::ZoneDir;

/// A TS run in a task, with its address.
pub struct ServiceTs {
    pub addr: SocketAddr,
    controls: tokio::sync::mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<Result<(), RoleError>>,
    pub table: std::sync::Arc<dnslb::ts::TableServer>,
}

impl ServiceTs {
    /// Starts a TS on 127.0.0.1:0 (UDP and TCP) serving zone `origin` (an
    /// SOA, `NS ns`, `ns A 192.0.2.53`) with the `[[ts.service]]` tables
    /// `services` (TOML text).
    pub async fn start(dir: &ZoneDir, origin: &str, services: &str) -> ServiceTs {
        let zone = format!(
            "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n"
        );
        ServiceTs::start_in(dir, origin, &zone, "", services).await
    }

    /// Starts a TS serving `zone` (master-file text) as zone `origin`,
    /// `ts` more lines in its `[[ts]]` (e.g. `dnssec`), with the
    /// `[[ts.service]]` tables `services`.
    pub async fn start_in(
        dir: &ZoneDir,
        origin: &str,
        zone: &str,
        ts: &str,
        services: &str,
    ) -> ServiceTs {
        let zone = dir.write(&format!("{origin}.zone"), zone);
        let text = format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\naxfr_allow = [\"127.0.0.0/8\"]\n{ts}{services}",
            zone.display().to_string()
        );
        let cfg = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
        let run = TsRun {
            settings: TsSettings::from_config(&cfg.ts[0]),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            metrics: None,
            workers: 1,
            dnstap: None,
            xdp: Vec::new(),
        };
        let service = TsRole::start(run).await.expect("the TS starts");
        let addr = service.local_addrs()[0];
        let table = service.table().clone();
        let (controls, rx) = Controls::channel();
        let task = tokio::spawn(service.serve(rx));
        ServiceTs {
            addr,
            controls,
            task,
            table,
        }
    }

    /// Its address, its controls (kept open: a closed channel may stop it)
    /// and its task, for a test that aborts the task.
    pub fn into_parts(
        self,
    ) -> (
        SocketAddr,
        tokio::sync::mpsc::UnboundedSender<Control>,
        tokio::task::JoinHandle<Result<(), RoleError>>,
    ) {
        (self.addr, self.controls, self.task)
    }

    /// Shuts it down and waits for a clean stop.
    pub async fn stop(self) {
        let _ = self.controls.send(Control::Shutdown);
        let end = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        end.expect("the TS stopped").unwrap().expect("a clean stop");
    }

    /// The answer to `name qtype` asked from `src`.
    pub async fn ask_from(&self, src: IpAddr, name: &str, qtype: RecordType) -> Message {
        let q = query(name, qtype, None).to_vec().unwrap();
        let raw = udp_raw_from(src, self.addr, &q, Duration::from_secs(2))
            .await
            .expect("an answer");
        Message::from_vec(&raw).unwrap()
    }

    /// The answer to `name qtype` asked from 127.0.0.1.
    pub async fn ask(&self, name: &str, qtype: RecordType) -> Message {
        self.ask_from(Ipv4Addr::LOCALHOST.into(), name, qtype).await
    }
}
