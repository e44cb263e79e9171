//! A small hostile primary over real TCP on 127.0.0.1 for sec.test.: each
//! connection answered by the next of its [`Script`]s (a whole zone, one cut
//! mid-stream, an IXFR that does not apply or whose changes do not follow,
//! a TSIG that fails on the fifth message, a first message claiming 65,535
//! bytes), signed with a key or not; what it was asked is returned. A
//! `dnslb ts` secondary of it ([`secondary_of_hostile`]), the NOTIFY that
//! wakes it ([`notify`]) and its counters ([`secondary_counter`]).
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::xfr::TsProc;
use super::{ZoneDir, free_port, udp_raw};

/// `s` as a name.
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The SOA of sec.test. at `serial`, with long timers.
pub fn soa(serial: u32) -> Record {
    timed_soa(serial, [3600, 3600, 604_800])
}

/// The SOA at `serial` with REFRESH, RETRY and EXPIRE `timers`.
pub fn timed_soa(serial: u32, [refresh, retry, expire]: [i32; 3]) -> Record {
    let data = SOA::new(
        name("ns1.sec.test."),
        name("h.sec.test."),
        serial,
        refresh,
        retry,
        expire,
        60,
    );
    Record::from_rdata(name("sec.test."), 300, RData::SOA(data))
}

/// `owner` A 192.0.2.`last`.
pub fn a(owner: &str, last: u8) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A::new(192, 0, 2, last)))
}

/// How the hostile primary answers one transfer request.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// The whole zone at `serial`, www at 192.0.2.`last`.
    Whole(u32, u8),
    /// The zone at serial 2 (www at .2), cut before its last SOA.
    Cut,
    /// An IXFR from 1 to 2 deleting a record the zone never had.
    Unapplicable,
    /// As `Whole`, its SOA's REFRESH 1, RETRY 1 and EXPIRE 3.
    Short(u32, u8),
    /// The zone at serial 2 in six messages, the fifth altered after it
    /// was signed (its TSIG fails).
    Tampered,
    /// A first message whose length claims 65,535 bytes, then 20 of them
    /// and the connection closed.
    HugeClaim,
    /// Nothing: the connection held open, silent, and no other taken.
    Silent,
    /// As `Whole`, its SOA's REFRESH, RETRY and EXPIRE as given.
    Timed(u32, u8, [i32; 3]),
    /// An IXFR from `serial` to `serial + 1` whose answer goes on to a
    /// change that does not start where the last ended (and ends with
    /// another SOA than its first).
    EndsOther(u32),
}

/// The answer messages of `script` to the request `req`.
pub fn answer(req: &Message, script: Script) -> Vec<Vec<u8>> {
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = true;
    m.add_queries(req.queries.iter().cloned());
    let records = match script {
        Script::Whole(serial, last) => {
            vec![
                soa(serial),
                a("www.sec.test.", last),
                a("ns1.sec.test.", 53),
                soa(serial),
            ]
        }
        Script::Short(serial, last) => {
            let soa = timed_soa(serial, [1, 1, 3]);
            vec![soa.clone(), a("www.sec.test.", last), soa]
        }
        Script::Timed(serial, last, timers) => {
            let soa = timed_soa(serial, timers);
            vec![soa.clone(), a("www.sec.test.", last), soa]
        }
        Script::EndsOther(from) => vec![
            soa(from + 1),
            soa(from),
            a("www.sec.test.", 1),
            soa(from + 1),
            a("www.sec.test.", 9),
            soa(from + 5),
        ],
        Script::Cut => vec![soa(2), a("www.sec.test.", 2)],
        Script::Silent => vec![],
        Script::Tampered | Script::HugeClaim => vec![
            soa(2),
            a("www.sec.test.", 2),
            a("ns1.sec.test.", 53),
            a("x1.sec.test.", 1),
            a("x2.sec.test.", 2),
            soa(2),
        ],
        Script::Unapplicable => vec![
            soa(2),
            soa(1),
            a("gone.sec.test.", 7),
            soa(2),
            a("www.sec.test.", 2),
            soa(2),
        ],
    };
    // One record a message: the cut falls between messages.
    records
        .into_iter()
        .map(|r| {
            let mut one = m.clone();
            one.add_answer(r);
            one.to_vec().unwrap()
        })
        .collect()
}

/// Serves transfers on `listener`, each connection by the next of `scripts`;
/// returns the request types seen.
pub async fn hostile(listener: TcpListener, scripts: Vec<Script>) -> Vec<RecordType> {
    serve(listener, None, scripts).await
}

