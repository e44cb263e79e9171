//! Readiness told to systemd (`Type=notify` in deploy/*.service): with
//! `$NOTIFY_SOCKET` naming a datagram socket (here the test's own, as
//! systemd's is), `dnslb up`, `dnslb ls` and `dnslb ts` send `READY=1` once
//! they answer (a query sent the moment it arrives is answered at once) and
//! `STOPPING=1` when SIGTERM begins the shutdown; the table servers `dnslb
//! up` supervises send nothing (only the main process speaks for the
//! service); without an `[ls]`, `dnslb up` is ready once its table servers
//! answer. An abstract socket (`@name`) is reached as a path is. Every
//! process is stopped by PID.
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit;
use crate::kit::{BIN, Proc, free_ports, ls_fixture, path_str};

/// A name the fixture table holds.
const NAME: &str = "www.example.com";
/// How long a role may take to start and say it is ready.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The service manager's side: a datagram socket in a folder of the test's,
/// or an abstract one (`$NOTIFY_SOCKET` `@name`).
struct Manager {
    sock: UnixDatagram,
    env: std::ffi::OsString,
}

impl Manager {
    fn new(dir: &Path) -> Manager {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Manager {
            sock,
            env: path.into_os_string(),
        }
    }

    fn abstract_named() -> Manager {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "dnslb-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        Manager {
            sock: UnixDatagram::bind_addr(&addr).unwrap(),
            env: format!("@{name}").into(),
        }
    }

    /// The next message, within `limit` (`None` after it).
    fn next(&self, limit: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// `dnslb ARGS` in `cwd` with `$NOTIFY_SOCKET` naming this socket.
    fn spawn(&self, name: &str, args: &[&str], cwd: &Path) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("NOTIFY_SOCKET", &self.env)
            .env_remove("RUST_LOG")
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
            .current_dir(cwd);
        Proc::spawn(name, cmd)
    }
}

/// `NAME A` asked once of `server`, waiting up to 2 s: whether it was
/// answered with data.
fn answered_once(server: SocketAddr) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let q = kit::query(NAME, RecordType::A, None);
    sock.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return false;
    };
    Message::from_vec(&buf[..n])
        .is_ok_and(|m| m.response_code == ResponseCode::NoError && !m.answers.is_empty())
}

/// Waits for `READY=1` (failing if the process exits first), then checks a
/// query is answered at once; the message.
fn ready_then_answers(m: &Manager, p: &mut Proc, server: SocketAddr) -> String {
    let msg = m.next(START_LIMIT).unwrap_or_else(|| {
        p.assert_running();
        panic!("no READY=1 within {START_LIMIT:?}: {}", p.stderr_now())
    });
    assert!(
        msg.lines().any(|l| l == "READY=1") && msg.contains("STATUS="),
        "{msg:?}"
    );
    assert!(
        answered_once(server),
        "READY=1 came before the answers: {}",
        p.stderr_now()
    );
    msg
}

/// SIGTERM to `p`: `STOPPING=1` comes, and nothing else after `READY=1`.
fn stops(m: &Manager, mut p: Proc) {
    p.signal(Signal::TERM);
    let msg = m.next(START_LIMIT).expect("STOPPING=1");
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
    let out = p.finish(Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(m.next(Duration::from_millis(300)), None, "more messages");
}

fn ts_section(name: &str, port: u16) -> String {
    let zone = ls_fixture("ts1.txt");
    format!(
        "\n[[ts]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"{}\"]\n",
        path_str(&zone)
    )
}

#[test]
fn up_says_ready_once_the_ls_answers_and_its_children_say_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let [l, t1, t2] = free_ports(3)[..] else {
        unreachable!()
    };
    let mut config = format!(
        "[ls]\nlisten = [\"127.0.0.1:{l}\"]\nworkers = 1\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{t1}\"\n\n\
         [[ls.backend]]\nname = \"ts2\"\naddr = \"127.0.0.1:{t2}\"\n"
    );
    config.push_str(&ts_section("ts1", t1));
    config.push_str(&ts_section("ts2", t2));
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let m = Manager::new(dir.path());
    let mut up = m.spawn("dnslb up", &["up", "-c", "config.toml"], dir.path());
    ready_then_answers(&m, &mut up, SocketAddr::from(([127, 0, 0, 1], l)));
    // One READY=1: the two table servers never had the socket.
    assert_eq!(m.next(Duration::from_millis(500)), None, "a second message");
    stops(&m, up);
}

