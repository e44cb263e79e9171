//! The table server's request path: [`Handler`] for [`TableServer`] (fault
//! knobs first), and, as free functions over it, the answer to one request (AXFR, NOTIFY, plain queries on a
//! fast path, errors) and what it was, for the counters.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Edns, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::TableServer;
use super::answer::{self, PlainQuery};
use super::metrics::{RequestOutcome, Unanswered};
use super::service_reply::service_reply;
use super::wire::NameKey;
use super::xfr::{axfr, ixfr, tsig};
use super::zone::{Catalog, Zone};
use crate::config::OnMiss;
use crate::dns::{self, ClientQuery, ResponseWriter, Transport};
use crate::dnstap::{Dnstap, TapEvent, TapKind, TapTime, TapTransport};
use crate::server::{Action, Handler, Reply, Request};

fn may_transfer(ts: &TableServer, ip: IpAddr) -> bool {
    ts.settings.axfr_allow.iter().any(|n| n.contains(&ip))
}

/// The answer to one request (before fault injection), counted in [`TableServer::metrics`].
fn reply_to(ts: &TableServer, req: Request<'_>) -> Reply {
    let (reply, outcome) = respond(ts, req);
    ts.metrics.record(outcome);
    reply
}

/// The OPT of an answer to `q`: none without one in the query; with the
/// NSID when one is configured and `q` asks for it (an empty NSID option).
fn answer_edns(ts: &TableServer, q: &ClientQuery) -> Option<Edns> {
    let theirs = q.edns.as_ref()?;
    let mut edns = dns::response_edns(Some(theirs));
    let asked = matches!(
        theirs.option(EdnsCode::NSID),
        Some(EdnsOption::NSID(p)) if p.as_ref().is_empty()
    );
    if let (true, Some(nsid)) = (asked, &ts.nsid) {
        edns.options_mut().insert(EdnsOption::NSID(nsid.clone()));
    }
    Some(edns)
}

/// An answer with `rcode` and no records to `q` (its question and OPT
/// echoed, the NSID added when asked).
fn rcode_answer(ts: &TableServer, q: &ClientQuery, rcode: ResponseCode) -> Reply {
    let edns = answer_edns(ts, q);
    let meta = q.response_metadata(rcode);
    let mut w = ResponseWriter::new(meta, Some(&q.query), edns.as_ref());
    Reply::One(w.finish(dns::TCP_PAYLOAD_MAX))
}

/// The answer to one request and what it was, for the counters: with a
/// transfer key, a signed request or a transfer goes through its TSIG
/// check first (`tsig.rs`).
fn respond(ts: &TableServer, req: Request<'_>) -> (Reply, RequestOutcome) {
    // A NOTIFY (opcode 4, a query) for the secondary zones, TSIG and all.
    let notify = req.raw.get(2).is_some_and(|b| b & 0xf8 == 4 << 3);
    if let (true, Some(hook)) = (notify, ts.notify_hook.get()) {
        return match hook(req.raw, req.src.ip()) {
            Some(answer) => {
                let low = answer.get(3).map_or(0, |b| b & 0x0f);
                let rcode = ResponseCode::from(0, low);
                (Reply::One(answer), RequestOutcome::Answered(rcode))
            }
            None => (
                Reply::Drop,
                RequestOutcome::Unanswered(Unanswered::Malformed),
            ),
        };
    }
    let signed = tsig::respond_signed(
        &ts.xfr_key,
        &ts.settings.name,
        &ts.metrics.xfr,
        &req,
        |q, rcode| rcode_answer(ts, q, rcode),
        |r, room| respond_unsigned(ts, r, room),
    );
    if let Some(done) = signed {
        return done;
    }
    respond_unsigned(ts, req, 0)
}

