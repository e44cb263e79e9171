//! PowerDNS Authoritative (`pdns_server` 4.7) as a peer of the
//! service-answer tests: the bind backend serving a zone with an
//! `ifportup` LUA record (`enable-lua-records`), on an address the test picks.
//!
//! `pdns_server` runs in the foreground (no daemon, no guardian) with its
//! config, `named.conf`, zone and control socket in a temporary folder; the
//! [`Proc`] stops it by PID when dropped. Its packet and query caches are
//! off (an answer shows the health checks' state at once) and its security
//! poll is off (no query leaves the machine).
use std::net::SocketAddr;
use std::process::Command;

use crate::kit::{FollowedName, ZoneServer};

/// A `pdns_server` serving `zone` with one `ifportup` name.
pub type Pdns = ZoneServer;

impl ZoneServer {
    /// PowerDNS on `listen`, authoritative for `name.zone`, where
    /// `name.label` is `LUA A "ifportup(port, {endpoints}, {selector='all',
    /// timeout=1})"`: every endpoint a TCP connect reaches, checked every
    /// `interval_s` seconds
    /// (`lua-health-checks-interval`; PowerDNS 4.7 has no fall or rise: one
    /// result turns an endpoint). Checks start with the first query for the
    /// name; until then every endpoint counts as down.
    pub fn ifportup(listen: SocketAddr, name: FollowedName, interval_s: u32) -> Pdns {
        let list: Vec<String> = name.endpoints.iter().map(|a| format!("'{a}'")).collect();
        let FollowedName {
            zone, label, port, ..
        } = name;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let zone_file = d.join(format!("{zone}.zone"));
        let zone_text = format!(
            "$ORIGIN {zone}.\n\
             @ 300 IN SOA ns1 hostmaster 1 7200 1800 259200 900\n\
             @ 300 IN NS ns1\n\
             ns1 300 IN A 127.0.0.1\n\
             {label} 30 IN LUA A \"ifportup({port}, {{{}}}, {{selector='all', timeout=1}})\"\n",
            list.join(", ")
        );
        std::fs::write(&zone_file, zone_text).unwrap();
        let named = format!(
            "options {{ directory \"{dir}\"; }};\n\
             zone \"{zone}\" {{ type master; file \"{file}\"; }};\n",
            dir = d.display(),
            file = zone_file.display()
        );
        std::fs::write(d.join("named.conf"), named).unwrap();
        let conf = format!(
            "launch=bind\n\
             bind-config={named}\n\
             local-address={ip}\n\
             local-port={port}\n\
             socket-dir={dir}\n\
             enable-lua-records=yes\n\
             lua-health-checks-interval={interval}\n\
             cache-ttl=0\n\
             query-cache-ttl=0\n\
             negquery-cache-ttl=0\n\
             security-poll-suffix=\n\
             daemon=no\n\
             guardian=no\n\
             disable-syslog=yes\n\
             write-pid=no\n\
             loglevel=6\n",
            named = d.join("named.conf").display(),
            ip = listen.ip(),
            port = listen.port(),
            dir = d.display(),
            interval = interval_s.max(1),
        );
        std::fs::write(d.join("pdns.conf"), conf).unwrap();
        let mut cmd = Command::new("pdns_server");
        cmd.arg(format!("--config-dir={}", d.display()));
        ZoneServer::spawn("pdns_server", cmd, (listen, zone), dir)
    }
}
