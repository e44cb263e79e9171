//! Writes the DNS seed inputs of the fuzz corpus: real queries and responses
//! built with hickory-proto (EDNS, COOKIE, NSID, 0x20 case, compression), in
//! each target's input layout (see the targets' headers).
//!
//! `cargo run --example seeds -- <corpus dir>` (from fuzz/).
use std::path::{Path, PathBuf};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

/// OPT of a query: payload size, DO bit, options.
#[derive(Clone, Default)]
struct Opt {
    size: u16,
    dnssec_ok: bool,
    nsid: bool,
    cookie: bool,
    version: u8,
}

fn edns(o: &Opt) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(o.size);
    e.set_dnssec_ok(o.dnssec_ok);
    e.set_version(o.version);
    if o.nsid {
        e.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(Vec::new()).expect("nsid"),
        ));
    }
    if o.cookie {
        e.options_mut().insert(EdnsOption::Unknown(
            10,
            vec![0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57],
        ));
    }
    e
}

fn query(id: u16, qname: &str, qtype: RecordType, opt: Option<&Opt>) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    if let Some(o) = opt {
        m.set_edns(edns(o));
    }
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().expect("encode")
}

fn write(dir: &Path, file: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(file), data).expect("write");
}

/// The client queries shared by `ts_request` and `ls_client`.
fn client_queries() -> Vec<(&'static str, Vec<u8>)> {
    let plain = Opt {
        size: 1232,
        ..Opt::default()
    };
    let nsid = Opt {
        size: 1232,
        nsid: true,
        ..Opt::default()
    };
    let cookie = Opt {
        size: 4096,
        dnssec_ok: true,
        cookie: true,
        nsid: true,
        ..Opt::default()
    };
    let small = Opt {
        size: 512,
        ..Opt::default()
    };
    let v1 = Opt {
        size: 1232,
        version: 1,
        ..Opt::default()
    };
    let mut out = vec![
        (
            "a",
            bytes(&query(1, "www.example.com.", RecordType::A, None)),
        ),
        (
            "a-0x20",
            bytes(&query(2, "WwW.ExAmPlE.cOm.", RecordType::A, None)),
        ),
        (
            "aaaa-edns",
            bytes(&query(
                3,
                "www.example.com.",
                RecordType::AAAA,
                Some(&plain),
            )),
        ),
        (
            "a-nsid",
            bytes(&query(4, "www.example.com.", RecordType::A, Some(&nsid))),
        ),
        (
            "a-cookie-do",
            bytes(&query(
                5,
                "Mixed.example.COM.",
                RecordType::A,
                Some(&cookie),
            )),
        ),
        (
            "cname",
            bytes(&query(6, "alias.example.com.", RecordType::A, None)),
        ),
        (
            "txt",
            bytes(&query(7, "txt.example.com.", RecordType::TXT, Some(&plain))),
        ),
        (
            "ns-apex",
            bytes(&query(8, "example.com.", RecordType::NS, None)),
        ),
        (
            "ent",
            bytes(&query(9, "b.example.com.", RecordType::A, None)),
        ),
        (
            "nx",
            bytes(&query(10, "nope.example.org.", RecordType::A, Some(&nsid))),
        ),
        (
            "soa",
            bytes(&query(11, "fuzz.test.", RecordType::SOA, Some(&plain))),
        ),
        ("mx", bytes(&query(12, "fuzz.test.", RecordType::MX, None))),
        (
            "zone-cname",
            bytes(&query(13, "FTP.fuzz.test.", RecordType::A, None)),
        ),
        (
            "loop",
            bytes(&query(14, "loop1.fuzz.test.", RecordType::A, None)),
        ),
        (
            "wildcard",
            bytes(&query(
                15,
                "x.Wild.fuzz.test.",
                RecordType::TXT,
                Some(&plain),
            )),
        ),
        (
            "referral",
            bytes(&query(
                16,
                "host.sub.fuzz.test.",
                RecordType::A,
                Some(&plain),
            )),
        ),
        (
            "zone-ent",
            bytes(&query(17, "b.ent.fuzz.test.", RecordType::A, None)),
        ),
        (
            "big-txt",
            bytes(&query(18, "big.fuzz.test.", RecordType::TXT, Some(&small))),
        ),
        (
            "big-plain",
            bytes(&query(19, "big.fuzz.test.", RecordType::TXT, None)),
        ),
        (
            "any",
            bytes(&query(20, "www.fuzz.test.", RecordType::ANY, None)),
        ),
        (
            "axfr",
            bytes(&query(21, "fuzz.test.", RecordType::AXFR, None)),
        ),
        (
            "ixfr",
            bytes(&query(22, "fuzz.test.", RecordType::IXFR, None)),
        ),
        (
            "badvers",
            bytes(&query(23, "www.example.com.", RecordType::A, Some(&v1))),
        ),
        ("root", bytes(&query(24, ".", RecordType::SOA, None))),
    ];
    // NOTIFY, an unknown opcode, CHAOS, no question, two questions.
    let mut m = query(30, "fuzz.test.", RecordType::SOA, None);
    m.metadata.op_code = OpCode::Notify;
    m.metadata.authoritative = true;
    out.push(("notify", bytes(&m)));
    let mut m = query(31, "www.example.com.", RecordType::A, Some(&nsid));
    m.metadata.op_code = OpCode::Status;
    out.push(("status-opcode", bytes(&m)));
    let mut q = Query::query(name("version.bind."), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    let mut m = Message::new(32, MessageType::Query, OpCode::Query);
    m.add_query(q);
    out.push(("chaos", bytes(&m)));
    let mut m = Message::new(33, MessageType::Query, OpCode::Query);
    m.set_edns(edns(&nsid));
    out.push(("no-question", bytes(&m)));
    let mut m = query(34, "www.example.com.", RecordType::A, None);
    m.add_query(Query::query(name("www.example.org."), RecordType::A));
    out.push(("two-questions", bytes(&m)));
    // A response sent to a server: dropped.
    let mut m = query(35, "www.example.com.", RecordType::A, None);
    m.metadata.message_type = MessageType::Response;
    out.push(("qr-set", bytes(&m)));
    // Compression: an additional record whose owner points at the question.
    let mut m = query(36, "www.example.com.", RecordType::A, Some(&plain));
    m.add_additional(Record::from_rdata(
        name("www.example.com."),
        60,
        RData::A(A::new(192, 0, 2, 1)),
    ));
    out.push(("compressed-additional", bytes(&m)));
    // A question whose name is a pointer (to itself: a loop) and a runt.
    let mut raw = bytes(&query(37, "a.", RecordType::A, None));
    raw.truncate(12);
    raw.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    out.push(("pointer-loop", raw));
    let raw = bytes(&query(38, "www.example.com.", RecordType::A, None));
    out.push(("runt", raw[..20].to_vec()));
    out
}

/// Backend responses to the query `q` for `ls_upstream`.
fn responses(q: &Message) -> Vec<(&'static str, Message)> {
    let qname = q.queries[0].name().clone();
    let resp = |rcode: ResponseCode, aa: bool| {
        let mut m = Message::new(0x4242, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.authoritative = aa;
        m.add_queries(q.queries.clone());
        if q.edns.is_some() {
            m.set_edns(Edns::new());
        }
        m
    };
    let soa = Record::from_rdata(
        name("example.com."),
        300,
        RData::SOA(SOA::new(
            name("ns1.example.com."),
            name("hostmaster.example.com."),
            1,
            7200,
            3600,
            1_209_600,
            300,
        )),
    );
    let mut answer = resp(ResponseCode::NoError, true);
    answer.add_answer(Record::from_rdata(
        qname.clone(),
        60,
        RData::A(A::new(192, 0, 2, 10)),
    ));
    answer.add_answer(Record::from_rdata(
        qname.clone(),
        60,
        RData::TXT(TXT::new(vec!["compressed owner".to_owned()])),
    ));
    let mut nx = resp(ResponseCode::NXDomain, true);
    nx.add_authority(soa.clone());
    let mut nodata = resp(ResponseCode::NoError, true);
    nodata.add_authority(soa);
    let mut referral = resp(ResponseCode::NoError, false);
    referral.add_authority(Record::from_rdata(
        name("example.com."),
        300,
        RData::NS(NS(name("ns1.example.com."))),
    ));
    referral.add_additional(Record::from_rdata(
        name("ns1.example.com."),
        300,
        RData::A(A::new(192, 0, 2, 53)),
    ));
    let mut tc = resp(ResponseCode::NoError, true);
    tc.metadata.truncation = true;
    let servfail = resp(ResponseCode::ServFail, false);
    let mut with_nsid = answer.clone();
    let mut e = Edns::new();
    e.options_mut().insert(EdnsOption::NSID(
        NSIDPayload::new(b"backend".to_vec()).expect("nsid"),
    ));
    with_nsid.set_edns(e);
    let mut cased = answer.clone();
    let mut q0 = q.queries[0].clone();
    q0.set_name(name(&qname.to_ascii().to_ascii_uppercase()));
    cased.queries = vec![q0];
    vec![
        ("answer", answer),
        ("nxdomain", nx),
        ("nodata", nodata),
        ("referral", referral),
        ("tc", tc),
        ("servfail", servfail),
        ("has-nsid", with_nsid),
        ("other-case", cased),
    ]
}

fn main() {
    let root: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("corpus"), PathBuf::from);
    let queries = client_queries();
    for (i, (label, raw)) in queries.iter().enumerate() {
        // Control byte: UDP/TCP, and for some, the other source or rate limit.
        let ctl = (i % 8) as u8;
        for target in ["ts_request", "ls_client"] {
            let mut input = vec![ctl];
            input.extend_from_slice(raw);
            write(&root.join(target), &format!("seed-{label}"), &input);
        }
    }
    let nsid = Opt {
        size: 1232,
        nsid: true,
        ..Opt::default()
    };
    let client = [
        (
            "nsid",
            query(0x1111, "www.example.com.", RecordType::A, Some(&nsid)),
        ),
        (
            "plain",
            query(0x2222, "wWw.Example.Com.", RecordType::A, None),
        ),
    ];
    for (qlabel, q) in &client {
        let qraw = bytes(q);
        for (i, (rlabel, r)) in responses(q).iter().enumerate() {
            let len = u16::try_from(qraw.len()).expect("short query");
            let mut input = vec![(i % 4) as u8];
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(&qraw);
            input.extend_from_slice(&bytes(r));
            write(
                &root.join("ls_upstream"),
                &format!("seed-{qlabel}-{rlabel}"),
                &input,
            );
            // ls_cache: control byte, age, the query and the answer, and no
            // second query (the first one, its ID changed, case swapped).
            let rraw = bytes(r);
            let rlen = u16::try_from(rraw.len()).expect("short response");
            let mut input = vec![(i % 8) as u8, (i * 40 % 256) as u8];
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(&qraw);
            input.extend_from_slice(&rlen.to_be_bytes());
            input.extend_from_slice(&rraw);
            write(
                &root.join("ls_cache"),
                &format!("seed-{qlabel}-{rlabel}"),
                &input,
            );
        }
    }
}
