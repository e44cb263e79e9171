//! gdnsd 3.8 as a peer of the service-answer tests: a name
//! answered by the `multifo` plugin (every address not DOWN) over
//! `tcp_connect` monitors, on an address the test picks.
//!
//! gdnsd runs in the foreground (`gdnsd -c DIR start`) with its config,
//! zone, run and state folders in a temporary folder (checked by
//! `gdnsd checkconf` first); the [`Proc`] stops it by PID when dropped.
use std::net::SocketAddr;
use std::process::Command;

use crate::kit::{FollowedName, ZoneServer, assert_config_accepted};

/// How gdnsd's `tcp_connect` monitor checks each endpoint. gdnsd counts in
/// whole seconds: `interval_s` at least 2 (its timeout, 1 s at least, must
/// be below the interval).
#[derive(Debug, Clone, Copy)]
pub struct GdnsdChecks {
    /// `interval` (s); `timeout` is 1 s.
    pub interval_s: u32,
    /// `down_thresh`: failures that take an UP endpoint DOWN (`ok_thresh`
    /// is 1: one success resets the count, so these are failures in a row).
    pub fall: u32,
    /// `up_thresh`: successes in a row that bring a DOWN endpoint UP.
    pub rise: u32,
}

/// A gdnsd serving `zone` with one `multifo` name.
pub type Gdnsd = ZoneServer;

impl ZoneServer {
    /// gdnsd on `listen` (UDP and TCP), authoritative for `name.zone`,
    /// where `name.label` answers the endpoints that are not DOWN by
    /// `tcp_connect` (`up_thresh` 0.3: fewer than a third up answers all
    /// of them, fail-open).
    pub fn multifo_tcp(listen: SocketAddr, name: FollowedName, checks: GdnsdChecks) -> Gdnsd {
        let FollowedName {
            zone,
            label,
            endpoints,
            port,
        } = name;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("zones")).unwrap();
        let addrs: String = endpoints
            .iter()
            .enumerate()
            .map(|(i, a)| format!("      e{i} => {a}\n"))
            .collect();
        let config = format!(
            "options => {{\n\
             \x20 listen => [ {listen} ]\n\
             \x20 run_dir => {run}\n\
             \x20 state_dir => {state}\n\
             \x20 zones_default_ttl => 30\n\
             }}\n\
             service_types => {{\n\
             \x20 tcpchk => {{\n\
             \x20   plugin => tcp_connect\n\
             \x20   port => {port}\n\
             \x20   up_thresh => {rise}\n\
             \x20   ok_thresh => 1\n\
             \x20   down_thresh => {fall}\n\
             \x20   interval => {interval}\n\
             \x20   timeout => 1\n\
             \x20 }}\n\
             }}\n\
             plugins => {{\n\
             \x20 multifo => {{\n\
             \x20   service_types => tcpchk\n\
             \x20   up_thresh => 0.3\n\
             \x20   {label} => {{\n\
             {addrs}\
             \x20   }}\n\
             \x20 }}\n\
             }}\n",
            run = d.join("run").display(),
            state = d.join("state").display(),
            rise = checks.rise,
            fall = checks.fall,
            interval = checks.interval_s.max(2),
        );
        std::fs::write(d.join("config"), &config).unwrap();
        let zone_text = format!(
            "@ 300 SOA ns1 hostmaster 1 7200 1800 259200 900\n\
             @ 300 NS ns1\n\
             ns1 300 A 127.0.0.1\n\
             {label} 30 DYNA multifo!{label}\n"
        );
        std::fs::write(d.join("zones").join(zone), &zone_text).unwrap();

        let mut check = Command::new("gdnsd");
        check.arg("-c").arg(d).arg("checkconf");
        assert_config_accepted(check, "gdnsd config", &config);

        let mut cmd = Command::new("gdnsd");
        cmd.arg("-c").arg(d).arg("start");
        ZoneServer::spawn("gdnsd", cmd, (listen, zone), dir)
    }
}
