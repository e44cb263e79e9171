//! The server of `dnslb resolve -s`: [`ServerSpec`], an address or a host
//! name, with port 53 unless one is given.
//!
//! Accepted forms: `IP`, `IP:port`, `[v6]`, `[v6]:port`, `host`, `host:port`
//! (a bare IPv6 address has no port; give one in brackets). A host name is
//! looked up with the system resolver (`/etc/hosts`, then DNS) when the run
//! starts; of its addresses the first IPv4 one is used, else the first, since
//! a deployment's LS listens on IPv4 by default (`localhost:5300` must reach
//! `127.0.0.1:5300`, even where `localhost` also names `::1`).
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The DNS port, used when `-s` names none.
pub const DNS_PORT: u16 = 53;

/// Longest wait for the system resolver to look the server's name up.
const LOOKUP_LIMIT: Duration = Duration::from_secs(10);

/// The server to ask, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    /// An address (port 53 when none was given).
    Addr(SocketAddr),
    /// A host name to look up, and the port.
    Host {
        /// The name, as given.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A `-s` value that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServerSpecError(String);

/// The server's name could not be looked up.
#[derive(Debug, thiserror::Error)]
#[error("cannot look up the server {host:?}: {why}")]
pub struct ServerLookupError {
    /// The name, as given.
    pub host: String,
    /// What went wrong.
    pub why: String,
}

impl From<SocketAddr> for ServerSpec {
    fn from(addr: SocketAddr) -> Self {
        ServerSpec::Addr(addr)
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerSpec::Addr(a) => write!(f, "{a}"),
            ServerSpec::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

fn port_zero() -> ServerSpecError {
    ServerSpecError("port 0 is not a port to send to".into())
}

fn parse_port(text: &str) -> Result<u16, ServerSpecError> {
    match text.parse::<u16>() {
        Ok(0) => Err(port_zero()),
        Ok(p) => Ok(p),
        Err(_) => Err(ServerSpecError(format!(
            "bad port '{text}': expected 1 to 65535"
        ))),
    }
}

impl FromStr for ServerSpec {
    type Err = ServerSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ServerSpecError("empty server address".into()));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(port_zero());
            }
            return Ok(ServerSpec::Addr(addr));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ServerSpec::Addr(SocketAddr::new(ip, DNS_PORT)));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| ServerSpecError(format!("'{s}': a '[' without its ']'")))?;
            let ip: Ipv6Addr = inside
                .parse()
                .map_err(|_| ServerSpecError(format!("'{inside}' is not an IPv6 address")))?;
            let port = match after {
                "" => DNS_PORT,
                _ => match after.strip_prefix(':') {
                    Some(p) => parse_port(p)?,
                    None => {
                        return Err(ServerSpecError(format!("'{s}': expected [IPv6]:port")));
                    }
                },
            };
            return Ok(ServerSpec::Addr(SocketAddr::new(IpAddr::V6(ip), port)));
        }
        let (host, port) = s.rsplit_once(':').unwrap_or((s, ""));
        if host.contains(':') {
            return Err(ServerSpecError(format!(
                "'{s}': an IPv6 address with a port goes in brackets, e.g. [::1]:5300"
            )));
        }
        let port = match s.contains(':') {
            true => parse_port(port)?,
            false => DNS_PORT,
        };
        super::input::query_name(host).map_err(|why| {
            ServerSpecError(format!("'{host}' is not an address or a host name: {why}"))
        })?;
        Ok(ServerSpec::Host {
            host: host.to_owned(),
            port,
        })
    }
}

impl ServerSpec {
    /// The address to send queries to: the address given, or the host name
    /// looked up with the system resolver (the first IPv4 address, else the
    /// first one).
    ///
    /// # Errors
    /// The name is not found, has no address, or the lookup takes longer
    /// than 10 s.
    pub async fn socket_addr(&self) -> Result<SocketAddr, ServerLookupError> {
        let (host, port) = match self {
            ServerSpec::Addr(a) => return Ok(*a),
            ServerSpec::Host { host, port } => (host, *port),
        };
        let failed = |why: String| ServerLookupError {
            host: host.clone(),
            why,
        };
        let found =
            tokio::time::timeout(LOOKUP_LIMIT, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| failed(format!("no answer within {} s", LOOKUP_LIMIT.as_secs())))?
                .map_err(|e| failed(e.to_string()))?;
        pick(found).ok_or_else(|| failed("it has no address".into()))
    }
}

/// The first IPv4 address of `addrs`, else the first one.
fn pick(addrs: impl IntoIterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let mut first = None;
    for a in addrs {
        if a.is_ipv4() {
            return Some(a);
        }
        first = first.or(Some(a));
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ServerSpec {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> ServerSpec {
        ServerSpec::Addr(s.parse().unwrap())
    }

    fn host(h: &str, port: u16) -> ServerSpec {
        ServerSpec::Host {
            host: h.into(),
            port,
        }
    }

    #[test]
    fn every_accepted_form_parses() {
        assert_eq!(ok("127.0.0.1"), addr("127.0.0.1:53"));
        assert_eq!(ok("127.0.0.1:5300"), addr("127.0.0.1:5300"));
        assert_eq!(ok("::1"), addr("[::1]:53"));
        assert_eq!(ok("[::1]"), addr("[::1]:53"));
        assert_eq!(ok("[2001:db8::1]:5300"), addr("[2001:db8::1]:5300"));
        assert_eq!(ok("localhost"), host("localhost", 53));
        assert_eq!(ok("localhost:5300"), host("localhost", 5300));
        assert_eq!(ok("ns1.example.com:53"), host("ns1.example.com", 53));
        assert_eq!(ok("Ns1.Example.COM."), host("Ns1.Example.COM.", 53));
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        let err = |s: &str| s.parse::<ServerSpec>().unwrap_err().to_string();
        assert_eq!(err(""), "empty server address");
        assert_eq!(err("127.0.0.1:"), "bad port '': expected 1 to 65535");
        assert_eq!(
            err("127.0.0.1:99999"),
            "bad port '99999': expected 1 to 65535"
        );
        assert_eq!(err("host:abc"), "bad port 'abc': expected 1 to 65535");
        assert_eq!(err("127.0.0.1:0"), "port 0 is not a port to send to");
        assert_eq!(err("[::1]:0"), "port 0 is not a port to send to");
        assert_eq!(err("[::1"), "'[::1': a '[' without its ']'");
        assert_eq!(err("[1.2.3.4]:53"), "'1.2.3.4' is not an IPv6 address");
        assert_eq!(err("[::1]53"), "'[::1]53': expected [IPv6]:port");
        assert!(err("2001:db8::1:zz").contains("goes in brackets"));
        assert!(err("bad host:53").starts_with("'bad host' is not an address or a host name"));
        assert!(err("a..b").contains("not an address or a host name"));
    }

    #[test]
    fn ipv4_is_preferred_among_the_addresses_found() {
        let v6: SocketAddr = "[::1]:53".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert_eq!(pick([v6, v4]), Some(v4));
        assert_eq!(pick([v6]), Some(v6));
        assert_eq!(pick([]), None);
    }

    #[tokio::test]
    async fn localhost_is_looked_up_and_an_address_is_used_as_given() {
        // `localhost` is in /etc/hosts: no DNS query leaves the machine.
        let a = ok("localhost:5300").socket_addr().await.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 5300, "{a}");
        let given = ok("127.0.0.9:53").socket_addr().await.unwrap();
        assert_eq!(given, "127.0.0.9:53".parse::<SocketAddr>().unwrap());
    }
}
