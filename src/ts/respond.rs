//! The table server's request pipeline, as Knot's `process_query.c`:
//! [`Handler`] for [`TableServer`] (dnstap and the fault knobs first), then,
//! as free functions over it, each request in order: a NOTIFY handed to the
//! secondaries; its TSIG verified (`verify`: without a transfer key, a
//! request with no additional record is only looked at for that); the
//! answer by kind (`answer`: a plain query read in place or decoded and
//! answered from its zone by [`answer::plain`], a transfer, a refusal); the
//! answer signed last (`sign`); a UDP answer rate limited ([`rrl`]); and
//! what it was, for the counters. The
//! transfer key's policy (which requests must be signed, a transfer's
//! messages signed in turn) is [`tsig`]'s, the TSIG codec `dns::tsig`'s.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::answer::{self, QueryOpt};
use super::metrics::{RequestOutcome, Unanswered};
use super::query::PlainQuery;
use super::rrl;
use super::wire::NameKey;
use super::xfr::tsig::{self, TsigRefused, TsigVerdict};
use super::xfr::{axfr, ixfr};
use super::zone::Zone;
use super::{TableServer, cookies};
use crate::dns::cookie::{CookieCheck, MalformedCookie};
use crate::dns::tsig::{self as codec, Signer};
use crate::dns::{self, ClientQuery, ResponseWriter, Transport};
use crate::dnstap::{Dnstap, TapEvent, TapKind, TapTime, TapTransport};
use crate::server::{Action, Handler, Reply, Request};

fn may_transfer(ts: &TableServer, ip: IpAddr) -> bool {
    ts.settings.axfr_allow.iter().any(|n| n.contains(&ip))
}

/// The answer to one request (before fault injection), rate limited,
/// counted in [`TableServer::metrics`].
fn reply_to(ts: &TableServer, req: Request<'_>) -> Reply {
    // Its COOKIE read once, for the answer and for the rate limit.
    let now = cookies::cookie_now();
    let cookie = cookies::check(ts, &req, now);
    let proven = cookies::server_cookie_valid(cookie.ok().flatten().as_ref());
    let answer = respond(ts, req, (cookie, now));
    let (reply, outcome) = limited(ts, &req, proven, answer);
    ts.metrics.record(outcome);
    reply
}

/// `answer` as response rate limiting lets it go ([`rrl::limit`]): UDP
/// answers only (the XDP path's too); TCP is never limited.
fn limited(
    ts: &TableServer,
    req: &Request<'_>,
    proven: bool,
    answer: (Reply, RequestOutcome),
) -> (Reply, RequestOutcome) {
    let Some(limiter) = ts.rrl.as_ref().filter(|_| req.transport == Transport::Udp) else {
        return answer;
    };
    // A client whose server cookie is valid has proven its address: never
    // limited.
    let client = (req.src.ip(), proven);
    rrl::limit(limiter, &ts.catalog.load(), &ts.metrics.rrl, client, answer)
}

/// An answer with `rcode` and no records to `q` (its question and OPT
/// echoed, the NSID added when asked).
fn rcode_answer(ts: &TableServer, q: &ClientQuery, rcode: ResponseCode) -> Reply {
    let edns = q
        .edns
        .as_ref()
        .map(|e| answer::answer_edns(ts.nsid.as_ref(), e));
    let meta = q.response_metadata(rcode);
    let mut w = ResponseWriter::new(meta, Some(&q.query), edns.as_ref());
    Reply::One(w.finish(dns::TCP_PAYLOAD_MAX))
}