/// As [`hostile`], each answer signed with `key` as a primary signs it
/// (RFC 8945 §5.3.1) but as `Tampered` and `HugeClaim` spoil it.
pub async fn hostile_keyed(
    listener: TcpListener,
    key: Arc<dnslb::dns::tsig::Key>,
    scripts: Vec<Script>,
) -> Vec<RecordType> {
    serve(listener, Some(key), scripts).await
}

async fn serve(
    listener: TcpListener,
    key: Option<Arc<dnslb::dns::tsig::Key>>,
    scripts: Vec<Script>,
) -> Vec<RecordType> {
    use dnslb::dns::tsig::{Checked, Signer, verify_request};
    let mut seen = Vec::new();
    for script in scripts {
        let (mut conn, _) = listener.accept().await.unwrap();
        let len = conn.read_u16().await.unwrap();
        let mut buf = vec![0; usize::from(len)];
        conn.read_exact(&mut buf).await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut signer = key.as_ref().map(|key| {
            let Checked::Signed(verified) = verify_request(&buf, key, now) else {
                panic!("the request is not signed with the key");
            };
            Signer::answer(key.clone(), &verified)
        });
        let req = Message::from_vec(&buf).unwrap();
        seen.push(req.queries[0].query_type());
        if matches!(script, Script::Silent) {
            // Held (later connections wait in the backlog, as silent).
            std::future::pending::<()>().await;
        }
        for (i, mut msg) in answer(&req, script).into_iter().enumerate() {
            let unsigned = msg.len();
            if let Some(signer) = &mut signer {
                signer.sign(&mut msg);
            }
            if matches!(script, Script::Tampered) && i == 4 {
                // The last byte of its A record: 192.0.2.2 becomes .3.
                msg[unsigned - 1] ^= 1;
            }
            let mut framed = u16::try_from(msg.len()).unwrap().to_be_bytes().to_vec();
            if matches!(script, Script::HugeClaim) {
                framed = vec![0xff, 0xff];
                framed.extend_from_slice(&msg[..20]);
                let _ = conn.write_all(&framed).await;
                break;
            }
            framed.extend_from_slice(&msg);
            // The secondary may hang up once it read enough (one SOA not
            // newer than its own: up to date).
            if conn.write_all(&framed).await.is_err() {
                break;
            }
        }
        // Dropped: a cut transfer ends here.
    }
    seen
}

// ---- A dnslb secondary of it --------------------------------------------

/// A `[[ts]]` named `sec` on `port`, secondary for sec.test. from
/// `primary`, keeping its copy in `dir/state`; `extra` added to the zone's
/// table (a key).
pub fn secondary_config(dir: &Path, port: u16, primary: SocketAddr, extra: &str) -> String {
    format!(
        "[[ts]]\n\
         name = \"sec\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         zones = [{{ name = \"sec.test.\", primary = \"{primary}\"{extra} }}]\n\
         axfr_allow = [\"127.0.0.0/8\"]\n\
         state_dir = \"{}\"\n\
         workers = 1\n",
        dir.join("state").display()
    )
}

/// A dnslb secondary of a [`hostile`] primary playing `scripts`, serving:
/// the primary's task (the transfer types it was asked), the secondary
/// and its folder. `more` is added to its `[[ts]]` (`metrics`...).
pub async fn secondary_of_hostile_with(
    scripts: Vec<Script>,
    more: &str,
) -> (tokio::task::JoinHandle<Vec<RecordType>>, TsProc, ZoneDir) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary = listener.local_addr().unwrap();
    let server = tokio::spawn(hostile(listener, scripts));
    let port = free_port();
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), port, primary, "") + more;
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    (server, sec, sdir)
}

/// [`secondary_of_hostile_with`] with nothing more.
pub async fn secondary_of_hostile(
    scripts: Vec<Script>,
) -> (tokio::task::JoinHandle<Vec<RecordType>>, TsProc, ZoneDir) {
    secondary_of_hostile_with(scripts, "").await
}

/// A NOTIFY for sec.test. sent to `to` from 127.0.0.1; its answer's rcode.
pub async fn notify(to: SocketAddr) -> Option<ResponseCode> {
    let mut m = Message::new(99, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(name("sec.test."), RecordType::SOA));
    let raw = udp_raw(to, &m.to_vec().unwrap()).await?;
    Message::from_vec(&raw)
        .ok()
        .map(|m| m.metadata.response_code)
}

/// The counter `event` of `dnslb_ts_secondary_total` on `metrics`.
pub async fn secondary_counter(metrics: SocketAddr, event: &str) -> u64 {
    let body = super::http_get(metrics, "/metrics").await.body;
    let line = format!("dnslb_ts_secondary_total{{event=\"{event}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in:\n{body}"))
}
