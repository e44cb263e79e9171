//! A service's answer on the wire ([`write`]): the header (ID, RD copied,
//! AA), the question echoed byte for byte, the endpoints' precompiled
//! records (or the fallback CNAME, and what the caller chases of its
//! target, or SERVFAIL with none), their RRSIGs in a zone the TS signs (a
//! DO=1 query), and, when the query had an OPT, one back with the ECS
//! option echoed at the answer's scope and the NSID when asked. A SERVFAIL
//! is the authority's own ("no live endpoint"): AA=1, and with an OPT an
//! Extended DNS Error (RFC 8914, code 0 "Other") saying so. An answer over
//! the client's size goes out truncated (TC=1).
use super::compiled::Service;
use super::ecs::ClientSubnet;
use super::signed::Rrsigs;
use crate::dns::HEADER_LEN;

/// What a service answers one query.
#[derive(Debug, Clone, Copy)]
pub enum ServiceAnswer<'a> {
    /// These endpoints (indexes into the service's), in order.
    Records(&'a [u16]),
    /// The fallback CNAME.
    Fallback,
    /// SERVFAIL.
    Servfail,
}

/// What of a query a service answer needs.
#[derive(Debug, Clone, Copy)]
pub struct ServiceAsked<'a> {
    /// Message ID.
    pub id: u16,
    /// The flags word as sent (RD is copied).
    pub flags: u16,
    /// The question section, echoed.
    pub question: &'a [u8],
    /// The query had an OPT: the answer has one; its DO bit.
    pub opt: Option<bool>,
    /// Its ECS option, when it had one, and the scope to echo.
    pub ecs: Option<(ClientSubnet, u8)>,
    /// The largest answer the client takes.
    pub max: u16,
    /// The NSID to add (the query asked for it and the TS has one).
    pub nsid: Option<&'a [u8]>,
}

/// What a chase of the fallback CNAME's target wrote after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chased {
    /// Records in the answer section.
    pub answers: u16,
    /// Records in the authority section.
    pub authority: u16,
    /// Records in the additional section (the OPT not counted).
    pub additional: u16,
    /// The RCODE of the chain's end (NOERROR or NXDOMAIN, RFC 6604).
    pub rcode: u8,
}

/// The EXTRA-TEXT of the Extended DNS Error on a service's SERVFAIL.
pub const NO_LIVE_ENDPOINT: &str = "no live endpoint (when_all_down = servfail)";

/// Writes what the fallback CNAME's target answers after it: given the
/// message so far and where the target name starts in it.
pub type Chase<'c> = &'c dyn Fn(&mut Vec<u8>, usize) -> Chased;