#[test]
fn up_without_an_ls_says_ready_once_its_table_servers_answer() {
    let dir = tempfile::tempdir().unwrap();
    let [t1, t2] = free_ports(2)[..] else {
        unreachable!()
    };
    let config = format!("{}{}", ts_section("ts1", t1), ts_section("ts2", t2));
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let m = Manager::new(dir.path());
    let mut up = m.spawn("dnslb up", &["up", "-c", "config.toml"], dir.path());
    ready_then_answers(&m, &mut up, SocketAddr::from(([127, 0, 0, 1], t1)));
    assert!(answered_once(SocketAddr::from(([127, 0, 0, 1], t2))));
    assert_eq!(m.next(Duration::from_millis(500)), None, "a second message");
    stops(&m, up);
}

#[test]
fn ts_and_ls_alone_say_ready_once_they_answer_on_a_path_or_an_abstract_socket() {
    let dir = tempfile::tempdir().unwrap();
    let [l, t] = free_ports(2)[..] else {
        unreachable!()
    };
    std::fs::write(dir.path().join("config.toml"), ts_section("ts1", t)).unwrap();
    // The TS's manager has an abstract socket, the LS's one in a folder.
    let m = Manager::abstract_named();
    let mut ts = m.spawn(
        "dnslb ts",
        &["ts", "-c", "config.toml", "--name", "ts1"],
        dir.path(),
    );
    ready_then_answers(&m, &mut ts, SocketAddr::from(([127, 0, 0, 1], t)));
    let ls_dir = dir.path().join("ls");
    std::fs::create_dir(&ls_dir).unwrap();
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:{l}\"]\nworkers = 1\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{t}\"\n"
    );
    std::fs::write(ls_dir.join("config.toml"), config).unwrap();
    let lm = Manager::new(&ls_dir);
    let mut ls = lm.spawn("dnslb ls", &["ls", "-c", "config.toml"], &ls_dir);
    ready_then_answers(&lm, &mut ls, SocketAddr::from(([127, 0, 0, 1], l)));
    stops(&lm, ls);
    stops(&m, ts);
}

#[test]
fn up_without_an_ls_stopped_while_it_waits_never_says_ready() {
    let dir = tempfile::tempdir().unwrap();
    let [t1, t2] = free_ports(2)[..] else {
        unreachable!()
    };
    // The second table server's zone is large: it is paused (SIGSTOP) long
    // before it could answer, and never answers while `dnslb up` waits.
    let mut zone =
        String::from("$ORIGIN big.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..50_000 {
        zone.push_str(&format!("h{i} A 192.0.2.2\n"));
    }
    std::fs::write(dir.path().join("big.zone"), zone).unwrap();
    let config = format!(
        "{}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:{t2}\"\nzones = [\"big.zone\"]\n",
        ts_section("ts1", t1)
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let m = Manager::new(dir.path());
    let mut up = m.spawn("dnslb up", &["up", "-c", "config.toml"], dir.path());
    let pid = kit::poll_until(START_LIMIT, Duration::from_millis(5), || {
        up.assert_running();
        kit::pids_of(&up.stderr_now(), "ts2").first().copied()
    })
    .expect("ts2 started");
    let paused = kit::pause_pid(pid);
    // ts1 answers; ts2 never does: up waits, then is told to stop.
    let to = SocketAddr::from(([127, 0, 0, 1], t1));
    let ts1 = kit::poll_until(START_LIMIT, Duration::from_millis(50), || {
        answered_once(to).then_some(())
    });
    assert!(ts1.is_some(), "{}", up.stderr_now());
    up.signal(Signal::TERM);
    drop(paused);
    let msg = m.next(START_LIMIT).expect("a message");
    assert!(
        msg.lines().any(|l| l == "STOPPING=1") && !msg.contains("READY=1"),
        "{msg:?}: {}",
        up.stderr_now()
    );
    let out = up.finish(Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(m.next(Duration::from_millis(300)), None, "more messages");
}
