//! The TS's answer to a plain query, on the wire. [`plain`] answers a query
//! from the zone that holds its name in one call, whether the query was read
//! in place ([`PlainQuery`](super::query::PlainQuery)) or decoded: a
//! `[[ts.service]]`'s answer at its name ([`service_reply`]), else the zone's
//! own, a miss dropped when `on_miss` is silent. [`assemble`] builds the
//! zone's answer around a compiled zone's sections: the ID and the RD bit
//! copied (AD and CD clear), the question echoed byte for byte (0x20 case
//! kept), the OPT, and when it does not fit the client's size, the header,
//! question and OPT alone with TC=1 (RFC 2181 §9). Nothing is decoded or
//! re-encoded per query read in place, and nothing here calls back into the
//! request pipeline (`respond.rs`).
use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::TableServer;
use super::metrics::{RequestOutcome, Unanswered};
use super::query::ClientOpt;
use super::service::ecs;
use super::service_reply::service_reply;
use super::wire::NameKey;
use super::zone::{Catalog, Question, Written, Zone, write};
use crate::config::OnMiss;
use crate::dns::{self, HEADER_LEN, Transport, UDP_PAYLOAD_MAX};
use crate::server::{Reply, Request};

/// The OPT of a query to answer, as the pipeline read it.
#[derive(Clone, Copy)]
pub enum QueryOpt<'a> {
    /// None: the answer carries none.
    Absent,
    /// Read in place: answered with [`opt_record`], a well-formed EDNS
    /// Client Subnet option echoed at scope 0 (the answer is the same for
    /// every subnet, RFC 7871 §7.2.1).
    InPlace(ClientOpt),
    /// Decoded: answered with its [`answer_edns`] (the NSID when asked).
    Decoded(&'a Edns),
}

impl QueryOpt<'_> {
    /// `None` without an OPT, else its DO bit.
    fn dnssec_ok(&self) -> Option<bool> {
        match self {
            QueryOpt::Absent => None,
            QueryOpt::InPlace(o) => Some(o.dnssec_ok),
            QueryOpt::Decoded(e) => Some(e.flags().dnssec_ok),
        }
    }
}

/// A query to answer from a zone: its header and question, and its OPT.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// Message ID.
    pub id: u16,
    /// The flags word as sent (RD is copied).
    pub flags: u16,
    /// The question section to echo.
    pub question: &'a [u8],
    /// Its name, lower-cased.
    pub qname: &'a NameKey,
    /// Its type.
    pub qtype: RecordType,
    /// Its OPT.
    pub opt: QueryOpt<'a>,
}

/// The answer of `ts` to `query` (a QUERY, class IN, neither a transfer nor
/// a NOTIFY, whose malformed options were answered before) from `zone`, the
/// zone of `catalog` that holds its name: a `[[ts.service]]`'s answer at its
/// name, else the zone's own (a CNAME chain going on in the other zones of
/// `catalog`), within `max` bytes; a miss (NXDOMAIN) is dropped when
/// `on_miss` is silent. `req` is the request as answered (without its TSIG).
pub(super) fn plain(
    ts: &TableServer,
    (catalog, zone): (&Catalog, &Zone),
    req: &Request<'_>,
    query: Query<'_>,
    max: u16,
) -> (Reply, RequestOutcome) {
    let head = (query.id, query.flags, query.question);
    let opt = query.opt.dnssec_ok();
    let asked = (query.qname, query.qtype);
    if let Some(done) = service_reply(ts, (catalog, zone), req, asked, head, opt, max) {
        return done;
    }
    let asked = Asked {
        id: query.id,
        flags: query.flags,
        question: query.question,
        qname: query.qname,
        qtype: query.qtype,
        dnssec_ok: opt == Some(true),
    };
    let transport = req.transport;
    let (msg, w) = match query.opt {
        QueryOpt::Absent => assemble(catalog, zone, asked, None, max, transport),
        QueryOpt::InPlace(o) => {
            let opt = opt_record(o.dnssec_ok);
            // Only with an ECS option to echo is the OPT built on the heap.
            let echo = o.client_subnet.then(|| ecs::find(req.raw).ok().flatten());
            match echo.flatten() {
                Some(e) => {
                    let opt = ecs::opt_with_echo(&opt, &e);
                    assemble(catalog, zone, asked, Some(&opt), max, transport)
                }
                None => assemble(catalog, zone, asked, Some(&opt), max, transport),
            }
        }
        QueryOpt::Decoded(theirs) => {
            let opt = encode_opt(&answer_edns(ts.nsid.as_ref(), theirs));
            assemble(catalog, zone, asked, opt.as_deref(), max, transport)
        }
    };
    if w.rcode == ResponseCode::NXDomain && ts.settings.on_miss == OnMiss::Silent {
        return (
            Reply::Drop,
            RequestOutcome::Unanswered(Unanswered::SilentMiss),
        );
    }
    (Reply::One(msg), RequestOutcome::Answered(w.rcode))
}

