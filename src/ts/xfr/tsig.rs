//! TSIG on the TS's request path (docs/CONFIG.md (the TS) "Zone transfers secondaries can
//! trust"): with `xfr_key` set, an AXFR or IXFR must be signed with that key
//! (and come from `axfr_allow`, checked as without a key); every signed
//! request is verified and its answer signed, each message of a transfer on
//! the one before (RFC 8945 §5.3.1); without a key, a signed request gets
//! BADKEY (§5.2.1), as NSD answers it. A request that fails gets NOTAUTH with
//! the TSIG error (FORMERR for a malformed record), counted by error
//! ([`TsigRefusal`]) and logged within a budget. [`XfrKey`] holds the key, read
//! at start and again on each reload; a key that cannot be read refuses the
//! reload and the old key keeps serving.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;

use crate::dns::tsig::{self, Checked, Key, Signer, TsigError};
use crate::dns::{self, ClientQuery, HEADER_LEN};
use crate::guard::log_budget::{Change, LimitLog};
use crate::server::{EachMessage, Reply, Request, StreamAborted};
use crate::ts::metrics::{RequestOutcome, XfrCounters};
use crate::ts::settings::TsSettings;

/// The refused-request log's budget: this many lines a minute at most.
const LOG_LINES_A_MINUTE: u64 = 5;

/// Why a request was refused for its TSIG: the `error` label of
/// `dnslb_ts_tsig_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigRefusal {
    /// A transfer without a TSIG.
    Unsigned,
    /// A malformed TSIG record (answered FORMERR).
    Malformed,
    /// A TSIG error (answered NOTAUTH).
    Error(TsigError),
}

impl TsigRefusal {
    /// Every refusal, in the order of [`XfrKey::refused`].
    pub const ALL: [TsigRefusal; 6] = [
        TsigRefusal::Unsigned,
        TsigRefusal::Malformed,
        TsigRefusal::Error(TsigError::BadSig),
        TsigRefusal::Error(TsigError::BadKey),
        TsigRefusal::Error(TsigError::BadTime),
        TsigRefusal::Error(TsigError::BadTrunc),
    ];

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            TsigRefusal::Unsigned => "unsigned",
            TsigRefusal::Malformed => "FORMERR",
            TsigRefusal::Error(e) => e.as_str(),
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A TS's transfer key (none without `xfr_key`), its refusals counted.
#[derive(Debug)]
pub struct XfrKey {
    key: ArcSwapOption<Key>,
    /// Requests refused, by [`TsigRefusal::ALL`] order.
    pub refused: [AtomicU64; TsigRefusal::ALL.len()],
    log: LimitLog,
}

/// The key `settings` name, read (its file too).
///
/// # Errors
/// The key's problem, as a message naming it.
fn read_key(settings: &TsSettings) -> Result<Option<Arc<Key>>, String> {
    let Some(kc) = &settings.xfr_key else {
        return Ok(None);
    };
    kc.load()
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| format!("[[key]] {:?}: {e}", kc.name))
}

impl XfrKey {
    /// The key of `settings`, read now.
    ///
    /// # Errors
    /// The key cannot be read or used.
    pub fn load(settings: &TsSettings) -> Result<Self, String> {
        Ok(XfrKey {
            key: ArcSwapOption::new(read_key(settings)?),
            refused: Default::default(),
            log: LimitLog::new(Instant::now(), Duration::from_secs(60), LOG_LINES_A_MINUTE),
        })
    }

    /// Reads the key of `settings` again (its `secret_file` may have changed).
    ///
    /// # Errors
    /// The key cannot be read or used: the old one is kept.
    pub fn reload(&self, settings: &TsSettings) -> Result<(), String> {
        self.key.store(read_key(settings)?);
        Ok(())
    }

    /// The key in force.
    pub fn get(&self) -> Option<Arc<Key>> {
        self.key.load_full()
    }