/// The answer `answer` of `service` to `asked`, with `rrsigs` after its
/// records (a signed zone, DO=1), the fallback CNAME's target chased by
/// `chase` when given, and its RCODE (0, 2 or 3).
pub fn write(
    service: &Service,
    answer: ServiceAnswer<'_>,
    rrsigs: Option<&Rrsigs>,
    asked: &ServiceAsked<'_>,
    chase: Option<Chase<'_>>,
) -> (Vec<u8>, u8) {
    let mut msg = Vec::with_capacity(512);
    msg.extend_from_slice(&[0; HEADER_LEN]);
    msg.extend_from_slice(asked.question);
    let mut answers: u16 = 0;
    let mut target_at = None;
    let mut rcode = match answer {
        ServiceAnswer::Servfail => 2,
        ServiceAnswer::Fallback => {
            if let Some(r) = &service.fallback {
                // Owner (2), type, class, TTL, RDLENGTH (10): the target.
                target_at = Some(msg.len() + 12);
                msg.extend_from_slice(r);
                answers = 1;
            }
            0
        }
        ServiceAnswer::Records(members) => {
            for &m in members {
                if let Some(e) = service.endpoints.get(usize::from(m)) {
                    msg.extend_from_slice(&e.record);
                    answers += 1;
                }
            }
            0
        }
    };
    if rcode == 0
        && answers > 0
        && let Some(sigs) = rrsigs
    {
        msg.extend_from_slice(&sigs.wire);
        answers += sigs.count;
    }
    let mut chased = Chased::default();
    if let (Some(at), Some(chase)) = (target_at, chase) {
        chased = chase(&mut msg, at);
        answers += chased.answers;
        rcode = chased.rcode;
    }
    let opt_at = msg.len();
    write_opt(asked, rcode == 2, &mut msg);
    let with_opt = u16::from(asked.opt.is_some());
    // AA on every answer, SERVFAIL included: the authority's own verdict.
    let mut flags = 0x8000 | 0x0400 | (asked.flags & 0x0100) | u16::from(rcode);
    let (mut authority, mut additional) = (chased.authority, chased.additional);
    if msg.len() > usize::from(asked.max) {
        let opt = msg[opt_at..].to_vec();
        msg.truncate(HEADER_LEN + asked.question.len());
        msg.extend_from_slice(&opt);
        flags |= 0x0200;
        (answers, authority, additional) = (0, 0, 0);
    }
    msg[0..2].copy_from_slice(&asked.id.to_be_bytes());
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    let counts = [1, answers, authority, additional + with_opt];
    for (i, c) in counts.iter().enumerate() {
        msg[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    (msg, rcode)
}

/// The answer's OPT: payload 1232, version 0, the client's DO, the ECS
/// option echoed when the query had one, the NSID when asked, and on a
/// SERVFAIL (`servfail`) the Extended DNS Error saying no endpoint is live.
fn write_opt(asked: &ServiceAsked<'_>, servfail: bool, msg: &mut Vec<u8>) {
    let Some(dnssec_ok) = asked.opt else {
        return;
    };
    let [p0, p1] = crate::dns::UDP_PAYLOAD_MAX.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    msg.extend_from_slice(&[0, 0, 41, p0, p1, 0, 0, flags, 0]);
    let len_at = msg.len();
    msg.extend_from_slice(&[0, 0]);
    if let Some((subnet, scope)) = asked.ecs {
        subnet.write_echo(scope, msg);
    }
    let mut option = |code: u16, parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        msg.extend_from_slice(&code.to_be_bytes());
        msg.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
        for p in parts {
            msg.extend_from_slice(p);
        }
    };
    if let Some(nsid) = asked.nsid {
        option(3, &[nsid]);
    }
    if servfail {
        // EDE (15): INFO-CODE 0, "Other Error", and the text.
        option(15, &[&[0, 0], NO_LIVE_ENDPOINT.as_bytes()]);
    }
    let len = u16::try_from(msg.len() - len_at - 2).unwrap_or(0);
    msg[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::compiled::Services;
    use super::super::select::{AnswerSets, MAX_PICK, Rng};
    use super::*;
    use crate::config::Config;
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};

    #[test]
    fn an_answer_parses_with_the_live_records_aa_and_the_ecs_echoed() {
        let text = "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.zone\"]\n[[ts.service]]\nname = \"www.example.org\"\nttl = 20\nendpoint = [ { addr = \"192.0.2.1\" }, { addr = \"192.0.2.2\" } ]\n";
        let c = Config::from_toml(text, std::path::Path::new("c.toml")).unwrap();
        let s = Services::compile(&c.ts[0].service);
        let sets = AnswerSets::build(&s.list, &|i| i == 1);
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("WWW.example.org.").unwrap(),
            RecordType::A,
        ));
        let raw = q.to_vec().unwrap();
        let subnet = ClientSubnet {
            addr: "10.1.2.0".parse().unwrap(),
            source: 24,
        };
        let asked = ServiceAsked {
            id: 77,
            flags: 0x0100,
            question: &raw[12..],
            opt: Some(false),
            ecs: Some((subnet, 8)),
            max: 1232,
            nsid: None,
        };
        let mut drawn = [0u16; MAX_PICK];
        let n = sets.services[0][0][0].draw_into(&s.list[0], &mut Rng::new(1), &mut drawn);
        let (msg, rcode) = write(
            &s.list[0],
            ServiceAnswer::Records(&drawn[..n]),
            None,
            &asked,
            None,
        );
        assert_eq!(rcode, 0);
        let m = Message::from_vec(&msg).unwrap();
        assert_eq!(m.metadata.id, 77);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.org.");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].ttl, 20);
        assert_eq!(m.answers[0].data, RData::A("192.0.2.2".parse().unwrap()));
        let edns = m.edns.as_ref().unwrap();
        let echoed = edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet);
        assert!(echoed.is_some(), "{edns:?}");
        // Too big for the client: TC=1, no answers.
        let small = ServiceAsked { max: 40, ..asked };
        let (msg, _) = write(
            &s.list[0],
            ServiceAnswer::Records(&drawn[..n]),
            None,
            &small,
            None,
        );
        let m = Message::from_vec(&msg).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty());
    }
}
