//! Session resumption and 0-RTT from the test's side: a quinn client that
//! keeps its session tickets, sends 0-RTT when it has one and counts the
//! certificates it was shown ([`ResumingClient`]: a resumed handshake shows
//! none), and a UDP relay between it and a server that can hold back the
//! client's half of the handshake ([`HandshakeRelay`]), so a test sees what
//! the server answers from 0-RTT data alone, before the handshake completes.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::UdpSocket;

use super::tls::AnyCert;

/// Any certificate taken (as [`AnyCert`]), each one shown counted.
#[derive(Debug, Default)]
struct CountingCert {
    shown: AtomicUsize,
}

impl ServerCertVerifier for CountingCert {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.shown.fetch_add(1, SeqCst);
        AnyCert.verify_server_cert(end, chain, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AnyCert.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AnyCert.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        AnyCert.supported_verify_schemes()
    }
}

/// A QUIC client on 127.0.0.1 offering one ALPN, keeping the session tickets
/// servers send it (rustls' memory cache, by server name) and allowed to send
/// 0-RTT with them.
pub struct ResumingClient {
    /// The client endpoint.
    pub ep: quinn::Endpoint,
    verifier: Arc<CountingCert>,
}

impl ResumingClient {
    /// A client offering `alpn` (`doq`, `h3`).
    pub fn new(alpn: &[u8]) -> ResumingClient {
        let verifier = Arc::new(CountingCert::default());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.enable_early_data = true;
        let crypto = QuicClientConfig::try_from(tls).unwrap();
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        ep.set_default_client_config(config);
        ResumingClient { ep, verifier }
    }

    /// How many certificates servers have shown it: one per full handshake,
    /// none for a resumed one.
    pub fn certificates_shown(&self) -> usize {
        self.verifier.shown.load(SeqCst)
    }

    /// A connection to `addr` as `dns.test`, its handshake done (a full one, or
    /// a resumed one when the client holds a ticket).
    pub async fn connect(&self, addr: SocketAddr) -> quinn::Connection {
        let connecting = self.ep.connect(addr, "dns.test").unwrap();
        tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .expect("handshake in time")
            .expect("handshake")
    }

    /// A connection to `addr` in 0-RTT: usable at once, before any answer from
    /// the server, with what says whether the server took the 0-RTT data.
    /// Panics when the client has no ticket for `dns.test` allowing it.
    pub fn connect_0rtt(&self, addr: SocketAddr) -> (quinn::Connection, quinn::ZeroRttAccepted) {
        let connecting = self.ep.connect(addr, "dns.test").unwrap();
        match connecting.into_0rtt() {
            Ok(pair) => pair,
            Err(_) => panic!("no ticket allowing 0-RTT"),
        }
    }
}

/// Whether a datagram from a QUIC client carries any Handshake or 1-RTT
/// packet (the client's Finished, or anything after its handshake), rather
/// than only Initial and 0-RTT packets (its first flight). Coalesced long
/// header packets are walked by their Length fields (RFC 9000 §17.2).
pub fn past_first_flight(d: &[u8]) -> bool {
    let mut p = d;
    while let Some(&first) = p.first() {
        if first & 0xc0 == 0x40 {
            return true; // a short header: 1-RTT
        }
        if first & 0x80 == 0 {
            return false; // no packet (the fixed bit unset): padding
        }
        let kind = (first >> 4) & 0x3;
        if kind == 2 {
            return true; // Handshake
        }
        let Some(next) = skip_long_packet(p, kind == 0) else {
            return true; // unreadable: let the test hold it
        };
        p = next;
    }
    false
}