/// [`respond`] for a request without a TSIG (or stripped of
/// it), each message leaving `room` bytes under the client's limit (for
/// the TSIG its answer will be signed with).
fn respond_unsigned(ts: &TableServer, req: Request<'_>, room: usize) -> (Reply, RequestOutcome) {
    if let Some(done) = respond_plain(ts, &req, room) {
        return done;
    }
    let q = match dns::decode_query(req.raw) {
        Ok(q) => q,
        Err(reject) => {
            let outcome = RequestOutcome::of_reject(&reject);
            let Some(mut resp) = reject.response() else {
                return (Reply::Drop, outcome);
            };
            // FORMERR, NOTIMP, BADVERS: the NSID goes into the OPT the
            // rejection echoes, when the query could be read that far.
            if let Some(nsid) = &ts.nsid
                && dns::query_wants_nsid(req.raw)
            {
                let max = dns::client_max_size(req.raw, req.transport);
                dns::add_nsid(&mut resp, nsid.as_ref(), max);
            }
            return (Reply::One(resp), outcome);
        }
    };
    if super::gslb::ecs::find(req.raw).is_err() {
        // RFC 7871 §7.1.1: a malformed ECS option is FORMERR (as gdnsd).
        let rcode = ResponseCode::FormErr;
        return (rcode_answer(ts, &q, rcode), RequestOutcome::Answered(rcode));
    }
    let refuse = |q: &ClientQuery| {
        (
            rcode_answer(ts, q, ResponseCode::Refused),
            RequestOutcome::Answered(ResponseCode::Refused),
        )
    };
    // We are a primary: NOTIFY is for secondaries.
    if q.header.metadata.op_code == OpCode::Notify || q.query.query_class() != DNSClass::IN {
        return refuse(&q);
    }
    let qtype = q.query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        // AXFR over TCP only; IXFR over UDP too (RFC 1995 §2).
        let udp_axfr = qtype == RecordType::AXFR && req.transport != Transport::Tcp;
        if udp_axfr || !may_transfer(ts, req.src.ip()) {
            return refuse(&q);
        }
        let catalog = ts.catalog.load();
        return match catalog.named(q.query.name()) {
            Some(zone) if zone.is_expired() => (
                rcode_answer(ts, &q, ResponseCode::ServFail),
                RequestOutcome::Answered(ResponseCode::ServFail),
            ),
            Some(zone) => transfer(ts, zone, &q, &req, room),
            None => refuse(&q),
        };
    }
    let catalog = ts.catalog.load();
    let question = match encode_question(&q) {
        Some(bytes) => bytes,
        None => return refuse(&q),
    };
    let Some(qname) = NameKey::read(&question) else {
        return refuse(&q);
    };
    let Some(zone) = catalog.find(&qname, u16::from(qtype)) else {
        return refuse(&q);
    };
    if zone.is_expired() {
        // A secondary zone past its SOA EXPIRE: no answer vouched for.
        let rcode = ResponseCode::ServFail;
        return (rcode_answer(ts, &q, rcode), RequestOutcome::Answered(rcode));
    }
    let flags = dns::WireHeader::read(req.raw).map_or(0, |h| h.flags);
    let head = (q.header.metadata.id, flags, &question[..]);
    let opt = q.edns.as_ref().map(|e| e.flags().dnssec_ok);
    let max = less(q.max_size(req.transport), room);
    let asked = (&qname, qtype);
    if let Some(done) = service_reply(ts, (&catalog, zone), &req, asked, head, opt, max) {
        return done;
    }
    let opt = answer_edns(ts, &q).and_then(|e| {
        let mut out = Vec::with_capacity(32);
        let mut enc = BinEncoder::new(&mut out);
        Record::from(&e).emit(&mut enc).ok().map(|()| out)
    });
    let asked = answer::Asked {
        id: q.header.metadata.id,
        flags: dns::WireHeader::read(req.raw).map_or(0, |h| h.flags),
        question: &question,
        qname: &qname,
        qtype,
        dnssec_ok: q.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
    };
    finish(
        ts,
        (&catalog, zone),
        asked,
        opt.as_deref(),
        less(q.max_size(req.transport), room),
        req.transport,
    )
}

