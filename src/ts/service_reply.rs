//! The answer of a `[[ts.service]]` to a query for its name
//! ([`service_reply`]), on the TS's request path before the zone's own
//! data: only in the service's own zone (the one it was loaded into; a
//! secondary or catalog member zone found below it answers from its own
//! data), A and AAAA from the answer sets, every type the fallback CNAME
//! when the whole name falls back (its target chased as the zone's own
//! CNAMEs are, unless another service holds it), the NSID when asked.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::TableServer;
use super::metrics::RequestOutcome;
use super::service::reply::{Chased, ServiceAnswer, ServiceAsked};
use super::service::select::MAX_PICK;
use super::service::{self, AddrFamily, SetChoice};
use super::wire::NameKey;
use super::zone::{Catalog, Question, Zone, write};
use crate::dns::{self, Transport};
use crate::server::{Reply, Request};

/// The answer of a `[[ts.service]]` to a query for its name in `zone`
/// (`head`: ID, flags, question; `opt`: the query's OPT and its DO bit),
/// its view chosen by the ECS source prefix when the query has one, else by
/// the source address. A and AAAA get the view's answer set for the family;
/// while the name falls back (no endpoint of either family live), every
/// type gets the fallback CNAME and what its target answers. In a zone the
/// TS signs, a DO=1 query gets the answer set's RRSIGs (signed on first
/// use, [`service::signed`]). `None`: no service's name, or not in the
/// service's own zone, another type, a family it has no endpoint of (the
/// zone's NODATA), or a set that could not be signed (the zone's signed
/// RRset of every endpoint answers).
pub(super) fn service_reply(
    ts: &TableServer,
    (catalog, zone): (&Catalog, &Zone),
    req: &Request<'_>,
    (qname, qtype): (&NameKey, RecordType),
    (id, flags, question): (u16, u16, &[u8]),
    opt: Option<bool>,
    max: u16,
) -> Option<(Reply, RequestOutcome)> {
    let idx = ts.services.find(qname.bytes())?;
    let service = ts.services.list.get(idx)?;
    if ts.services.zone_of(idx) != Some(zone.origin_wire()) {
        return None;
    }
    // Malformed options were answered FORMERR before (`respond.rs`).
    let ecs = opt.and_then(|_| service::ecs::find(req.raw).ok().flatten());
    let client = match ecs {
        Some(e) if e.source > 0 => e.addr,
        _ => req.src.ip(),
    };
    let sets = ts.answer_sets.load();
    let view = service.view_of(client);
    let by_family = sets.services.get(idx)?.get(view)?;
    let choice = match qtype {
        RecordType::A => &by_family[AddrFamily::V4 as usize],
        RecordType::AAAA => &by_family[AddrFamily::V6 as usize],
        // The name falls back: a CNAME owner, for every type.
        _ if by_family[0] == SetChoice::Fallback => &by_family[0],
        _ => return None,
    };
    let mut drawn = [0u16; MAX_PICK];
    let answer = match choice {
        SetChoice::NoFamily => return None,
        SetChoice::Servfail => ServiceAnswer::Servfail,
        SetChoice::Fallback => ServiceAnswer::Fallback,
        SetChoice::Records { .. } => {
            let n =
                service::select::with_worker_rng(|rng| choice.draw_into(service, rng, &mut drawn));
            ServiceAnswer::Records(&drawn[..n])
        }
    };
    let dnssec_ok = opt == Some(true);
    // A DO=1 query in a zone signed here: the set's RRSIGs, or the zone's
    // own signed answer when the set cannot be signed (fail-open).
    let rrsigs = match answer {
        ServiceAnswer::Servfail => None,
        _ if !dnssec_ok => None,
        // An unsigned zone (pre-signed zones hold no service: refused at
        // load): DO=1 gets the same answer as DO=0, with no RRSIG.
        _ if zone.signature().is_none() => None,
        answer => {
            let keys = ts.zone_keys.load();
            let keys = keys.get(zone.origin_wire())?;
            let (rtype, members) = match answer {
                ServiceAnswer::Records(m) => (u16::from(qtype), m),
                _ => (u16::from(RecordType::CNAME), &[][..]),
            };
            Some(
                ts.signed_sets
                    .rrsigs(zone, keys, (idx, service), rtype, members)?,
            )
        }
    };
    // The scope: 0 for a source prefix of 0 (RFC 7871 §7.1.2) or a service
    // without views of that family; else its longest view network.
    let ecs = ecs.map(|e| {
        let scope = if e.source == 0 {
            0
        } else {
            service.scope[AddrFamily::of(e.addr) as usize]
        };
        (e, scope)
    });
    let nsid = ts.nsid.as_ref().map(|n| n.as_ref());
    let asked = ServiceAsked {
        id,
        flags,
        question,
        opt,
        ecs,
        max,
        nsid: nsid.filter(|_| opt.is_some() && dns::query_wants_nsid(req.raw)),
    };
    let chase = |msg: &mut Vec<u8>, at: usize| {
        chase_target(
            ts,
            catalog,
            (qname, qtype),
            dnssec_ok,
            req.transport,
            msg,
            at,
        )
    };
    let (msg, rcode) =
        service::reply::write(service, answer, rrsigs.as_deref(), &asked, Some(&chase));
    let rcode = ResponseCode::from_low(rcode);
    Some((Reply::One(msg), RequestOutcome::Answered(rcode)))
}

/// What the fallback CNAME's target (written at `at` in `msg`) answers for
/// `qtype`, from the zone of the TS holding it, as a CNAME of that zone is
/// followed (the rest of the chain, the data, or a negative answer with
/// that zone's SOA). Nothing for a CNAME question (it ends at the CNAME,
/// RFC 1034 §4.3.2), for ANY and RRSIG (answered at the owner), for a
/// target no zone of the TS holds (the client's resolver follows it), and
/// for a target another service holds (its answer follows health: asked on
/// its own).
fn chase_target(
    ts: &TableServer,
    catalog: &Catalog,
    (qname, qtype): (&NameKey, RecordType),
    dnssec_ok: bool,
    transport: Transport,
    msg: &mut Vec<u8>,
    at: usize,
) -> Chased {
    let none = Chased::default();
    if matches!(
        qtype,
        RecordType::CNAME | RecordType::ANY | RecordType::RRSIG
    ) {
        return none;
    }
    let Some(target) = msg.get(at..).and_then(NameKey::read) else {
        return none;
    };
    if ts.services.find(target.bytes()).is_some() {
        return none;
    }
    let Some(zone) = catalog.find(&target, u16::from(qtype)) else {
        return none;
    };
    if zone.is_expired() {
        return none;
    }
    let q = Question {
        qname,
        qtype,
        all_of_any: transport == Transport::Tcp,
        dnssec_ok,
    };
    let w = write::answer_from(zone, msg, q, (at, target), catalog);
    Chased {
        answers: w.answers,
        authority: w.authority,
        additional: w.additional,
        rcode: w.rcode.low(),
    }
}