/// What follows the long header packet at the start of `p` (an Initial when
/// `initial`: it has a token).
fn skip_long_packet(p: &[u8], initial: bool) -> Option<&[u8]> {
    let mut at = 5; // the first byte and the version
    for _ in 0..2 {
        let len = usize::from(*p.get(at)?); // a connection ID's length
        at += 1 + len;
    }
    if initial {
        let (token, n) = varint(p.get(at..)?)?;
        at += n + usize::try_from(token).ok()?;
    }
    let (length, n) = varint(p.get(at..)?)?;
    at += n + usize::try_from(length).ok()?;
    p.get(at..)
}

/// A QUIC variable-length integer and its size in bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = 1usize << (first >> 6);
    let bytes = b.get(..n)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, n))
}

/// A UDP relay between one QUIC client and `server`, at [`HandshakeRelay::addr`].
/// At first it passes the client's first flight (Initial and 0-RTT packets)
/// and holds everything else, both ways; [`HandshakeRelay::pass_server`] lets
/// the server's datagrams through, [`HandshakeRelay::release`] the client's
/// held ones and all after. So between the two the server has the client's
/// 0-RTT data but never its Finished: its handshake cannot complete.
pub struct HandshakeRelay {
    /// Where the client connects.
    pub addr: SocketAddr,
    state: Arc<RelayState>,
    task: tokio::task::JoinHandle<()>,
}

/// What the relay's task and the test share.
#[derive(Default)]
struct RelayState {
    server_passes: AtomicBool,
    client_released: AtomicBool,
    held_from_server: Mutex<Vec<Vec<u8>>>,
    held_from_client: Mutex<Vec<Vec<u8>>>,
    client: Mutex<Option<SocketAddr>>,
    wake: tokio::sync::Notify,
}

impl HandshakeRelay {
    /// A relay to `server` on 127.0.0.1.
    pub async fn start(server: SocketAddr) -> HandshakeRelay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let state = Arc::new(RelayState::default());
        let task = tokio::spawn(relay(front, back, state.clone()));
        HandshakeRelay { addr, state, task }
    }

    /// From now on the server's datagrams reach the client (those held first).
    pub fn pass_server(&self) {
        self.state.server_passes.store(true, SeqCst);
        self.state.wake.notify_one();
    }

    /// From now on every datagram of the client reaches the server (those
    /// held first): its handshake completes.
    pub fn release(&self) {
        self.state.client_released.store(true, SeqCst);
        self.state.wake.notify_one();
    }

    /// How many of the client's datagrams are held.
    pub fn held_from_client(&self) -> usize {
        self.state.held_from_client.lock().unwrap().len()
    }
}

impl Drop for HandshakeRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The relay's loop: each datagram passed or held, and what is held sent
/// once its side is let through.
async fn relay(front: Arc<UdpSocket>, back: UdpSocket, state: Arc<RelayState>) {
    let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    loop {
        tokio::select! {
            r = front.recv_from(&mut a) => {
                let Ok((n, from)) = r else { return };
                *state.client.lock().unwrap() = Some(from);
                let d = &a[..n];
                if state.client_released.load(SeqCst) || !past_first_flight(d) {
                    let _ = back.send(d).await;
                } else {
                    state.held_from_client.lock().unwrap().push(d.to_vec());
                }
            }
            r = back.recv(&mut b) => {
                let Ok(n) = r else { return };
                let client = *state.client.lock().unwrap();
                if state.server_passes.load(SeqCst) {
                    if let Some(to) = client {
                        let _ = front.send_to(&b[..n], to).await;
                    }
                } else {
                    state.held_from_server.lock().unwrap().push(b[..n].to_vec());
                }
            }
            () = state.wake.notified() => {}
        }
        let client = *state.client.lock().unwrap();
        if state.server_passes.load(SeqCst)
            && let Some(to) = client
        {
            let held = std::mem::take(&mut *state.held_from_server.lock().unwrap());
            for d in held {
                let _ = front.send_to(&d, to).await;
            }
        }
        if state.client_released.load(SeqCst) {
            let held = std::mem::take(&mut *state.held_from_client.lock().unwrap());
            for d in held {
                let _ = back.send(&d).await;
            }
        }
    }
}