    /// Counts, and logs within the budget, a request from `req` refused.
    fn refuse(&self, ts: &str, req: &Request<'_>, why: TsigRefusal) {
        if let Some(c) = self.refused.get(why.index()) {
            c.fetch_add(1, Relaxed);
        }
        if let Some(more) = self.log.roll(Instant::now()) {
            tracing::warn!(
                ts,
                more = more.started,
                "more requests refused for their TSIG"
            );
        }
        if self.log.admit(Change::Started) {
            tracing::warn!(ts, src = %req.src, error = why.label(), "request refused for its TSIG");
        }
    }
}

/// `Err` (counted as a failed transfer, logged) when the signed transfer
/// message `m` is too long for TCP's two-byte length: the transfer packs
/// its messages with room for the TSIG, so this is a fault of ours, and the
/// transfer stops rather than go on without that message.
fn too_long_for_tcp(ts: &str, m: &[u8], counters: &XfrCounters) -> Result<(), StreamAborted> {
    if m.len() <= usize::from(dns::TCP_PAYLOAD_MAX) {
        return Ok(());
    }
    counters.failed.fetch_add(1, Relaxed);
    tracing::error!(
        ts,
        len = m.len(),
        "a signed transfer message is over 65535 bytes: transfer stopped, connection closed"
    );
    Err(StreamAborted)
}

/// Whether `raw` asks one question of type AXFR (252) or IXFR (251).
fn asks_transfer(raw: &[u8]) -> bool {
    let Some(end) = dns::skip_name(raw, HEADER_LEN) else {
        return false;
    };
    dns::u16_at(raw, 4) == Some(1) && matches!(dns::u16_at(raw, end), Some(251 | 252))
}

