//! Shared fixtures and property checks of the dnslb fuzz targets.
//!
//! Every DNS target asserts the same contract on an answer it gets (see
//! [`check_answer`]): it parses as a DNS message, carries the query's ID and,
//! when the query's question could be read, that same question with its
//! letter case kept (0x20). Every parser target asserts that a rejected input
//! gets an error that names the file and a line inside it ([`check_located`]).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dnslb::dns::{self, Reject, Transport};
use hickory_proto::op::{Message, Query};

/// The query's ID, or `None` for a runt.
pub fn query_id(raw: &[u8]) -> Option<u16> {
    dns::WireHeader::read(raw).map(|h| h.id)
}

/// The question the answer to `raw` must echo: the one question of a
/// readable query, or the one an error answer keeps (NOTIMP, BADVERS, ...).
pub fn expected_question(raw: &[u8]) -> Option<Query> {
    match dns::decode_query(raw) {
        Ok(q) => Some(q.query),
        Err(Reject::Rcode(e)) => e.query,
        Err(Reject::Drop) => None,
    }
}

/// Asserts the answer contract on `resp`, the answer to `raw` over `transport`.
pub fn check_answer(raw: &[u8], resp: &[u8], transport: Transport) {
    check_message(raw, resp, transport, true);
}

/// [`check_answer`] for one message of a reply; a message after the first of
/// a zone transfer may leave the question out (RFC 5936 §2.2).
pub fn check_message(raw: &[u8], resp: &[u8], transport: Transport, first: bool) {
    let msg = match Message::from_vec(resp) {
        Ok(m) => m,
        Err(e) => panic!("answer does not parse: {e}\nquery {raw:02x?}\nanswer {resp:02x?}"),
    };
    assert_eq!(
        Some(msg.metadata.id),
        query_id(raw),
        "answer ID is not the query's"
    );
    assert!(
        msg.metadata.message_type == hickory_proto::op::MessageType::Response,
        "answer without QR=1"
    );
    assert!(msg.queries.len() <= 1, "answer with several questions");
    if let Some(want) = expected_question(raw)
        && (first || !msg.queries.is_empty())
    {
        let got = msg.queries.first().unwrap_or_else(|| {
            panic!("answer lost the question {want}\nquery {raw:02x?}\nanswer {resp:02x?}")
        });
        assert!(
            got.name().iter().eq(want.name().iter()),
            "question name changed (case kept?): {} vs {}",
            got.name(),
            want.name()
        );
        assert_eq!(got.query_type(), want.query_type(), "question type changed");
        assert_eq!(
            got.query_class(),
            want.query_class(),
            "question class changed"
        );
    }
    if transport == Transport::Udp {
        let max = dns::client_max_size(raw, Transport::Udp);
        assert!(
            resp.len() <= max,
            "UDP answer of {} bytes over the client's {max}\nquery {raw:02x?}",
            resp.len()
        );
    }
}

/// Transport chosen by bit 0 of a control byte.
pub fn transport(ctl: u8) -> Transport {
    if ctl & 1 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    }
}

/// The path named in the errors of a parser target (never opened).
pub fn fake_path(name: &str) -> PathBuf {
    Path::new("/fuzz/input").join(name)
}

/// The longest prefix of `data` that is UTF-8 (the loaders stop there too).
pub fn utf8_prefix(data: &[u8]) -> &str {
    match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(e) => {
            std::str::from_utf8(data.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default()
        }
    }
}

/// Number of lines an error may point at in `text` (one past the last, for
/// an error found at the end of the input). A bare CR ends a line too, as
/// the master-file reader counts it (as NSD and BIND do).
pub fn line_bound(text: &str) -> usize {
    let b = text.as_bytes();
    let breaks = b
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count();
    breaks + 2
}

/// Asserts that `rendered` starts `file:line: ` with `line` in `1..=max_line`.
pub fn check_located(rendered: &str, file: &Path, line: usize, max_line: usize) {
    let prefix = format!("{}:{line}: ", file.display());
    assert!(
        rendered.starts_with(&prefix),
        "error does not start with {prefix:?}: {rendered:?}"
    );
    assert!(
        (1..=max_line).contains(&line),
        "error line {line} outside 1..={max_line}: {rendered:?}"
    );
}

/// Files of the TS fixture: a PROJ table and a master file, written once to a
/// temporary folder.
pub fn ts_fixture() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dnslb-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let table = dir.join("table.txt");
        let zone = dir.join("fuzz.zone");
        std::fs::write(&table, PROJ_TABLE).expect("write table");
        std::fs::write(&zone, MASTER_FILE).expect("write zone");
        vec![table, zone]
    })
}

/// The PROJ table of the TS fixture (origin: the root).
pub const PROJ_TABLE: &str = "\
# fuzz fixture
www.example.com 192.0.2.10 A
www.example.com 2001:db8::10 AAAA
Mixed.Example.com 192.0.2.11 A
alias.example.com www.example.com CNAME
txt.example.com \"hello world\" TXT
example.com ns1.example.com NS
ns1.example.com 192.0.2.53 A
deep.a.b.example.com 192.0.2.12 A
www.example.org 198.51.100.10 A
";

/// The master file of the TS fixture: SOA, NS, MX, TXT, CNAME, a wildcard, a
/// delegation with glue and an empty non-terminal.
pub const MASTER_FILE: &str = "\
$ORIGIN fuzz.test.
$TTL 300
@ IN SOA ns1.fuzz.test. hostmaster.fuzz.test. 1 7200 3600 1209600 300
  IN NS ns1.fuzz.test.
  IN MX 10 mail.fuzz.test.
  IN TXT \"v=spf1 -all\"
ns1 IN A 192.0.2.53
mail IN A 192.0.2.25
www IN A 192.0.2.80
www IN AAAA 2001:db8::80
ftp IN CNAME www
loop1 IN CNAME loop2
loop2 IN CNAME loop1
*.wild IN A 192.0.2.99
*.wild IN TXT \"wildcard\"
sub IN NS ns.sub
sub IN NS ns.other.test.
ns.sub IN A 192.0.2.54
a.b.ent IN A 192.0.2.55
big IN TXT \"0123456789012345678901234567890123456789012345678901234567890123456789\" \"0123456789012345678901234567890123456789012345678901234567890123456789\"
big IN TXT \"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\" \"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
big IN TXT \"ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ\" \"ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ\"
big IN TXT \"klmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrst\" \"klmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrstklmnopqrst\"
";
