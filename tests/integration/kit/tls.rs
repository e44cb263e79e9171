//! DoT and DoH clients and their certificates: a test PKI made with
//! `openssl` ([`Pki`]), an LS serving DoT/DoH ([`Dot`]; as a child process
//! with plain DNS and `/metrics` too, under an open-file limit: [`EncLs`]), a DoT connection and
//! one query over it ([`connect`], [`ask`]), `curl` for DoH ([`curl`]), and a
//! TLS client trusting any certificate ([`connector`]). Its names are the
//! DoT ones (`ask`, `connect`), so it is not re-exported by the kit: use
//! `crate::kit::tls::{...}`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{
    BIN, LsRoleRun, Proc, TestTs, ZoneDir, crate_dir, dnslb_command, free_ports, http_get, local,
    need, path_str, query, read_frame, run_tool, start_ls_role, wait_answers, write_frame,
};

/// `openssl req`'s arguments for a new P-256 key, unencrypted.
pub const EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// The name the test certificates are issued for.
pub const HOST: &str = "dns.test";

/// A test CA and leaf certificates it signs, made with `openssl` in a folder of
/// its own (where the test writes its config and zones too).
pub struct Pki {
    pub(crate) dir: ZoneDir,
    pub openssl: PathBuf,
}

impl Pki {
    /// A new CA; `None` (skipped) without openssl.
    pub(crate) fn new(test: &str) -> Option<Pki> {
        let [openssl] = need(test, ["openssl"])?;
        let pki = Pki {
            dir: ZoneDir::new(),
            openssl,
        };
        let dir = pki.path();
        pki.openssl(
            &format!("req -x509 {EC_KEY} -keyout ca.key -out ca.pem -days 2"),
            &["-subj", "/CN=dnslb test CA"],
        );
        std::fs::write(
            dir.join("leaf.ext"),
            format!(
                "subjectAltName=DNS:{HOST},IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        Some(pki)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `openssl` with the words of `line`, then `more` (words with spaces).
    pub fn openssl(&self, line: &str, more: &[&str]) {
        let args: Vec<&str> = line
            .split_whitespace()
            .chain(more.iter().copied())
            .collect();
        let out = std::process::Command::new(&self.openssl)
            .args(&args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A leaf certificate for [`HOST`] signed by the CA: `NAME.pem` and `NAME.key`.
    pub(crate) fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(
            &format!("req {EC_KEY} -keyout {key} -out {csr}"),
            &["-subj", &format!("/CN={name}")],
        );
        self.openssl(
            &format!("x509 -req -in {csr} -CA ca.pem -CAkey ca.key -CAcreateserial -out {pem} -days 2 -extfile leaf.ext"),
            &[],
        );
        (self.path().join(pem), self.path().join(key))
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.path().join("ca.pem")
    }

    /// A rustls client trusting the CA, ALPN `dot`, with its own session store.
    pub(crate) fn client(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.ca()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"dot".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

/// An LS with `[ls.tls]` serving the pair `cert`/`key` in front of `backend`.
pub struct Dot {
    pub(crate) run: LsRoleRun,
    pub(crate) tls: SocketAddr,
    pub(crate) https: SocketAddr,
}

impl Dot {
    /// DoT and DoH (both with `cert` and `key`).
    pub async fn start(dir: &Path, backend: SocketAddr, cert: &Path, key: &Path) -> Dot {
        Dot::start_pair(dir, backend, Some((cert, key))).await
    }

    /// With a pair: DoT and DoH over TLS with it; without: plain DoH only.
    pub async fn start_pair(dir: &Path, backend: SocketAddr, pair: Option<(&Path, &Path)>) -> Dot {
        let ports = free_ports(3);
        let tls = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let https = SocketAddr::from(([127, 0, 0, 1], ports[2]));
        let mut text = format!("[ls]\nlisten = [\"127.0.0.1:{}\"]\n\n", ports[0]);
        text.push_str(&format!("[ls.https]\nlisten = [\"{https}\"]\n"));
        if let Some((cert, key)) = pair {
            let files = format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                path_str(cert),
                path_str(key)
            );
            text.push_str(&format!("{files}\n[ls.tls]\nlisten = [\"{tls}\"]\n{files}"));
        }
        text.push_str(&format!(
            "\n[[ls.backend]]\nname = \"b1\"\naddr = \"{backend}\"\n"
        ));
        let config = dir.join("config.toml");
        std::fs::write(&config, text).unwrap();
        let run = start_ls_role(&config).await;
        Dot { run, tls, https }
    }

    pub(crate) fn tls_stats(&self) -> &dnslb::server::tls_stats::TlsStats {
        self.run.balancer.metrics().tls.get().unwrap()
    }

    pub(crate) fn metrics(&self) -> String {
        dnslb::metrics::render_prometheus(&self.run.balancer)
    }

    pub async fn reload(&self) {
        let applied = |s: &dnslb::server::tls_stats::TlsStats| {
            s.cert_reloads.load(Relaxed) + s.cert_reloads_refused.load(Relaxed)
        };
        let before = applied(self.tls_stats());
        self.run
            .controls
            .send(dnslb::roles::Control::Reload)
            .unwrap();
        let done = crate::kit::poll_until_async(
            Duration::from_secs(5),
            Duration::from_millis(5),
            async || (applied(self.tls_stats()) > before).then_some(()),
        )
        .await;
        assert!(done.is_some(), "the reload never reached the certificate");
    }

    /// Stops the LS, then `ts` (its backend) when given.
    pub(crate) async fn stop(self, ts: Option<TestTs>) {
        self.run
            .controls
            .send(dnslb::roles::Control::Shutdown)
            .unwrap();
        self.run.task.await.unwrap().unwrap();
        if let Some(ts) = ts {
            ts.stop().await;
        }
    }
}

/// Opens a DoT connection to `addr` with `client`.
pub async fn connect(client: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(HOST).unwrap();
    tokio::time::timeout(Duration::from_secs(5), client.connect(name, tcp))
        .await
        .expect("handshake timed out")
        .expect("handshake failed")
}

/// Asks `name` A on an open DoT connection and reads the answer.
pub async fn ask(conn: &mut TlsStream<TcpStream>, name: &str) -> Message {
    let q = query(name, RecordType::A, Some(1232));
    assert!(write_frame(conn, &q.to_vec().unwrap()).await);
    let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(conn))
        .await
        .expect("no answer in 5 s")
        .expect("connection closed");
    let answer = Message::from_vec(&answer).unwrap();
    assert_eq!(answer.metadata.id, q.metadata.id);
    answer
}

/// The DER of the first certificate in the PEM file at `path`.
pub fn der_of(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// The leaf certificate the server showed on `conn`.
pub fn served(conn: &TlsStream<TcpStream>) -> Vec<u8> {
    conn.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

pub const TABLE: &str = "www.example.com 192.0.2.10 A\n";

/// The query `www.example.com A` (id 0) in base64url, as a DoH GET carries it.
pub fn get_param() -> String {
    let q = query("www.example.com", RecordType::A, None);
    let mut q = q.to_vec().unwrap();
    q[..2].copy_from_slice(&[0, 0]);
    data_encoding::BASE64URL_NOPAD.encode(&q)
}

/// What curl got: the status, the HTTP version, the headers and the body.
pub struct Curl {
    pub(crate) code: String,
    pub(crate) version: String,
    pub(crate) headers: String,
    pub(crate) body: Vec<u8>,
}

/// `curl` with `args` (a URL among them), the body saved in `dir`.
pub fn curl(prog: &Path, dir: &Path, args: &[&str]) -> Curl {
    let (body, headers) = (dir.join("body"), dir.join("headers"));
    let _ = std::fs::remove_file(&body);
    let mut all = vec!["-s", "-o", path_str(&body), "-D", path_str(&headers)];
    all.extend_from_slice(&["-w", "%{http_code} %{http_version}"]);
    all.extend_from_slice(args);
    let out = run_tool(path_str(prog), &all);
    let mut w = out.stdout.split_whitespace();
    Curl {
        code: w.next().unwrap_or_default().to_owned(),
        version: w.next().unwrap_or_default().to_owned(),
        headers: std::fs::read_to_string(&headers)
            .unwrap_or_default()
            .to_lowercase(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// The one `content-length` of `headers` (lowercase, as [`curl`] keeps them); `None`
/// when there is none, or more than one.
pub fn content_length(headers: &str) -> Option<usize> {
    let mut all = headers
        .lines()
        .filter_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().ok());
    let first = all.next()??;
    all.next().is_none().then_some(first)
}

/// Whether `body` is a DNS answer carrying 192.0.2.10.
pub fn answers_ten(body: &[u8]) -> bool {
    Message::from_vec(body).is_ok_and(|m| {
        crate::kit::a_addrs(&m) == ["192.0.2.10".parse::<std::net::Ipv4Addr>().unwrap()]
    })
}

/// Accepts any certificate (a hostile client does not check whom it
/// attacks), checking only the handshake's signatures.
#[derive(Debug)]
pub struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Signed {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &schemes().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Signed {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &schemes().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The ring provider, whose signature algorithms [`AnyCert`] checks.
pub fn schemes() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub type Cert<'a> = CertificateDer<'a>;

pub type Dss = DigitallySignedStruct;

pub type Signed = Result<HandshakeSignatureValid, rustls::Error>;

/// A TLS client offering `alpn`, without resumption: every connection costs
/// the server a full handshake.
pub fn connector(alpn: &[u8]) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// `dnslb ls` (one worker) as a child process with plain DNS, DoT (the
/// certificate of `tests/data/tls`), DoH and `/metrics`, in front of one
/// backend (`b1`), run from a folder of its own; stopped by PID when dropped.
pub struct EncLs {
    pub proc: Proc,
    pub dns: SocketAddr,
    pub tls: SocketAddr,
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    _dir: ZoneDir,
}

/// How an [`EncLs`] starts.
pub struct EncLsSetup<'a> {
    /// The backend.
    pub backend: SocketAddr,
    /// Lines added to `[ls]`.
    pub extra: &'a str,
    /// DoH over TLS (the same certificate), else plain HTTP (as behind a proxy).
    pub https_tls: bool,
    /// Both open-file limits set to this (`ulimit -n`) when given.
    pub nofile: Option<u64>,
    /// It is ready once it answers this name A with this address.
    pub ready: (&'a str, &'a str),
}

impl EncLs {
    /// Writes its config, starts it, and waits until it answers `setup.ready`.
    pub async fn start(setup: EncLsSetup<'_>) -> EncLs {
        let dir = ZoneDir::new();
        let p = free_ports(4);
        let data = crate_dir().join("tests/data/tls");
        let files = format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            path_str(&data.join("ls.pem")),
            path_str(&data.join("ls.key"))
        );
        let https_files = if setup.https_tls { files.as_str() } else { "" };
        let text = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\nworkers = 1\nmetrics = \"127.0.0.1:{}\"\n{}\n\n\
             [ls.tls]\nlisten = [\"127.0.0.1:{}\"]\n{files}\n\
             [ls.https]\nlisten = [\"127.0.0.1:{}\"]\n{https_files}\n\
             [[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\n",
            p[0], p[3], setup.extra, p[1], p[2], setup.backend
        );
        dir.write("config.toml", &text);
        let mut cmd = dnslb_command(&["ls", "-c", "config.toml"], dir.path());
        if let Some(n) = setup.nofile {
            // The shell sets the limits, then becomes the LS (same PID).
            let mut sh = std::process::Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .args([BIN, "ls", "-c", "config.toml"])
                .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
                .current_dir(dir.path());
            cmd = sh;
        }
        let mut proc = Proc::spawn("dnslb ls", cmd);
        let (name, ip) = setup.ready;
        wait_answers(local(p[0]), name, ip, &mut [&mut proc]).await;
        EncLs {
            proc,
            dns: local(p[0]),
            tls: local(p[1]),
            https: local(p[2]),
            metrics: local(p[3]),
            _dir: dir,
        }
    }

    /// The value of the `/metrics` sample `line` (name and labels).
    pub async fn metric<T: std::str::FromStr>(&self, line: &str) -> T {
        let text = http_get(self.metrics, "/metrics").await.body;
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in {text}"))
    }
}