/// The answer to `req` when it is signed, or when `xfr_key` holds a key
/// and `req` asks for a transfer: refused (NOTAUTH, FORMERR) or answered as
/// if unsigned by `answer`, given the room to leave for the TSIG (RFC 8945
/// §5.3: the answer is sized to the client's limit less its TSIG), then
/// signed. A TS without a key refuses every signed request with BADKEY
/// (§5.2.1, as NSD does): answered unsigned, the client could not tell a
/// missing key from a forged answer. `None`: answered as without a key (an
/// unsigned query, or a message that cannot be walked before any TSIG: the
/// ordinary checks answer it). `ts` names the TS in logs, `counters` count a
/// signed transfer that had to stop, and `rcode_answer` writes a refusal to
/// a decoded query.
pub fn respond_signed(
    xfr_key: &XfrKey,
    ts: &str,
    counters: &Arc<XfrCounters>,
    req: &Request<'_>,
    rcode_answer: impl Fn(&ClientQuery, ResponseCode) -> Reply,
    answer: impl FnOnce(Request<'_>, usize) -> (Reply, RequestOutcome),
) -> Option<(Reply, RequestOutcome)> {
    let key = xfr_key.get();
    let now = tsig::unix_now();
    let refusal = |raw: &[u8], rcode| refusal(raw, rcode, &rcode_answer);
    let checked = match &key {
        Some(key) => tsig::verify_request(req.raw, key, now),
        // No ARCOUNT, no TSIG: most queries stop here.
        None if dns::u16_at(req.raw, 10).is_none_or(|ar| ar == 0) => return None,
        None => tsig::verify_without_key(req.raw),
    };
    let keyed = key.is_some();
    match checked {
        Checked::Unsigned if keyed && asks_transfer(req.raw) => {
            xfr_key.refuse(ts, req, TsigRefusal::Unsigned);
            Some(refusal(req.raw, ResponseCode::NotAuth))
        }
        // A transfer the decoder would take though the walk could not:
        // never served unsigned.
        Checked::Unreadable
            if keyed && asks_transfer(req.raw) && dns::decode_query(req.raw).is_ok() =>
        {
            xfr_key.refuse(ts, req, TsigRefusal::Malformed);
            Some(refusal(req.raw, ResponseCode::FormErr))
        }
        Checked::Unsigned | Checked::Unreadable => None,
        Checked::Signed(verified) => {
            let key = key?;
            let plain = verified.unsigned(req.raw);
            let (reply, outcome) = answer(
                Request {
                    raw: &plain,
                    ..*req
                },
                key.tsig_len(),
            );
            let mut signer = Signer::answer(key, &verified);
            let reply = match reply {
                Reply::Drop => Reply::Drop,
                Reply::One(mut msg) => {
                    signer.sign(&mut msg);
                    Reply::One(msg)
                }
                // A transfer: each message signed as it is made (RFC 8945
                // §5.3.1: on the MAC of the one before).
                Reply::Stream(messages) => {
                    let counters = Arc::clone(counters);
                    let ts = ts.to_owned();
                    Reply::Stream(Box::new(EachMessage::new(messages, move |m| {
                        signer.sign(m);
                        too_long_for_tcp(&ts, m, &counters)
                    })))
                }
            };
            Some((reply, outcome))
        }
        Checked::Rejected(rejected) => {
            let (why, rcode) = match rejected.error {
                Some(e) => (TsigRefusal::Error(e), ResponseCode::NotAuth),
                None => (TsigRefusal::Malformed, ResponseCode::FormErr),
            };
            xfr_key.refuse(ts, req, why);
            let plain = rejected.unsigned(req.raw);
            let (mut reply, outcome) = refusal(plain.as_deref().unwrap_or(req.raw), rcode);
            if let Reply::One(msg) = &mut reply {
                rejected.answer(key.as_deref(), msg, now);
            }
            Some((reply, outcome))
        }
    }
}

/// An answer with `rcode` to the request `raw` (written by `rcode_answer`);
/// one the decoder refuses gets the decoder's answer (FORMERR for a body
/// that cannot be read, as without a key: RFC 8945 §5.2), and one whose
/// header cannot be read none.
fn refusal(
    raw: &[u8],
    rcode: ResponseCode,
    rcode_answer: impl Fn(&ClientQuery, ResponseCode) -> Reply,
) -> (Reply, RequestOutcome) {
    match dns::decode_query(raw) {
        Ok(q) => (rcode_answer(&q, rcode), RequestOutcome::Answered(rcode)),
        Err(reject) => (
            reject.response().map_or(Reply::Drop, Reply::One),
            RequestOutcome::of_reject(&reject),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::TableServer;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn transfers_are_told_from_other_questions() {
        let q = |t: RecordType| {
            let mut m = Message::query();
            m.add_query(Query::query(Name::from_ascii("a.test.").unwrap(), t));
            m.to_vec().unwrap()
        };
        assert!(asks_transfer(&q(RecordType::AXFR)));
        assert!(asks_transfer(&q(RecordType::IXFR)));
        assert!(!asks_transfer(&q(RecordType::SOA)));
        assert!(!asks_transfer(&[0u8; 5]));
        let labels: Vec<&str> = TsigRefusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "unsigned", "FORMERR", "BADSIG", "BADKEY", "BADTIME", "BADTRUNC"
            ]
        );
    }

    /// A TS of the table `a.test.` requiring the key `xfr` for transfers.
    fn keyed_table_server(dir: &std::path::Path) -> TableServer {
        TableServer::load(keyed_settings(dir)).unwrap()
    }

    /// The settings of [`keyed_table_server`].
    fn keyed_settings(dir: &std::path::Path) -> TsSettings {
        let table = dir.join("t.txt");
        std::fs::write(&table, "www.a.test 192.0.2.1 A\n").unwrap();
        TsSettings {
            axfr_allow: vec!["127.0.0.0/8".parse().unwrap()],
            xfr_key: Some(crate::config::KeyConfig {
                name: "xfr".into(),
                algorithm: Default::default(),
                secret: Some("kQn0sD3l9Ui1u6m2sXJ1mR0bJx6g7h8Zq2yq1cV4aUk=".into()),
                secret_file: None,
            }),
            ..TsSettings::serving("t".into(), vec![table], "a.test.".parse().unwrap(), 300)
        }
    }

    /// The rcode of the TS's answer to `raw` over UDP, `None` when dropped.
    fn rcode_of(ts: &TableServer, raw: &[u8]) -> Option<u8> {
        answer_of(ts, raw).map(|m| m[3] & 0x0f)
    }

    /// The TS's answer to `raw` over UDP, `None` when dropped.
    fn answer_of(ts: &TableServer, raw: &[u8]) -> Option<Vec<u8>> {
        use crate::server::{Action, Handler};
        let req = Request::udp(raw, "127.0.0.1:5353".parse().unwrap());
        match ts.handle(req) {
            Action::Now(Reply::One(m)) => Some(m),
            _ => None,
        }
    }

    /// Issue 35 (ts-transfers 10): a TS without a key answers a signed
    /// request NOTAUTH with an unsigned TSIG naming BADKEY (RFC 8945
    /// §5.2.1), as NSD without a key does; before, it answered (and
    /// transferred) unsigned, which the client cannot tell from a forgery.
    /// Unsigned requests are answered as ever.
    #[test]
    fn a_ts_without_a_key_answers_a_signed_request_badkey() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TableServer::load(TsSettings {
            xfr_key: None,
            ..keyed_settings(dir.path())
        })
        .unwrap();
        let key = Arc::new(Key::new("xfr", tsig::Algorithm::HmacSha256, &[7u8; 32]).unwrap());
        for qtype in [RecordType::SOA, RecordType::IXFR] {
            let mut m = Message::query();
            m.add_query(Query::query(Name::from_ascii("a.test.").unwrap(), qtype));
            let plain = m.to_vec().unwrap();
            let mut signed = plain.clone();
            let mut signer = Signer::request(Arc::clone(&key));
            signer.sign(&mut signed);
            if qtype == RecordType::SOA {
                assert_eq!(rcode_of(&ts, &plain), Some(0), "unsigned: answered");
            }
            let answer = answer_of(&ts, &signed).unwrap();
            assert_eq!(answer[3] & 0x0f, 9, "{qtype}: NOTAUTH");
            let tsig = tsig::find(&answer).unwrap().expect("a TSIG in the answer");
            assert_eq!(tsig.error, 17, "{qtype}: BADKEY");
            assert!(tsig.mac.is_empty(), "{qtype}: unsigned (RFC 8945 §5.3.2)");
        }
        assert_eq!(
            ts.tsig_refused()[TsigRefusal::Error(TsigError::BadKey).index()].load(Relaxed),
            2
        );
    }

    /// RFC 8945 §5.2: a TSIG that cannot be interpreted gets FORMERR (Knot
    /// answers FORMERR; so does the TS for the same damage unsigned): a
    /// signed request whose ARCOUNT overstates the records after its TSIG,
    /// or whose MAC size field runs past the RDATA, gets the decoder's
    /// FORMERR, not silence.
    #[test]
    fn a_request_with_a_tsig_that_cannot_be_read_gets_formerr_not_silence() {
        let dir = tempfile::tempdir().unwrap();
        let ts = keyed_table_server(dir.path());
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::SOA,
        ));
        let plain = m.to_vec().unwrap();
        let mut signed = plain.clone();
        let mut signer = Signer::request(ts.xfr_key().unwrap());
        signer.sign(&mut signed);
        assert_eq!(rcode_of(&ts, &signed), Some(0), "the intact request");
        let mut unsigned_lie = plain;
        unsigned_lie[11] = 1; // ARCOUNT 1, no record
        assert_eq!(rcode_of(&ts, &unsigned_lie), Some(1), "unsigned: FORMERR");
        let mut signed_lie = signed.clone();
        signed_lie[11] = 5; // ARCOUNT 5, one record (the TSIG)
        assert_eq!(rcode_of(&ts, &signed_lie), Some(1), "ARCOUNT past the TSIG");
        // The MAC size field (after the algorithm name and 8 bytes of time
        // and fudge) set to 65535, the RDATA left as it is.
        let alg = b"\x0bhmac-sha256\x00";
        let at = signed.windows(alg.len()).rposition(|w| w == alg).unwrap() + alg.len() + 8;
        let mut mac_lie = signed;
        mac_lie[at..at + 2].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(rcode_of(&ts, &mac_lie), Some(1), "MAC size field 65535");
    }
}