/// The answer to an ordinary query read in place ([`PlainQuery`]), or
/// `None` when it needs the full decoder (no zone for it, an NSID to add).
fn respond_plain(
    ts: &TableServer,
    req: &Request<'_>,
    room: usize,
) -> Option<(Reply, RequestOutcome)> {
    let q = PlainQuery::read(req.raw)?;
    if q.opt.is_some_and(|o| o.wants_nsid) && ts.nsid.is_some() {
        return None;
    }
    // A malformed ECS option takes the full path, which answers FORMERR.
    if q.opt.is_some_and(|o| o.client_subnet) && super::gslb::ecs::find(req.raw).is_err() {
        return None;
    }
    let catalog = ts.catalog.load();
    let zone = catalog.find(&q.qname, u16::from(q.qtype))?;
    if zone.is_expired() {
        return None;
    }
    let max = less(q.max_size(req.transport), room);
    let head = (q.id, q.flags, q.question);
    let opt = q.opt.map(|o| o.dnssec_ok);
    let asked = (&q.qname, q.qtype);
    if let Some(done) = service_reply(ts, (&catalog, zone), req, asked, head, opt, max) {
        return Some(done);
    }
    // A well-formed ECS option is echoed at scope 0 (the answer is the
    // same for every subnet, RFC 7871 §7.2.1); only then is the OPT built
    // on the heap.
    let ecs = q.opt.filter(|o| o.client_subnet);
    let ecs = ecs.and_then(|_| super::gslb::ecs::find(req.raw).ok().flatten());
    let opt = q.opt.map(|o| answer::opt_record(o.dnssec_ok));
    let echo = opt
        .zip(ecs)
        .map(|(o, e)| super::gslb::ecs::opt_with_echo(&o, &e));
    let opt: Option<&[u8]> = echo.as_deref().or(opt.as_ref().map(|o| &o[..]));
    let asked = answer::Asked {
        id: q.id,
        flags: q.flags,
        question: q.question,
        qname: &q.qname,
        qtype: q.qtype,
        dnssec_ok: q.opt.is_some_and(|o| o.dnssec_ok),
    };
    Some(finish(ts, (&catalog, zone), asked, opt, max, req.transport))
}

/// The answer to an AXFR or IXFR of `zone` (from an allowed client): the
/// whole zone, the differences since the client's serial, or the SOA
/// alone (see [`ixfr`](super::xfr::ixfr)); over TCP, streamed, at most
/// [`axfr::MAX_TRANSFERS`] at once. Each message leaves `room` bytes
/// (for its TSIG) under the client's limit, or TCP's.
fn transfer(
    ts: &TableServer,
    zone: &Zone,
    q: &ClientQuery,
    req: &Request<'_>,
    room: usize,
) -> (Reply, RequestOutcome) {
    use axfr::Content;
    use ixfr::Since;
    let counters = &ts.metrics.xfr;
    let raw = (req.raw, q.question_end);
    // An OPT in the request gets one in every message (RFC 6891
    // §6.1.1), without the NSID (transfers carry none).
    let opt = q
        .edns
        .as_ref()
        .map(|e| answer::opt_record(e.flags().dnssec_ok));
    let udp = req.transport != Transport::Tcp;
    let count = |c: &std::sync::atomic::AtomicU64| c.fetch_add(1, Relaxed);
    let content = if q.query.query_type() == RecordType::IXFR {
        let Some(serial) = ixfr_serial(req.raw) else {
            // RFC 1995 §3: the client's SOA goes in the authority section.
            let rcode = ResponseCode::FormErr;
            return (rcode_answer(ts, q, rcode), RequestOutcome::Answered(rcode));
        };
        match ts
            .journal
            .since(&ixfr::journal_key(zone), serial, zone.serial())
        {
            Since::UpToDate => Content::Soa,
            Since::Changes(d) => Content::Changes(d),
            Since::Unknown if udp => Content::Soa,
            Since::Unknown => Content::Full,
        }
    } else {
        Content::Full
    };
    let ok = RequestOutcome::Answered(ResponseCode::NoError);
    let max = usize::from(q.max_size(req.transport)).saturating_sub(room);
    if udp || matches!(content, Content::Soa) {
        if let Content::Changes(_) = content
            && let Some(m) = axfr::single(zone, content, (raw, opt), max, counters)
        {
            count(&counters.ixfr_incremental);
            return (Reply::One(m), ok);
        }
        count(&counters.ixfr_soa);
        return match axfr::single(zone, Content::Soa, (raw, opt), max, counters) {
            Some(m) => (Reply::One(m), ok),
            None => (
                rcode_answer(ts, q, ResponseCode::ServFail),
                RequestOutcome::Answered(ResponseCode::ServFail),
            ),
        };
    }
    let Some(slot) = axfr::TransferSlot::take(counters, axfr::MAX_TRANSFERS) else {
        count(&counters.refused_busy);
        tracing::debug!(zone = %zone.origin(), "transfer refused: {} under way", axfr::MAX_TRANSFERS);
        let rcode = ResponseCode::ServFail;
        return (rcode_answer(ts, q, rcode), RequestOutcome::Answered(rcode));
    };
    count(match (&content, q.query.query_type()) {
        (Content::Changes(_), _) => &counters.ixfr_incremental,
        (_, RecordType::IXFR) => &counters.ixfr_full,
        _ => &counters.axfr,
    });
    let t = axfr::Transfer::new(
        zone,
        content,
        raw,
        axfr::XFR_MESSAGE_BUDGET,
        std::sync::Arc::clone(counters),
        Some(slot),
    )
    .leaving(room)
    .with_opt(opt);
    (Reply::Stream(Box::new(t)), ok)
}