/// The answer to one request and what it was, for the counters: a NOTIFY
/// for the secondaries, else its DNS Cookie checked ([`cookies`]), verified,
/// answered (with the answer's cookie), and signed when it was.
fn respond(
    ts: &TableServer,
    req: Request<'_>,
    (cookie, now): (Result<Option<CookieCheck>, MalformedCookie>, u32),
) -> (Reply, RequestOutcome) {
    if let Some(done) = notify(ts, &req) {
        return done;
    }
    if let Some(done) = cookies::cookie_only(ts, &req, (cookie, now)) {
        return done;
    }
    if let Some(rcode) = cookies::refusal(&req, cookie) {
        let (reply, outcome) = rcode_to(ts, req.raw, rcode);
        let cookie = cookie.ok().flatten();
        return (
            cookies::stamp(ts, &req, (cookie.as_ref(), now), reply),
            outcome,
        );
    }
    let cookie = cookie.ok().flatten();
    let (cookie, room) = ((cookie.as_ref(), now), cookies::room(cookie.as_ref()));
    match verify(ts, req.raw) {
        TsigVerdict::Unsigned => {
            let (reply, outcome) = answer(ts, &req, room);
            (cookies::stamp(ts, &req, cookie, reply), outcome)
        }
        // Answered as if unsigned, each message sized to the client's limit
        // less the TSIG it will carry (RFC 8945 §5.3), then signed.
        TsigVerdict::Signed(key, verified) => {
            let plain = verified.unsigned(req.raw);
            let unsigned = Request { raw: &plain, ..req };
            let (reply, outcome) = answer(ts, &unsigned, key.tsig_len() + room);
            let reply = cookies::stamp(ts, &unsigned, cookie, reply);
            (sign(ts, reply, Signer::answer(key, &verified)), outcome)
        }
        TsigVerdict::Refused(refusal) => refuse(ts, &req, &refusal),
    }
}

/// The answer to a NOTIFY (opcode 4, a query) for the secondary zones, TSIG
/// and all, when the TS has secondaries; `None` for any other request.
fn notify(ts: &TableServer, req: &Request<'_>) -> Option<(Reply, RequestOutcome)> {
    let notify = req.raw.get(2).is_some_and(|b| b & 0xf8 == 4 << 3);
    let hook = ts.notify_hook.get().filter(|_| notify)?;
    Some(match hook(req.raw, req.src.ip()) {
        Some(answer) => {
            let low = answer.get(3).map_or(0, |b| b & 0x0f);
            let rcode = ResponseCode::from(0, low);
            (Reply::One(answer), RequestOutcome::Answered(rcode))
        }
        None => (
            Reply::Drop,
            RequestOutcome::Unanswered(Unanswered::Malformed),
        ),
    })
}

/// The TSIG of the request `raw` checked against the transfer key (with
/// none, a signed request is BADKEY), and what the key's policy makes of
/// it. A TS without a key looks no further than ARCOUNT 0 (most queries).
fn verify(ts: &TableServer, raw: &[u8]) -> TsigVerdict {
    let key = ts.xfr_key.get();
    if key.is_none() && dns::u16_at(raw, 10).is_none_or(|ar| ar == 0) {
        return TsigVerdict::Unsigned;
    }
    let now = crate::clock::unix_now();
    let checked = match &key {
        Some(key) => codec::verify_request(raw, key, now),
        None => codec::verify_without_key(raw),
    };
    TsigVerdict::of(key, raw, checked, now)
}

/// `reply`, the answer to a verified request, signed by `signer` (RFC 8945
/// §5.3): one message, or a transfer's each on the one before.
fn sign(ts: &TableServer, reply: Reply, mut signer: Signer) -> Reply {
    match reply {
        Reply::Drop => Reply::Drop,
        Reply::One(mut msg) => {
            signer.sign(&mut msg);
            Reply::One(msg)
        }
        Reply::Stream(messages) => {
            let counters = &ts.metrics.xfr;
            Reply::Stream(tsig::signed_stream(
                messages,
                signer,
                &ts.settings.name,
                counters,
            ))
        }
    }
}

/// The answer to `req` refused for its TSIG (counted, logged within a
/// budget): `refusal`'s rcode to the request without its TSIG, with the
/// TSIG error when it has one.
fn refuse(ts: &TableServer, req: &Request<'_>, refusal: &TsigRefused) -> (Reply, RequestOutcome) {
    ts.xfr_key.refuse(&ts.settings.name, req, refusal.why);
    let plain = refusal.unsigned(req.raw);
    let (mut reply, outcome) = rcode_to(ts, plain.as_deref().unwrap_or(req.raw), refusal.rcode);
    if let Reply::One(msg) = &mut reply {
        refusal.add_tsig(msg);
    }
    (reply, outcome)
}

/// An answer with `rcode` to the request `raw`; one the decoder refuses
/// gets the decoder's answer (FORMERR for a body that cannot be read, as
/// without a key: RFC 8945 §5.2), and one whose header cannot be read none.
fn rcode_to(ts: &TableServer, raw: &[u8], rcode: ResponseCode) -> (Reply, RequestOutcome) {
    match dns::decode_query(raw) {
        Ok(q) => (rcode_answer(ts, &q, rcode), RequestOutcome::Answered(rcode)),
        Err(reject) => (
            reject.response().map_or(Reply::Drop, Reply::One),
            RequestOutcome::of_reject(&reject),
        ),
    }
}

