//! Who may send a PROXY protocol v2 header (`proxy_from`), and what a
//! server does with a datagram or a connection's first bytes: from a
//! listed sender the header is required and its client taken as the
//! request's source; from anyone else a header is refused. Every header
//! taken or refused is counted. Answers still go to the sender.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;

use crate::dns::proxy_v2::{self, SIGNATURE};

/// The senders whose header is believed, and the headers counted.
#[derive(Debug, Default)]
pub struct ProxyGate {
    from: Vec<IpNet>,
    /// Headers taken (their client used).
    pub accepted: AtomicU64,
    /// Datagrams dropped and connections closed for their header: a
    /// header from a sender not listed, or a listed sender's missing or
    /// malformed one.
    pub refused: AtomicU64,
}

/// What to do with a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    /// Not enough bytes yet to tell.
    More,
    /// A header of this many bytes, speaking for this client: skip it.
    Header(usize, SocketAddr),
    /// No header, none expected: DNS frames from the start.
    Plain,
    /// Close the connection.
    Refuse,
}

impl ProxyGate {
    /// A gate believing the senders in `from`; `None` when it lists none
    /// (nothing is looked for then).
    #[must_use]
    pub fn new(from: &[IpNet]) -> Option<Self> {
        (!from.is_empty()).then(|| ProxyGate {
            from: from.to_vec(),
            ..ProxyGate::default()
        })
    }

    /// Whether a header from `ip` is believed.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.from.iter().any(|n| n.contains(&ip))
    }

    fn count(&self, accepted: bool) {
        let c = if accepted {
            &self.accepted
        } else {
            &self.refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The DNS message of the datagram `raw` from `sender`, and the client
    /// it is from; `None`: dropped (counted).
    pub fn datagram<'a>(
        &self,
        raw: &'a [u8],
        sender: SocketAddr,
    ) -> Option<(&'a [u8], SocketAddr)> {
        if self.trusts(sender.ip()) {
            let parsed = proxy_v2::parse_datagram(raw);
            self.count(parsed.is_ok());
            let (header, rest) = parsed.ok()?;
            Some((rest, header.client_or(sender)))
        } else if raw.starts_with(&SIGNATURE) {
            self.count(false);
            None
        } else {
            Some((raw, sender))
        }
    }

    /// What to do with the first bytes `buf` of a connection from
    /// `sender` (counted once it is decided).
    pub fn stream_start(&self, buf: &[u8], sender: SocketAddr) -> StreamStart {
        if self.trusts(sender.ip()) {
            match proxy_v2::parse(buf) {
                Ok(None) => StreamStart::More,
                Ok(Some((header, len))) => {
                    self.count(true);
                    StreamStart::Header(len, header.client_or(sender))
                }
                Err(_) => {
                    self.count(false);
                    StreamStart::Refuse
                }
            }
        } else if buf.is_empty() || (buf.len() < SIGNATURE.len() && proxy_v2::looks_proxied(buf)) {
            StreamStart::More
        } else if buf.starts_with(&SIGNATURE) {
            self.count(false);
            StreamStart::Refuse
        } else {
            StreamStart::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::proxy_v2::Built;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn gate() -> ProxyGate {
        ProxyGate::new(&["10.0.0.0/8".parse().unwrap()]).unwrap()
    }

    fn counts(g: &ProxyGate) -> (u64, u64) {
        (
            g.accepted.load(Ordering::Relaxed),
            g.refused.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn a_listed_sender_must_send_a_header_and_its_client_is_taken() {
        let g = gate();
        let lb = addr("10.1.2.3:999");
        let client = addr("192.0.2.9:4000");
        let mut d = Built::proxy(client, addr("10.0.0.53:53"), false)
            .as_bytes()
            .to_vec();
        d.extend_from_slice(b"query");
        assert_eq!(g.datagram(&d, lb), Some((&b"query"[..], client)));
        assert_eq!(g.datagram(b"query-without-header", lb), None);
        assert_eq!(g.datagram(&d[..20], lb), None, "truncated");
        let local = Built::local();
        assert_eq!(g.datagram(local.as_bytes(), lb), Some((&b""[..], lb)));
        assert_eq!(counts(&g), (2, 2));
    }

    #[test]
    fn a_header_from_anyone_else_is_refused_and_plain_queries_pass() {
        let g = gate();
        let other = addr("192.0.2.1:5");
        let d = Built::proxy(addr("198.51.100.1:1"), addr("10.0.0.53:53"), false);
        assert_eq!(g.datagram(d.as_bytes(), other), None);
        assert_eq!(
            g.datagram(b"plain-query!", other),
            Some((&b"plain-query!"[..], other))
        );
        assert_eq!(g.stream_start(d.as_bytes(), other), StreamStart::Refuse);
        assert_eq!(g.stream_start(&d.as_bytes()[..5], other), StreamStart::More);
        assert_eq!(
            g.stream_start(b"", other),
            StreamStart::More,
            "nothing read yet"
        );
        assert_eq!(g.stream_start(b"\x00\x1d", other), StreamStart::Plain);
        assert_eq!(counts(&g), (0, 2));
        assert!(g.trusts("::ffff:10.0.0.1".parse().unwrap()), "v4-mapped");
    }

    #[test]
    fn a_connection_from_a_listed_sender_waits_for_its_whole_header() {
        let g = gate();
        let lb = addr("10.1.2.3:999");
        let client = addr("[2001:db8::1]:4000");
        let h = Built::proxy(client, addr("[2001:db8::53]:53"), true);
        let b = h.as_bytes();
        assert_eq!(g.stream_start(&b[..b.len() - 1], lb), StreamStart::More);
        assert_eq!(g.stream_start(b, lb), StreamStart::Header(b.len(), client));
        assert_eq!(g.stream_start(b"\x00\x1dabc", lb), StreamStart::Refuse);
        assert_eq!(counts(&g), (1, 1));
        assert!(ProxyGate::new(&[]).is_none());
    }
}
