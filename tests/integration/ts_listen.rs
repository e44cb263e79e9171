//! A table server on several addresses (`listen` as a list in `[[ts]]`, or
//! `dnslb ts --listen` given more than once), as `dnslb ts` processes:
//! `dig` gets the answer over UDP and over TCP at each address.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::{
    PEER_READY_LIMIT, Proc, ZoneDir, dnslb_command, free_ports, need, or_skip, path_str, run,
    ts_command, wait_soa,
};

const TEST: &str = "ts_listen";
/// How long one `dig` may run.
const DIG_LIMIT: Duration = Duration::from_secs(10);

/// A second loopback address: `::1` where IPv6 is on, else 127.0.0.2.
fn second_ip() -> IpAddr {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if std::net::UdpSocket::bind((v6, 0)).is_ok() {
        v6
    } else {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
    }
}

/// Two addresses on two free ports: 127.0.0.1 and [`second_ip`].
fn two_addrs() -> [SocketAddr; 2] {
    let [p1, p2] = free_ports(2)[..] else {
        unreachable!()
    };
    [
        SocketAddr::from((Ipv4Addr::LOCALHOST, p1)),
        SocketAddr::from((second_ip(), p2)),
    ]
}

/// Waits until the TS answers the root SOA at the first of `addrs` (the
/// kit asks over IPv4): it binds every address before it answers at any.
async fn wait_all(addrs: &[SocketAddr], ts: &mut Proc) {
    wait_soa(addrs[0], ".", PEER_READY_LIMIT, &mut [ts], |m| {
        m.metadata.authoritative
    })
    .await;
}

/// `dig @addr www.example.com A +short` (over TCP with `tcp`): its answer.
fn dig(dig: &Path, addr: SocketAddr, tcp: bool) -> String {
    let mut cmd = Command::new(dig);
    let (at, port) = (format!("@{}", addr.ip()), addr.port().to_string());
    cmd.args([
        at.as_str(),
        "-p",
        port.as_str(),
        "+time=2",
        "+tries=1",
        "+short",
        if tcp { "+tcp" } else { "+notcp" },
        "www.example.com",
        "A",
    ]);
    let out = run("dig", cmd, None, DIG_LIMIT);
    assert!(out.status.success(), "dig {addr}: {}", out.stderr);
    out.stdout.trim().to_owned()
}

/// `dig` over UDP and TCP at each of `addrs` gets the table's address.
fn assert_answers_everywhere(dig_bin: &Path, addrs: &[SocketAddr]) {
    for &addr in addrs {
        for tcp in [false, true] {
            let how = if tcp { "TCP" } else { "UDP" };
            assert_eq!(dig(dig_bin, addr, tcp), "192.0.2.1", "{how} at {addr}");
        }
    }
}

#[tokio::test]
async fn a_ts_with_a_listen_list_answers_at_each_address_over_udp_and_tcp() {
    let [dig_bin] = or_skip!(need(TEST, ["dig"]));
    let dir = ZoneDir::new();
    dir.write("t.txt", "www.example.com 192.0.2.1 A\n");
    let addrs = two_addrs();
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = [\"{}\", \"{}\"]\nzones = [\"t.txt\"]\nworkers = 1\n",
        addrs[0], addrs[1]
    );
    let conf = dir.write("c.toml", &config);
    let cmd = dnslb_command(&["ts", "-c", path_str(&conf), "--name", "ts1"], dir.path());
    let mut ts = Proc::spawn("dnslb ts --name ts1", cmd);
    wait_all(&addrs, &mut ts).await;
    assert_answers_everywhere(&dig_bin, &addrs);

    // `dnslb check` takes the list.
    let check = dnslb_command(&["check", "-c", path_str(&conf)], dir.path());
    let out = run("dnslb check", check, None, DIG_LIMIT);
    assert!(out.status.success(), "dnslb check: {}", out.stderr);
    ts.stop(Duration::from_secs(10));
}

#[tokio::test]
async fn dnslb_ts_given_listen_twice_answers_at_both() {
    let [dig_bin] = or_skip!(need(TEST, ["dig"]));
    let dir = ZoneDir::new();
    let table = dir.write("t.txt", "www.example.com 192.0.2.1 A\n");
    let addrs = two_addrs();
    let second = addrs[1].to_string();
    let cmd = ts_command(&[], addrs[0].port(), &[&table], &["--listen", &second]);
    let mut ts = Proc::spawn("dnslb ts --listen x2", cmd);
    wait_all(&addrs, &mut ts).await;
    assert_answers_everywhere(&dig_bin, &addrs);
    ts.stop(Duration::from_secs(10));
}
