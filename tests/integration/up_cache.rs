//! `dnslb up` with `[ls.cache]`: a table edited and
//! reloaded by SIGHUP is served new at once through the LS, not from the
//! cache for the rest of its TTL: `up` makes each table server NOTIFY its
//! LS, which flushes the zone.
use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;

use crate::kit::{Proc, free_ports, local, ls_head_toml, path_str, wait_answers, write_up_pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_after_a_table_edit_is_seen_through_the_cached_ls_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let (pl, p1, p2) = (ports[0], ports[1], ports[2]);
    let ls = format!("{}[ls.cache]\n", ls_head_toml(pl, 2));
    let config = write_up_pair(dir.path(), &ls, p1, p2);
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], Path::new("/"));
    // Answered, and so cached (TTL 300).
    wait_answers(local(pl), "www.example.com.", "192.0.2.10", &mut [&mut up]).await;
    wait_answers(local(pl), "www.example.com.", "192.0.2.10", &mut [&mut up]).await;

    let table = dir.path().join("ts1.txt");
    let text = std::fs::read_to_string(&table).unwrap();
    let edited = dir.path().join("ts1.txt.new");
    std::fs::write(&edited, text.replace("192.0.2.10 ", "192.0.2.11 ")).unwrap();
    std::fs::rename(&edited, &table).unwrap();
    up.signal(Signal::HUP);
    // Within wait_answers' limit (10 s), far below the entry's 300 s.
    wait_answers(local(pl), "www.example.com.", "192.0.2.11", &mut [&mut up]).await;
    // The TS logs the LS's acknowledgement once it has it: maybe after the
    // LS has answered the new address, and read from the pipe later still.
    up.wait_line("notify acknowledged", Duration::from_secs(10))
        .await;
    up.signal(Signal::TERM);
    assert!(up.wait_exit(Duration::from_secs(10)).is_some(), "up stops");
}