/// The OPT of an answer to a query whose OPT is `theirs` (decoded): as
/// [`dns::response_edns`], with `nsid` when one is configured and `theirs`
/// asks for it (an empty NSID option, RFC 5001).
pub(super) fn answer_edns(nsid: Option<&NSIDPayload>, theirs: &Edns) -> Edns {
    let mut edns = dns::response_edns(Some(theirs));
    let asked = matches!(
        theirs.option(EdnsCode::NSID),
        Some(EdnsOption::NSID(p)) if p.as_ref().is_empty()
    );
    if let (true, Some(nsid)) = (asked, nsid) {
        edns.options_mut().insert(EdnsOption::NSID(nsid.clone()));
    }
    edns
}

/// `edns` as an OPT record in wire form (`None` if it cannot be written).
fn encode_opt(edns: &Edns) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    let mut enc = BinEncoder::new(&mut out);
    Record::from(edns).emit(&mut enc).ok().map(|()| out)
}

/// The OPT this product answers with when the query had one: payload 1232,
/// version 0, the client's DO bit, no options (as `dns::response_edns`).
pub fn opt_record(dnssec_ok: bool) -> [u8; 11] {
    let [p0, p1] = UDP_PAYLOAD_MAX.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    [0, 0, 41, p0, p1, 0, 0, flags, 0, 0, 0]
}

/// The header and question of the query being answered.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    /// Message ID.
    pub id: u16,
    /// The flags word as sent (RD is copied).
    pub flags: u16,
    /// The question section to echo.
    pub question: &'a [u8],
    /// Its name, lower-cased.
    pub qname: &'a NameKey,
    /// Its type.
    pub qtype: RecordType,
    /// DO=1: DNSSEC records wanted (RFC 3225).
    pub dnssec_ok: bool,
}