/// The answer from `zone` (a CNAME chain going on in the other zones of
/// `catalog`), or a drop for a miss when `on_miss` is silent.
fn finish(
    ts: &TableServer,
    (catalog, zone): (&Catalog, &Zone),
    asked: answer::Asked<'_>,
    opt: Option<&[u8]>,
    max: u16,
    transport: Transport,
) -> (Reply, RequestOutcome) {
    let (msg, w) = answer::assemble(catalog, zone, asked, opt, max, transport);
    if w.rcode == ResponseCode::NXDomain && ts.settings.on_miss == OnMiss::Silent {
        return (
            Reply::Drop,
            RequestOutcome::Unanswered(Unanswered::SilentMiss),
        );
    }
    (Reply::One(msg), RequestOutcome::Answered(w.rcode))
}

/// `max` less `room` (what a TSIG will add), never below 0.
fn less(max: u16, room: usize) -> u16 {
    let room = u16::try_from(room).unwrap_or(u16::MAX);
    max.saturating_sub(room)
}

/// The serial of the SOA an IXFR request `raw` carries in its authority
/// section (RFC 1995 §3).
fn ixfr_serial(raw: &[u8]) -> Option<u32> {
    let m = hickory_proto::op::Message::from_vec(raw).ok()?;
    m.authorities.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::SOA(s) => Some(s.serial),
        _ => None,
    })
}

/// The question of `q` in wire form, its name uncompressed.
fn encode_question(q: &ClientQuery) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut out);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    q.query.emit(&mut enc).ok()?;
    Some(out)
}

/// Whether `raw` asks the LS's default health probe question, `. SOA`
/// (`[ls.health] query`): one question, the root name, type SOA. The fault
/// knobs' delay spares such queries: a probe waits at most its timeout
/// (500 ms by default), so a delay longer than that would keep every backend
/// down and the experiment would measure health checks instead of client
/// latency. Drops still apply to probes, as real packet loss does: a
/// backend loses `fall` probes in a row only as often as the drop share says.
pub fn looks_like_health_probe(raw: &[u8]) -> bool {
    let Some(h) = dns::WireHeader::read(raw) else {
        return false;
    };
    // Root name (one zero byte) at offset 12, then QTYPE SOA (6).
    !h.is_response() && h.qdcount == 1 && raw.get(12..15) == Some(&[0, 0, 6][..])
}

