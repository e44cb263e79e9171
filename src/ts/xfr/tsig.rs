//! The transfer key's policy on the TS's request path (docs/CONFIG.md (the
//! TS) "Zone transfers secondaries can trust"), what is the transfers' own
//! of TSIG: the request pipeline (`respond.rs`) verifies each request with
//! the codec (`dns::tsig`) and signs its answer, and [`TsigVerdict::of`] says
//! what the check means here. With `xfr_key` set, an AXFR or IXFR must be
//! signed with that key (and come from `axfr_allow`, checked as without a
//! key); every signed request is verified and its answer signed, each
//! message of a transfer on the one before ([`signed_stream`], RFC 8945
//! §5.3.1); without a key, a signed request gets BADKEY (§5.2.1), as NSD
//! answers it. A request that fails gets NOTAUTH with the TSIG error
//! (FORMERR for a malformed record), counted by error ([`TsigRefusal`]) and
//! logged within a budget. [`XfrKey`] holds the key, read at start and again
//! on each reload; a key that cannot be read refuses the reload and the old
//! key keeps serving.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;

use crate::dns::tsig::{Checked, Key, Rejected, Signer, TsigError, Verified};
use crate::dns::{self, HEADER_LEN};
use crate::guard::log_budget::{Change, LimitLog};
use crate::server::{EachMessage, MessageStream, Request, StreamAborted};
use crate::ts::metrics::XfrCounters;
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
    pub fn refuse(&self, ts: &str, req: &Request<'_>, why: TsigRefusal) {
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

/// What the transfer key's policy makes of a request's TSIG check.
#[derive(Debug)]
pub enum TsigVerdict {
    /// Answered as it came: no TSIG, or a message that cannot be walked
    /// before one (the ordinary checks answer it), and not a transfer the
    /// key must sign.
    Unsigned,
    /// Signed with the key and verified: answered as if unsigned (the
    /// request without its TSIG, [`Verified::unsigned`]), each message
    /// sized to leave room for the TSIG ([`Key::tsig_len`]) it is then
    /// signed with ([`Signer::answer`]).
    Signed(Arc<Key>, Verified),
    /// Refused for its TSIG.
    Refused(TsigRefused),
}

impl TsigVerdict {
    /// The policy on `checked`, the TSIG check of the request `raw` against
    /// `key` (the transfer key; none: every signed request is BADKEY) at
    /// `now`. With a key, an unsigned transfer is refused NOTAUTH, and one
    /// the decoder would take though the check could not walk it FORMERR:
    /// never served unsigned. A TSIG that does not verify is refused with
    /// its error (FORMERR for a malformed record).
    pub fn of(key: Option<Arc<Key>>, raw: &[u8], checked: Checked, now: u64) -> TsigVerdict {
        let keyed = key.is_some();
        let refused = |why, rcode| {
            TsigVerdict::Refused(TsigRefused {
                why,
                rcode,
                error: None,
            })
        };
        match checked {
            Checked::Unsigned if keyed && asks_transfer(raw) => {
                refused(TsigRefusal::Unsigned, ResponseCode::NotAuth)
            }
            Checked::Unreadable
                if keyed && asks_transfer(raw) && dns::decode_query(raw).is_ok() =>
            {
                refused(TsigRefusal::Malformed, ResponseCode::FormErr)
            }
            Checked::Unsigned | Checked::Unreadable => TsigVerdict::Unsigned,
            Checked::Signed(verified) => match key {
                Some(key) => TsigVerdict::Signed(key, verified),
                None => TsigVerdict::Unsigned,
            },
            Checked::Rejected(rejected) => {
                let (why, rcode) = match rejected.error {
                    Some(e) => (TsigRefusal::Error(e), ResponseCode::NotAuth),
                    None => (TsigRefusal::Malformed, ResponseCode::FormErr),
                };
                TsigVerdict::Refused(TsigRefused {
                    why,
                    rcode,
                    error: Some((rejected, key, now)),
                })
            }
        }
    }
}

/// A request refused for its TSIG: why, the rcode of its answer, and the
/// TSIG that answer carries.
#[derive(Debug)]
pub struct TsigRefused {
    /// Why, as counted.
    pub why: TsigRefusal,
    /// The answer's rcode (NOTAUTH, FORMERR).
    pub rcode: ResponseCode,
    /// A TSIG that did not verify, with the key and the time it was checked
    /// against; none for a transfer refused for want of one.
    error: Option<(Rejected, Option<Arc<Key>>, u64)>,
}

impl TsigRefused {
    /// The request `raw` without its TSIG, to build the answer from; `None`:
    /// answer `raw` as it came (no TSIG, or a malformed one that cannot be
    /// cut off).
    pub fn unsigned(&self, raw: &[u8]) -> Option<Vec<u8>> {
        self.error.as_ref().and_then(|(r, _, _)| r.unsigned(raw))
    }

    /// Adds the TSIG error to the answer `msg` (RFC 8945 §5.3.2: unsigned
    /// for BADKEY and BADSIG, signed for BADTIME and BADTRUNC), when it has one.
    pub fn add_tsig(&self, msg: &mut Vec<u8>) {
        if let Some((rejected, key, now)) = &self.error {
            rejected.answer(key.as_deref(), msg, *now);
        }
    }
}

/// The messages of a transfer answering a signed request, each signed by
/// `signer` as it is made, on the MAC of the one before (RFC 8945 §5.3.1);
/// one too long for TCP stops the transfer (`ts` names the TS in the log,
/// `counters` count it as failed).
pub fn signed_stream(
    messages: Box<dyn MessageStream>,
    mut signer: Signer,
    ts: &str,
    counters: &Arc<XfrCounters>,
) -> Box<dyn MessageStream> {
    let counters = Arc::clone(counters);
    let ts = ts.to_owned();
    Box::new(EachMessage::new(messages, move |m| {
        signer.sign(m);
        too_long_for_tcp(&ts, m, &counters)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::tsig;
    use crate::server::Reply;
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

    /// A query for `a.test.`/`qtype`.
    fn asking(qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii("a.test.").unwrap(), qtype));
        m.to_vec().unwrap()
    }

    #[test]
    fn the_key_policy_refuses_unsigned_transfers_and_tsigs_that_fail_only() {
        let key = Arc::new(Key::new("xfr", tsig::Algorithm::HmacSha256, &[7u8; 32]).unwrap());
        let now = crate::clock::unix_now();
        let verdict = |key: Option<&Arc<Key>>, raw: &[u8]| {
            let checked = match key {
                Some(k) => tsig::verify_request(raw, k, now),
                None => tsig::verify_without_key(raw),
            };
            TsigVerdict::of(key.cloned(), raw, checked, now)
        };
        let (soa, axfr) = (asking(RecordType::SOA), asking(RecordType::AXFR));
        assert!(matches!(verdict(Some(&key), &soa), TsigVerdict::Unsigned));
        assert!(
            matches!(verdict(None, &axfr), TsigVerdict::Unsigned),
            "no key"
        );
        let TsigVerdict::Refused(r) = verdict(Some(&key), &axfr) else {
            panic!("an unsigned transfer with a key is refused");
        };
        assert_eq!(
            (r.why, r.rcode),
            (TsigRefusal::Unsigned, ResponseCode::NotAuth)
        );
        assert_eq!(r.unsigned(&axfr), None, "answered as it came");
        let mut signed = soa.clone();
        Signer::request(Arc::clone(&key)).sign(&mut signed);
        let TsigVerdict::Signed(by, verified) = verdict(Some(&key), &signed) else {
            panic!("signed with the key");
        };
        assert_eq!(
            (by.name(), verified.unsigned(&signed)),
            (key.name(), soa.clone())
        );
        let TsigVerdict::Refused(r) = verdict(None, &signed) else {
            panic!("signed, without a key: BADKEY");
        };
        let badkey = TsigRefusal::Error(TsigError::BadKey);
        assert_eq!((r.why, r.rcode), (badkey, ResponseCode::NotAuth));
        assert_eq!(r.unsigned(&signed), Some(soa), "answered without its TSIG");
        let mut forged = signed.clone();
        let last = forged.len() - 10; // inside the MAC
        forged[last] ^= 1;
        let TsigVerdict::Refused(r) = verdict(Some(&key), &forged) else {
            panic!("a MAC that does not match: BADSIG");
        };
        assert_eq!(r.why, TsigRefusal::Error(TsigError::BadSig));
        let mut msg = asking(RecordType::SOA);
        r.add_tsig(&mut msg);
        let added = tsig::find(&msg).unwrap().expect("the TSIG error added");
        assert_eq!((added.error, added.mac.len()), (16, 0), "BADSIG, unsigned");
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

    /// A TS without a key answers a signed request NOTAUTH with an
    /// unsigned TSIG naming BADKEY (RFC 8945 §5.2.1), as NSD without a key
    /// does, never an unsigned answer (or transfer), which the client
    /// cannot tell from a forgery.
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
