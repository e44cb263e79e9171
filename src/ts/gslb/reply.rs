//! A service's answer on the wire ([`write`]): the header (ID, RD copied,
//! AA), the question echoed byte for byte, the endpoints' precompiled
//! records (or the fallback CNAME, or SERVFAIL with none), their RRSIGs in
//! a zone the TS signs (a DO=1 query), and, when the
//! query had an OPT, one back with the ECS option echoed at the answer's
//! scope. An answer over the client's size goes out truncated (TC=1).
use super::ecs::ClientSubnet;
use super::service::Service;
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
}

/// The answer `answer` of `service` to `asked`, with `rrsigs` after its
/// records (a signed zone, DO=1), and its RCODE (0 or 2).
pub fn write(
    service: &Service,
    answer: ServiceAnswer<'_>,
    rrsigs: Option<&Rrsigs>,
    asked: &ServiceAsked<'_>,
) -> (Vec<u8>, u8) {
    let mut msg = Vec::with_capacity(512);
    msg.extend_from_slice(&[0; HEADER_LEN]);
    msg.extend_from_slice(asked.question);
    let mut answers: u16 = 0;
    let rcode = match answer {
        ServiceAnswer::Servfail => 2,
        ServiceAnswer::Fallback => {
            if let Some(r) = &service.fallback {
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
    let opt_at = msg.len();
    write_opt(asked, &mut msg);
    let with_opt = u16::from(asked.opt.is_some());
    let mut flags = 0x8000 | (asked.flags & 0x0100) | u16::from(rcode);
    if rcode == 0 {
        flags |= 0x0400;
    }
    if msg.len() > usize::from(asked.max) {
        let opt = msg[opt_at..].to_vec();
        msg.truncate(HEADER_LEN + asked.question.len());
        msg.extend_from_slice(&opt);
        flags |= 0x0200;
        answers = 0;
    }
    msg[0..2].copy_from_slice(&asked.id.to_be_bytes());
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in [1, answers, 0, with_opt].iter().enumerate() {
        msg[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    (msg, rcode)
}

/// The answer's OPT: payload 1232, version 0, the client's DO, and the ECS
/// option echoed when the query had one.
fn write_opt(asked: &ServiceAsked<'_>, msg: &mut Vec<u8>) {
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
    let len = u16::try_from(msg.len() - len_at - 2).unwrap_or(0);
    msg[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::select::{AnswerSets, MAX_PICK, Rng};
    use super::super::service::Services;
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
        };
        let mut drawn = [0u16; MAX_PICK];
        let n = sets.services[0][0][0].draw_into(&s.list[0], &mut Rng::new(1), &mut drawn);
        let (msg, rcode) = write(
            &s.list[0],
            ServiceAnswer::Records(&drawn[..n]),
            None,
            &asked,
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
        );
        let m = Message::from_vec(&msg).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty());
    }
}
