//! Readiness told to the service manager, for `Type=notify` units
//! (deploy/*.service, sd_notify(3)): `READY=1` once the role answers, so
//! `systemctl start` returns when the deployment answers and a unit ordered
//! after it starts after that; `STOPPING=1` when its shutdown begins; a
//! `STATUS=` line with each. Nothing is sent without `$NOTIFY_SOCKET`. The
//! table servers `dnslb up` supervises never get the socket
//! ([`SOCKET_ENV`] is removed from their environment): the main process
//! speaks for the service, and tells it ready once its LS (or, without an
//! `[ls]`, its table servers) answers.
use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The variable that names the service manager's socket.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// The role answers: `READY=1`, with `status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The role's shutdown has begun: `STOPPING=1`.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: answering the queries in flight"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    let Some(socket) = std::env::var_os(SOCKET_ENV) else {
        return;
    };
    // An abstract socket (`@name`, sd_notify(3)) the crate does not reach.
    let sent = match socket.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(name, states),
        None => sd_notify::notify(states),
    };
    match sent {
        Ok(()) => debug!(?states, "told the service manager"),
        Err(err) => warn!(%err, "could not tell the service manager ({SOCKET_ENV})"),
    }
}

/// `states` as sd_notify(3) writes them (a line each) to the abstract Unix
/// socket `name`.
fn send_abstract(name: &[u8], states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.connect_addr(&addr)?;
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    sock.send(msg.as_bytes()).map(drop)
}
