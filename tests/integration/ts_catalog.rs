//! A TS consuming a catalog zone (`catalog_from`, RFC 9432 v2; docs/CONFIG.md
//! (the TS) `catalog_from`): a dnslb TS publishing `catalog = "cat.test."`
//! is the primary; the consumer serves each member as a secondary zone of
//! that primary, adds the zones the catalog gains, and stops serving (and
//! deletes the copy of) the zones it loses.
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::xfr::TsProc;
use crate::kit::{self, ZoneDir, free_port};

/// How long a change of the catalog may take to reach the consumer
/// (NOTIFY at the primary's start, a transfer of the catalog, one of each
/// member): generous for a loaded machine.
const FOLLOW: Duration = Duration::from_secs(20);

/// A small zone `name` with one TXT record naming it.
fn zone(name: &str) -> String {
    format!(
        "$ORIGIN {name}.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 1 3600 600 604800 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n\
         info IN TXT \"zone {name}\"\n"
    )
}

/// The primary's config: `zones` on `port`, publishing cat.test.,
/// NOTIFYing the consumer on `notify`.
fn primary_config(port: u16, zones: &[&str], notify: u16) -> String {
    let files: Vec<String> = zones.iter().map(|z| format!("\"{z}.zone\"")).collect();
    format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{port}\"\n\
         zones = [{}]\ncatalog = \"cat.test.\"\n\
         axfr_allow = [\"127.0.0.0/8\"]\nnotify = [\"127.0.0.1:{notify}\"]\nworkers = 1\n",
        files.join(", ")
    )
}

/// The consumer's config: nothing but the catalog of `primary`.
fn consumer_config(dir: &Path, port: u16, primary: u16) -> String {
    format!(
        "[[ts]]\nname = \"consumer\"\nlisten = \"127.0.0.1:{port}\"\nzones = []\n\
         catalog_from = {{ name = \"cat.test.\", primary = \"127.0.0.1:{primary}\" }}\n\
         axfr_allow = [\"127.0.0.0/8\"]\nstate_dir = \"{}\"\nworkers = 1\n",
        dir.join("state").display()
    )
}

/// Asks `name TXT` of the consumer until `done` (panics after [`FOLLOW`]).
async fn until(ts: &TsProc, name: &str, done: impl Fn(&Message) -> bool) -> Message {
    kit::wait_for(ts.addr, name, RecordType::TXT, false, FOLLOW, &mut [], done).await
}

fn served(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
}

#[tokio::test]
async fn a_ts_serves_the_members_of_a_catalog_as_they_come_and_go() {
    let (pport, cport) = (free_port(), free_port());
    let pdir = ZoneDir::new();
    for z in ["a.test", "b.test", "c.test"] {
        pdir.write(&format!("{z}.zone"), &zone(z));
    }
    let mut primary = TsProc::spawn(
        pdir.path(),
        "primary",
        pport,
        &primary_config(pport, &["a.test", "b.test"], cport),
    );
    primary.wait_serving("cat.test.").await;
    let cdir = ZoneDir::new();
    let consumer = TsProc::spawn(
        cdir.path(),
        "consumer",
        cport,
        &consumer_config(cdir.path(), cport, pport),
    );
    for z in ["a.test", "b.test"] {
        let m = until(&consumer, &format!("info.{z}."), served).await;
        assert!(
            m.answers[0].data.to_string().contains(z),
            "{}",
            kit::show(&m)
        );
    }
    let state = cdir.path().join("state");
    assert!(
        state.join("b.test.xfr").exists(),
        "the member's copy is kept"
    );

    // The primary restarted with b.test. gone and c.test. added: its
    // catalog's serial rises and it NOTIFYs the consumer at start.
    drop(primary);
    let mut primary = TsProc::spawn(
        pdir.path(),
        "primary",
        pport,
        &primary_config(pport, &["a.test", "c.test"], cport),
    );
    primary.wait_serving("c.test.").await;
    let c = until(&consumer, "info.c.test.", served).await;
    assert!(c.answers[0].data.to_string().contains("c.test"));
    let b = until(&consumer, "info.b.test.", |m| {
        m.metadata.response_code == ResponseCode::Refused
    })
    .await;
    assert!(b.answers.is_empty());
    assert!(
        !state.join("b.test.xfr").exists(),
        "the copy of a member gone is deleted"
    );
    let a = kit::ask(
        consumer.addr,
        "info.a.test.",
        RecordType::TXT,
        false,
        Duration::from_secs(2),
    )
    .await;
    assert!(
        a.is_some_and(|m| served(&m)),
        "a member kept is still served"
    );
    let log = consumer.stderr_now();
    assert!(log.contains("catalog member removed"), "{log}");
}