/// The answer to `asked` from `zone` (a CNAME chain going on in the other
/// zones of `catalog`, see [`write::answer`]), with `opt` (the answer's
/// OPT record, rcode bits zero) when the query had one, within `max_size` bytes.
pub fn assemble(
    catalog: &Catalog,
    zone: &Zone,
    asked: Asked<'_>,
    opt: Option<&[u8]>,
    max_size: u16,
    transport: Transport,
) -> (Vec<u8>, Written) {
    // DO=1 answers carry signatures and proofs: room for a full EDNS one.
    let room = if asked.dnssec_ok { 1232 } else { 512 };
    let mut msg = Vec::with_capacity(room);
    msg.extend_from_slice(&[0; HEADER_LEN]);
    msg.extend_from_slice(asked.question);
    let question = Question {
        qname: asked.qname,
        qtype: asked.qtype,
        all_of_any: transport == Transport::Tcp,
        dnssec_ok: asked.dnssec_ok,
    };
    let w = write::answer(zone, &mut msg, question, catalog);
    // RD copied; AD and CD clear (RFC 4035 §3.1.6, as NSD and Knot answer).
    let mut flags = 0x8000 | (asked.flags & 0x0100) | u16::from(w.rcode.low());
    if w.authoritative {
        flags |= 0x0400;
    }
    let with_opt = u16::from(opt.is_some());
    let mut counts = [1, w.answers, w.authority, w.additional + with_opt];
    if let Some(o) = opt {
        msg.extend_from_slice(o);
    }
    if msg.len() > usize::from(max_size) {
        msg.truncate(HEADER_LEN + asked.question.len());
        if let Some(o) = opt {
            msg.extend_from_slice(o);
        }
        flags |= 0x0200;
        counts = [1, 0, 0, with_opt];
    }
    msg[0..2].copy_from_slice(&asked.id.to_be_bytes());
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        msg[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    (msg, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::TsSettings;
    use crate::ts::query::PlainQuery;
    use hickory_proto::op::Message;
    use hickory_proto::rr::Name;

    /// A TS of the table `a.test.` (`www` only), missing names answered as
    /// `on_miss` says.
    fn table_server(dir: &std::path::Path, on_miss: OnMiss) -> TableServer {
        let table = dir.join("t.txt");
        std::fs::write(&table, "www.a.test 192.0.2.1 A\n").unwrap();
        let origin = "a.test.".parse().unwrap();
        let settings = TsSettings {
            on_miss,
            ..TsSettings::serving("t".into(), vec![table], origin, 300)
        };
        TableServer::load(settings).unwrap()
    }

    /// `name`/A with an OPT, DO=1.
    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        m.set_edns(e);
        m.to_vec().unwrap()
    }

    /// The answer of `ts` to `raw`, read in place or decoded.
    fn answered(ts: &TableServer, raw: &[u8], decoded: bool) -> (Reply, RequestOutcome) {
        let req = Request::udp(raw, "192.0.2.9:5300".parse().unwrap());
        let q = PlainQuery::read(raw).unwrap();
        let catalog = ts.catalog.load();
        let zone = catalog.find(&q.qname, 1).unwrap();
        let edns = crate::dns::decode_query(raw).unwrap().edns.unwrap();
        let query = Query {
            id: q.id,
            flags: q.flags,
            question: q.question,
            qname: &q.qname,
            qtype: q.qtype,
            opt: match decoded {
                false => QueryOpt::InPlace(q.opt.unwrap()),
                true => QueryOpt::Decoded(&edns),
            },
        };
        plain(ts, (&catalog, zone), &req, query, 1232)
    }

    #[test]
    fn a_query_read_in_place_or_decoded_gets_the_same_answer() {
        let dir = tempfile::tempdir().unwrap();
        let ts = table_server(dir.path(), OnMiss::Nxdomain);
        for name in ["www.a.test.", "nope.a.test."] {
            let raw = query(name);
            let (Reply::One(in_place), o1) = answered(&ts, &raw, false) else {
                panic!("{name}: answered");
            };
            let (Reply::One(decoded), o2) = answered(&ts, &raw, true) else {
                panic!("{name}: answered");
            };
            assert_eq!(in_place, decoded, "{name}");
            assert_eq!(o1, o2, "{name}");
        }
        let (Reply::One(msg), _) = answered(&ts, &query("www.a.test."), false) else {
            panic!("answered");
        };
        let m = Message::from_vec(&msg).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert!(m.edns.unwrap().flags().dnssec_ok, "the DO bit echoed");
    }

    #[test]
    fn a_miss_is_dropped_when_on_miss_is_silent_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let ts = table_server(dir.path(), OnMiss::Silent);
        let (reply, outcome) = answered(&ts, &query("nope.a.test."), false);
        assert!(matches!(reply, Reply::Drop));
        assert_eq!(outcome, RequestOutcome::Unanswered(Unanswered::SilentMiss));
        let (reply, outcome) = answered(&ts, &query("www.a.test."), false);
        assert!(matches!(reply, Reply::One(_)));
        assert_eq!(outcome, RequestOutcome::Answered(ResponseCode::NoError));
    }
}