/// The answer to `req` (without a TSIG, or stripped of it), each message
/// leaving `room` bytes under the client's limit (for the TSIG its answer
/// will be signed with): read in place when it is a plain query, else
/// decoded.
fn answer(ts: &TableServer, req: &Request<'_>, room: usize) -> (Reply, RequestOutcome) {
    if let Some(done) = answer_in_place(ts, req, room) {
        return done;
    }
    answer_decoded(ts, req, room)
}

/// The answer to a plain query read in place ([`PlainQuery`]), or `None`
/// when it needs the full decoder (no zone for it, an expired one, an NSID
/// to add, a malformed ECS option, which the decoder's path answers FORMERR).
fn answer_in_place(
    ts: &TableServer,
    req: &Request<'_>,
    room: usize,
) -> Option<(Reply, RequestOutcome)> {
    let q = PlainQuery::read(req.raw)?;
    if q.opt.is_some_and(|o| o.wants_nsid) && ts.nsid.is_some() {
        return None;
    }
    if q.opt.is_some_and(|o| o.client_subnet) && super::service::ecs::find(req.raw).is_err() {
        return None;
    }
    let catalog = ts.catalog.load();
    let zone = catalog.find(&q.qname, u16::from(q.qtype))?;
    if zone.is_expired() {
        return None;
    }
    let max = less(q.max_size(req.transport), room);
    let query = answer::Query {
        id: q.id,
        flags: q.flags,
        question: q.question,
        qname: &q.qname,
        qtype: q.qtype,
        opt: q.opt.map_or(QueryOpt::Absent, QueryOpt::InPlace),
    };
    let done = answer::plain(ts, (&catalog, zone), req, query, max);
    zone.queries().count(done.1);
    Some(done)
}

/// The answer to `req` decoded: the decoder's rejection (FORMERR, NOTIMP,
/// BADVERS, the NSID added when asked), FORMERR for a malformed ECS option,
/// REFUSED for a NOTIFY (we are a primary), another class, a transfer not
/// allowed or a name in no zone, SERVFAIL from an expired zone, a transfer,
/// or the zone's answer ([`answer::plain`]).
fn answer_decoded(ts: &TableServer, req: &Request<'_>, room: usize) -> (Reply, RequestOutcome) {
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
    if super::service::ecs::find(req.raw).is_err() {
        // RFC 7871 §7.1.1: a malformed ECS option is FORMERR (as gdnsd).
        let rcode = ResponseCode::FormErr;
        return (rcode_answer(ts, &q, rcode), RequestOutcome::Answered(rcode));
    }
    // Refused, not ours: counted as no zone's (`zone="-"`).
    let refuse = |q: &ClientQuery| {
        let outcome = RequestOutcome::Answered(ResponseCode::Refused);
        ts.metrics.no_zone.count(outcome);
        (rcode_answer(ts, q, ResponseCode::Refused), outcome)
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
        let Some(zone) = catalog.named(q.query.name()) else {
            return refuse(&q);
        };
        let done = if zone.is_expired() {
            (
                rcode_answer(ts, &q, ResponseCode::ServFail),
                RequestOutcome::Answered(ResponseCode::ServFail),
            )
        } else {
            transfer(ts, zone, &q, req, room)
        };
        zone.queries().count(done.1);
        return done;
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
        zone.queries().count(RequestOutcome::Answered(rcode));
        return (rcode_answer(ts, &q, rcode), RequestOutcome::Answered(rcode));
    }
    let query = answer::Query {
        id: q.header.metadata.id,
        flags: dns::WireHeader::read(req.raw).map_or(0, |h| h.flags),
        question: &question,
        qname: &qname,
        qtype,
        opt: q.edns.as_ref().map_or(QueryOpt::Absent, QueryOpt::Decoded),
    };
    let max = less(q.max_size(req.transport), room);
    let done = answer::plain(ts, (&catalog, zone), req, query, max);
    zone.queries().count(done.1);
    done
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
    fn proxy_gate(&self) -> Option<&crate::server::proxy_gate::ProxyGate> {
        self.proxy.as_ref()
    }

    fn tcp_cap_refused(&self) {
        self.metrics
            .tcp_cap_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn tcp_share_refused(&self) {
        self.metrics
            .tcp_share_refused
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
