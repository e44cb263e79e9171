//! Encrypted hops to a backend (`transport = "tls" | "quic"` in
//! `[[ls.backend]]`): a backend's [`SecureLink`], through which its client
//! queries (on the async path) and its health probes go instead of UDP.
//! The upstream layer picks the backend (hedging, order, failover,
//! timeouts, `on_timeout` as for UDP); the link only changes how the query
//! travels.
//!
//! - `tls`: DNS over TLS ([`tls`]): the TCP pool's pipelined, reused
//!   connections (a few per backend, a bounded number of queries in flight
//!   on each, answers matched by ID), opened with a TLS handshake (ALPN
//!   `dot`, session resumption on).
//! - `quic`: DNS over QUIC ([`quic`]): a few connections, a stream a query.
//!
//! A full link is a full backend ([`room`]): a query that finds no place
//! on it now is refused at once ([`UpstreamError::Full`]), and the upstream
//! layer goes on to the next backend (else SERVFAIL), as for a UDP backend
//! past its limit; nothing queues inside the LS until the deadline. The
//! health probes go over a connection of their own ([`SecureLink::probe`]),
//! never behind the clients' queries.
//!
//! The certificate is checked against the roots of `ca` for `tls_name`
//! (else the IP of `addr`). A failed connection (certificate refused: its
//! reason; handshake; connect) is counted by reason on the link's
//! [`Guard`], logged once until a handshake succeeds again, and further
//! connections wait out a back-off ([`policy::Redial`]); the backend's
//! probes fail meanwhile, so it is down until a handshake succeeds.
use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::accept::DropCounters;
use super::error::UpstreamError;
use super::tcp::TcpConns;
use crate::config::{BackendConfig, BackendTransport, load_roots, server_name};

mod guard;
pub mod policy;
mod quic;
pub mod room;
mod tls;

pub use guard::Guard;
pub use policy::FailReason;

/// How one backend is reached encrypted; see the module docs.
pub struct SecureLink {
    /// `tls` or `quic`.
    pub transport: BackendTransport,
    /// Its failures.
    pub guard: Arc<Guard>,
    /// The keys it was made from (a reload that changes them makes a new one).
    keys: (BackendTransport, Option<String>, Option<PathBuf>),
    way: Way,
}

/// A link's connections: the clients' (capped: [`room`]) and the probes'.
enum Way {
    Tls {
        clients: Box<TcpConns>,
        probes: Box<TcpConns>,
    },
    Quic {
        clients: Box<quic::QuicLink>,
        probes: Box<quic::QuicLink>,
    },
    /// Its roots could not be read (the file changed since the check).
    Broken(String),
}

impl std::fmt::Debug for SecureLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureLink")
            .field("transport", &self.transport)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The rustls client config of a link: `c`'s roots, its verifier noting
/// refusals on `guard`, ALPN `alpn`; TLS 1.3 only for QUIC.
fn client_config(
    c: &BackendConfig,
    guard: &Arc<Guard>,
    alpn: &[u8],
    tls13_only: bool,
) -> Result<rustls::ClientConfig, String> {
    let ca = c.ca.as_deref().ok_or("no ca")?;
    let roots = load_roots(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let verifier = guard::Recording {
        inner,
        guard: guard.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

impl SecureLink {
    /// The link of backend `c`, or `None` for a UDP backend. Connections
    /// are opened on first use.
    pub fn of(c: &BackendConfig) -> Option<Arc<Self>> {
        let transport = c.transport;
        let guard = Arc::new(Guard::new(&c.name, c.addr, transport.as_str()));
        let way = match transport {
            BackendTransport::Udp => return None,
            BackendTransport::Tls => Self::tls(c, &guard),
            BackendTransport::Quic => Self::quic(c, &guard),
        };
        let way = way.unwrap_or_else(|msg| {
            tracing::error!(backend = %c.name, %msg, "cannot set up the backend's encrypted link: it stays down");
            Way::Broken(msg)
        });
        Some(Arc::new(SecureLink {
            transport,
            guard,
            keys: Self::keys_of(c),
            way,
        }))
    }

    fn keys_of(c: &BackendConfig) -> (BackendTransport, Option<String>, Option<PathBuf>) {
        (c.transport, c.tls_name.clone(), c.ca.clone())
    }

    fn tls(c: &BackendConfig, guard: &Arc<Guard>) -> Result<Way, String> {
        let config = client_config(c, guard, b"dot", false)?;
        let dial = Arc::new(tls::TlsDial {
            connector: TlsConnector::from(Arc::new(config)),
            name: server_name(c.tls_name.as_deref(), c.addr)?,
            guard: guard.clone(),
        });
        let drops = Arc::new(DropCounters::default());
        Ok(Way::Tls {
            clients: Box::new(TcpConns::capped(
                drops.clone(),
                dial.clone(),
                room::DOT_DEPTH,
            )),
            probes: Box::new(TcpConns::with_dial(drops, dial)),
        })
    }

    fn quic(c: &BackendConfig, guard: &Arc<Guard>) -> Result<Way, String> {
        let config = client_config(c, guard, b"doq", true)?;
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| e.to_string())?;
        let name = match server_name(c.tls_name.as_deref(), c.addr)? {
            rustls_pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(ip).to_string(),
            other => other.to_str().into_owned(),
        };
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        // No address-validation token (NEW_TOKEN) is kept for the next
        // connection: Knot 3.2's XDP DoQ server never answers an Initial
        // carrying the token it gave, so the clients' connection opened after
        // the probes' (or any reopened after an idle close) lost its first
        // query. A token only spares the round trip of a server's Retry.
        config.token_store(Arc::new(quinn::NoneTokenStore));
        let link = |max| {
            let link =
                quic::QuicLink::new((c.addr, name.clone()), config.clone(), guard.clone(), max);
            Box::new(link)
        };
        Ok(Way::Quic {
            clients: link(room::LINK_CONNS),
            probes: link(1),
        })
    }

    /// Whether it was made from `c`'s keys (a reload keeps it then).
    pub fn made_from(&self, c: &BackendConfig) -> bool {
        self.keys == Self::keys_of(c)
    }

    /// Asks `query` (its ID replaced) of the backend at `addr` and waits
    /// until `deadline` for the answer to `question` (the question
    /// section).
    ///
    /// # Errors
    /// [`UpstreamError`]: timeout, no connection, the link full
    /// ([`UpstreamError::Full`], at once), or an unusable answer.
    pub async fn exchange(
        &self,
        addr: std::net::SocketAddr,
        query: &[u8],
        question: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.ask(false, addr, (query, question), deadline).await
    }

    /// [`Self::exchange`] for a health probe: over the link's connection
    /// for probes, never behind the clients' queries.
    ///
    /// # Errors
    /// As [`Self::exchange`].
    pub async fn probe(
        &self,
        addr: std::net::SocketAddr,
        query: &[u8],
        question: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.ask(true, addr, (query, question), deadline).await
    }

    async fn ask(
        &self,
        probe: bool,
        addr: std::net::SocketAddr,
        (query, question): (&[u8], &[u8]),
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        match &self.way {
            Way::Tls { clients, probes } => {
                let pool = if probe { probes } else { clients };
                pool.exchange(addr, query, question, deadline).await
            }
            Way::Quic { clients, probes } => {
                let q = if probe { probes } else { clients };
                timeout_at(deadline, q.exchange(query, question))
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
            }
            Way::Broken(msg) => Err(UpstreamError::Io(std::io::Error::other(msg.clone()))),
        }
    }
}