/// What an AUTH_RESPONSE needs of its query, kept while it is answered.
#[derive(Debug, Clone, Copy)]
struct Tapped {
    /// The client.
    src: SocketAddr,
    /// The TS's address.
    listen: Option<SocketAddr>,
    /// UDP or TCP.
    transport: TapTransport,
    /// When the query came.
    at: Option<TapTime>,
}

impl Tapped {
    /// Writes the AUTH_RESPONSE of `reply` (one message; a transfer's
    /// stream and a dropped query write none).
    fn answered(&self, dnstap: &Dnstap, reply: &Reply) {
        let Reply::One(bytes) = reply else {
            return;
        };
        let mut e = TapEvent::new(TapKind::AuthResponse, self.transport, self.src, bytes);
        e.response_addr = self.listen;
        e.query_time = self.at;
        dnstap.log(&e);
    }
}

/// Writes the AUTH_QUERY of `req` when `ts`'s dnstap asks for it; what its
/// AUTH_RESPONSE will need when dnstap asks for that.
fn tapped(ts: &TableServer, req: &Request<'_>) -> Option<Tapped> {
    let (dnstap, listen) = (&ts.dnstap.0, ts.dnstap.1);
    let query = dnstap.enabled(TapKind::AuthQuery);
    let response = dnstap.enabled(TapKind::AuthResponse);
    if !query && !response {
        return None;
    }
    let tapped = Tapped {
        src: req.src,
        listen,
        transport: match req.transport {
            Transport::Udp => TapTransport::Udp,
            Transport::Tcp => TapTransport::Tcp,
        },
        at: TapTime::now(),
    };
    if query {
        let mut e = TapEvent::new(TapKind::AuthQuery, tapped.transport, req.src, req.raw);
        e.response_addr = listen;
        e.query_time = tapped.at;
        dnstap.log(&e);
    }
    response.then_some(tapped)
}

impl Handler for TableServer {
    fn tcp_cap_refused(&self) {
        self.metrics
            .tcp_cap_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn handle(&self, req: Request<'_>) -> Action {
        let tap = tapped(self, &req);
        let f = self.settings.fault;
        if f.drop_ratio > 0.0 && rand::random::<f64>() < f.drop_ratio {
            self.metrics
                .record(RequestOutcome::Unanswered(Unanswered::Fault));
            return Action::Now(Reply::Drop);
        }
        let probe = looks_like_health_probe(req.raw);
        let reply = reply_to(self, req);
        if f.delay_ms > 0 && f.delay_ratio > 0.0 && !probe && rand::random::<f64>() < f.delay_ratio
        {
            let delay = Duration::from_millis(f.delay_ms);
            let dnstap = tap.is_some().then(|| self.dnstap().clone());
            return Action::Later(Box::pin(async move {
                tokio::time::sleep(delay).await;
                if let (Some(dnstap), Some(tap)) = (dnstap, tap) {
                    tap.answered(&dnstap, &reply);
                }
                reply
            }));
        }
        if let Some(tap) = tap {
            tap.answered(self.dnstap(), &reply);
        }
        Action::Now(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    #[test]
    fn the_default_health_probe_is_recognised_and_nothing_else() {
        use hickory_proto::op::{Message, Query};
        let q = |name: &str, t: RecordType| {
            let mut m = Message::query();
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
            m.to_vec().unwrap()
        };
        assert!(looks_like_health_probe(&q(".", RecordType::SOA)));
        assert!(!looks_like_health_probe(&q(".", RecordType::NS)));
        assert!(!looks_like_health_probe(&q("example.", RecordType::SOA)));
        let mut resp = q(".", RecordType::SOA);
        resp[2] |= 0x80;
        assert!(!looks_like_health_probe(&resp), "a response");
        assert!(!looks_like_health_probe(&[0u8; 5]));
    }
}
