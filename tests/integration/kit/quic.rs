//! DNS over QUIC from the test's side: a raw quinn client offering ALPN
//! `doq` from a chosen source address ([`doq_endpoint`]), a query and
//! every message of its answer read to the stream's end ([`doq_exchange`]:
//! a zone transfer's too), and the Python that runs dnspython with aioquic
//! ([`dnspython`]).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;

use super::env::skip;
use super::tls::AnyCert;

/// How long a handshake, or a whole answer, may take.
const QUIC_WAIT: Duration = Duration::from_secs(10);

/// A QUIC client bound to `from` (port 0) offering ALPN `doq`, trusting
/// any certificate, with `transport` (quinn's defaults when `None`).
pub fn doq_endpoint(from: IpAddr, transport: Option<quinn::TransportConfig>) -> quinn::Endpoint {
    quic_endpoint(from, b"doq", transport)
}

/// A QUIC client on 127.0.0.1 offering ALPN `alpn` (`doq`, `h3`), trusting
/// any certificate, with quinn's transport defaults.
pub fn local_quic_client(alpn: &[u8]) -> quinn::Endpoint {
    quic_endpoint(IpAddr::from([127, 0, 0, 1]), alpn, None)
}

/// A QUIC client bound to `from` (port 0) offering ALPN `alpn`, trusting
/// any certificate, with `transport` (quinn's defaults when `None`).
fn quic_endpoint(
    from: IpAddr,
    alpn: &[u8],
    transport: Option<quinn::TransportConfig>,
) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    if let Some(t) = transport {
        config.transport_config(Arc::new(t));
    }
    let mut ep = quinn::Endpoint::client(SocketAddr::new(from, 0)).unwrap();
    ep.set_default_client_config(config);
    ep
}

/// A connection of `ep` to `addr`, its handshake done.
pub async fn doq_connect(ep: &quinn::Endpoint, addr: SocketAddr) -> quinn::Connection {
    let connecting = ep.connect(addr, "dns.test").unwrap();
    tokio::time::timeout(QUIC_WAIT, connecting)
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// Sends the message `q` as it is on a new stream of `conn`, with its FIN,
/// and reads the stream to its end: each message of the answer without its
/// length prefix (one, or a zone transfer's many). `Err` when the stream
/// or the connection is reset, or the answer is not whole length-prefixed
/// messages.
pub async fn doq_exchange(conn: &quinn::Connection, q: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    send.write_all(&framed).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let read = recv.read_to_end(64 << 20);
    let got = tokio::time::timeout(QUIC_WAIT, read)
        .await
        .map_err(|_| format!("no whole answer in {QUIC_WAIT:?}"))?
        .map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    let mut rest = &got[..];
    while let Some((len, after)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let m = after
            .get(..len)
            .ok_or_else(|| format!("a message cut short: {len} bytes announced"))?;
        messages.push(m.to_vec());
        rest = &after[len..];
    }
    if !rest.is_empty() || messages.is_empty() {
        return Err(format!("not length-prefixed messages: {} bytes", got.len()));
    }
    Ok(messages)
}

/// The Python that runs dnspython with aioquic (`$DNSLB_PYTHON`, default
/// `python3`), or `None` (skipped, or a failure under
/// `DNSLB_REQUIRE_PEERS=1`).
pub fn dnspython(test: &str) -> Option<String> {
    let python = std::env::var("DNSLB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import dns.query, dns.quic, aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    skip(test, &format!("{python} has no dnspython with aioquic"));
    None
}

/// `python ARGS` (the interpreter [`dnspython`] found) run to its end off
/// the runtime: its stdout; panics with both outputs when it fails.
pub async fn run_python(python: String, args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
