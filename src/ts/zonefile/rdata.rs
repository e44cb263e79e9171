//! Record data in presentation form turned into wire form, per type: the types of RFC
//! 1035 and their successors (A, AAAA, NS, CNAME, DNAME, PTR, SOA, MX, TXT, SPF, HINFO,
//! MINFO, RP, AFSDB, RT, KX, SRV, NAPTR, CAA, URI, SSHFP, TLSA, SMIMEA, OPENPGPKEY, CERT,
//! CSYNC, ZONEMD, SVCB, HTTPS, and as NSD reads them LOC, WKS, APL, IPSECKEY, EUI48,
//! EUI64, NID, L32, L64, LP, X25, ISDN, NSAP, PX, AVC), the DNSSEC types (DS, CDS, DNSKEY, CDNSKEY, RRSIG, NSEC,
//! NSEC3, NSEC3PARAM; RFC 4034 §§2-5, RFC 5155 §§3.3, 4.3) and, for every type, RFC
//! 3597's generic form `\# LENGTH HEX`.
//!
//! Names in RDATA are written uncompressed, in the case of the file. Errors name the line
//! of the field at fault.

use std::net::Ipv6Addr;

use super::cursor::{Bad, Fields};
use super::extra::more_types;
use super::fields::quoted;
use super::fields::{
    self, base32hex, base64, char_string, duration, hex, rrsig_time, type_bitmap, type_code,
    u16_of, unescape,
};
use super::lexer::Token;
use super::svcb::service_binding;

/// CERT types (RFC 4398 §2.1).
const CERT_TYPES: &[(&str, u16)] = &[
    ("PKIX", 1),
    ("SPKI", 2),
    ("PGP", 3),
    ("IPKIX", 4),
    ("ISPKI", 5),
    ("IPGP", 6),
    ("ACPKIX", 7),
    ("IACPKIX", 8),
    ("URI", 253),
    ("OID", 254),
];

/// Types that cannot be in a zone at all: OPT, and TKEY to ANY (a match,
/// not a scan of a list: every record asks).
fn is_meta(code: u16) -> bool {
    matches!(code, 41 | 249..=255)
}

/// The wire RDATA of a record of type `code` written as `tokens` (the fields after the
/// type), into `out` (cleared first: the reader keeps one buffer for every record);
/// `line` is the record's line, for a record with no data field at all.
///
/// # Errors
/// The first bad or missing field, with its line (`out` then holds part of the data).
pub(super) fn wire_into(
    code: u16,
    tokens: &[Token<'_>],
    origin: Option<&[u8]>,
    line: usize,
    out: &mut Vec<u8>,
) -> Result<(), Bad> {
    out.clear();
    // Made only where an error or a check needs it (a String a record).
    let type_name = || fields::type_name(code);
    if is_meta(code) {
        let type_name = type_name();
        return Err((line, format!("type {type_name} cannot be in a zone file")));
    }
    let mut f = Fields {
        tokens,
        at: 0,
        line,
    };
    if let Some(first) = tokens.first()
        && !first.quoted
        && first.text == b"\\#"
    {
        f.at = 1;
        f.line = first.line;
        let data = generic(&mut f)?;
        f.bad(super::wire::check(code, &type_name(), &data))?;
        out.extend_from_slice(&data);
        return Ok(());
    }
    match code {
        // A
        1 => {
            let raw = f.next("IPv4 address")?;
            let ip = fields::ipv4(raw).ok_or_else(|| format!("bad IPv4 address '{}'", quoted(raw)));
            out.extend_from_slice(&f.bad(ip)?);
        }
        // AAAA
        28 => {
            let ip: Ipv6Addr = f.parsed("IPv6 address")?;
            out.extend_from_slice(&ip.octets());
        }
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => f.name_onto("target name", origin, out)?,
        // SOA
        6 => {
            f.name_onto("primary server name (MNAME)", origin, out)?;
            f.name_onto("mailbox name (RNAME)", origin, out)?;
            out.extend(f.u32("serial")?.to_be_bytes());
            for what in ["refresh", "retry", "expire", "minimum"] {
                let raw = f.next(what)?;
                out.extend(f.bad(duration(raw, what))?.to_be_bytes());
            }
        }
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => {
            out.extend(f.u16("preference")?.to_be_bytes());
            f.name_onto("exchange name", origin, out)?;
        }
        // MINFO, RP
        14 | 17 => {
            f.name_onto("mailbox name", origin, out)?;
            f.name_onto("second name", origin, out)?;
        }
        // TXT, SPF
        16 | 99 => {
            for token in f.rest("text")? {
                f.line = token.line;
                let r = char_string(token.text, out);
                f.bad(r)?;
            }
        }
        // HINFO
        13 => {
            for what in ["CPU", "OS"] {
                let raw = f.next(what)?;
                let r = char_string(raw, out);
                f.bad(r)?;
            }
        }
        // SRV
        33 => {
            for what in ["priority", "weight", "port"] {
                out.extend(f.u16(what)?.to_be_bytes());
            }
            f.name_onto("target name", origin, out)?;
        }
        // NAPTR
        35 => {
            out.extend(f.u16("order")?.to_be_bytes());
            out.extend(f.u16("preference")?.to_be_bytes());
            for what in ["flags", "services", "regexp"] {
                let raw = f.next(what)?;
                let r = char_string(raw, out);
                f.bad(r)?;
            }
            f.name_onto("replacement", origin, out)?;
        }
        // CAA
        257 => {
            out.push(f.u8("flags")?);
            let tag = f.next("tag")?;
            let ok =
                !tag.is_empty() && tag.len() < 256 && tag.iter().all(u8::is_ascii_alphanumeric);
            if !ok {
                let msg = format!("bad CAA tag '{}'", quoted(tag));
                return Err((f.line, msg));
            }
            out.push(tag.len() as u8);
            out.extend_from_slice(tag);
            let raw = f.next("value")?;
            out.extend(f.bad(unescape(raw))?);
        }
        // URI
        256 => {
            out.extend(f.u16("priority")?.to_be_bytes());
            out.extend(f.u16("weight")?.to_be_bytes());
            let raw = f.next("target")?;
            out.extend(f.bad(unescape(raw))?);
        }
        // SSHFP
        44 => {
            out.push(f.u8("algorithm")?);
            out.push(f.u8("fingerprint type")?);
            let joined = f.joined("fingerprint")?;
            out.extend(f.bad(hex(&joined))?);
        }
        // TLSA, SMIMEA
        52 | 53 => {
            for what in ["usage", "selector", "matching type"] {
                out.push(f.u8(what)?);
            }
            let joined = f.joined("certificate data")?;
            out.extend(f.bad(hex(&joined))?);
        }
        // OPENPGPKEY, DHCID
        61 | 49 => {
            let joined = f.joined("key data")?;
            out.extend(f.bad(base64(&joined))?);
        }
        // CERT
        37 => {
            let raw = f.next("certificate type")?;
            let known = CERT_TYPES
                .iter()
                .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(raw))
                .map(|&(_, c)| c);
            let cert_type = match known {
                Some(c) => c,
                None => f.bad(u16_of(raw, "certificate type"))?,
            };
            out.extend(cert_type.to_be_bytes());
            out.extend(f.u16("key tag")?.to_be_bytes());
            out.push(f.algorithm()?);
            let joined = f.joined("certificate")?;
            out.extend(f.bad(base64(&joined))?);
        }
        // CSYNC
        62 => {
            out.extend(f.u32("serial")?.to_be_bytes());
            out.extend(f.u16("flags")?.to_be_bytes());
            let types = f.tokens.get(f.at..).unwrap_or_default();
            f.at = f.tokens.len();
            let bitmap = type_bitmap(types.iter().map(|t| t.text));
            out.extend(f.bad(bitmap)?);
        }
        // ZONEMD
        63 => {
            out.extend(f.u32("serial")?.to_be_bytes());
            out.push(f.u8("scheme")?);
            out.push(f.u8("hash algorithm")?);
            let joined = f.joined("digest")?;
            out.extend(f.bad(hex(&joined))?);
        }
        // DS, CDS, DLV
        43 | 59 | 32769 => {
            out.extend(f.u16("key tag")?.to_be_bytes());
            out.push(f.algorithm()?);
            out.push(f.u8("digest type")?);
            let joined = f.joined("digest")?;
            out.extend(f.bad(hex(&joined))?);
        }
        // DNSKEY, CDNSKEY, KEY
        48 | 60 | 25 => {
            out.extend(f.u16("flags")?.to_be_bytes());
            out.push(f.u8("protocol")?);
            out.push(f.algorithm()?);
            let joined = f.joined("public key")?;
            out.extend(f.bad(base64(&joined))?);
        }
        // RRSIG
        46 => {
            let raw = f.next("type covered")?;
            let covered = type_code(raw)
                .ok_or_else(|| (f.line, format!("unknown type covered '{}'", quoted(raw))))?;
            out.extend(covered.to_be_bytes());
            out.push(f.algorithm()?);
            out.push(f.u8("labels")?);
            let raw = f.next("original TTL")?;
            out.extend(f.bad(duration(raw, "original TTL"))?.to_be_bytes());
            for what in ["signature expiration", "signature inception"] {
                let raw = f.next(what)?;
                out.extend(f.bad(rrsig_time(raw))?.to_be_bytes());
            }
            out.extend(f.u16("key tag")?.to_be_bytes());
            f.name_onto("signer name", origin, out)?;
            let joined = f.joined("signature")?;
            out.extend(f.bad(base64(&joined))?);
        }
        // NSEC
        47 => {
            f.name_onto("next domain name", origin, out)?;
            let types = f.tokens.get(f.at..).unwrap_or_default();
            f.at = f.tokens.len();
            let bitmap = type_bitmap(types.iter().map(|t| t.text));
            out.extend(f.bad(bitmap)?);
        }
        // NSEC3, NSEC3PARAM
        50 | 51 => {
            out.push(f.u8("hash algorithm")?);
            out.push(f.u8("flags")?);
            out.extend(f.u16("iterations")?.to_be_bytes());
            let raw = f.next("salt")?;
            let salt = if raw == b"-" {
                Vec::new()
            } else {
                f.bad(hex(raw))?
            };
            if salt.len() > 255 {
                return Err((f.line, "salt over 255 bytes".into()));
            }
            out.push(salt.len() as u8);
            out.extend(salt);
            if code == 50 {
                let raw = f.next("next hashed owner name")?;
                let hash = f.bad(base32hex(raw))?;
                if hash.is_empty() || hash.len() > 255 {
                    return Err((f.line, "bad next hashed owner name".into()));
                }
                out.push(hash.len() as u8);
                out.extend(hash);
                let types = f.tokens.get(f.at..).unwrap_or_default();
                f.at = f.tokens.len();
                let bitmap = type_bitmap(types.iter().map(|t| t.text));
                out.extend(f.bad(bitmap)?);
            }
        }
        // SVCB, HTTPS
        64 | 65 => out.extend_from_slice(&service_binding(&mut f, origin)?),
        _ if let Some(data) = more_types(&mut f, code, origin)? => out.extend_from_slice(&data),
        _ => {
            return Err((
                line,
                format!(
                    "type {} is read only in RFC 3597's generic form (\\# LENGTH HEX)",
                    type_name()
                ),
            ));
        }
    }
    f.done()?;
    if out.len() > usize::from(u16::MAX) {
        return Err((line, "record data over 65,535 bytes".into()));
    }
    Ok(())
}

/// RFC 3597 §5: `\# LENGTH HEX...` (no hex when the length is 0).
fn generic(f: &mut Fields<'_>) -> Result<Vec<u8>, Bad> {
    let length = f.u16("data length")?;
    let data = if f.at < f.tokens.len() {
        let joined = f.joined("data")?;
        f.bad(hex(&joined))?
    } else {
        Vec::new()
    };
    if data.len() != usize::from(length) {
        return Err((
            f.line,
            format!(
                "\\# says {length} bytes of data, the hex holds {}",
                data.len()
            ),
        ));
    }
    Ok(data)
}

/// Test helpers shared with the per-type files' tests.
#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use crate::ts::zonefile::lexer::entries;

    pub(in crate::ts::zonefile) const ORIGIN: &[u8] = b"\x07example\x04test\x00";

    /// The wire form of `text` (a record's fields after the type) for type `code`.
    pub(in crate::ts::zonefile) fn w(code: &str, text: &str) -> Result<Vec<u8>, Bad> {
        let code = type_code(code.as_bytes()).unwrap();
        let all = entries(text.as_bytes()).unwrap();
        let tokens: Vec<Token> = all.into_iter().flat_map(|e| e.tokens).collect();
        let mut out = Vec::new();
        wire_into(code, &tokens, Some(ORIGIN), 1, &mut out).map(|()| out)
    }

    pub(in crate::ts::zonefile) fn ok(code: &str, text: &str) -> Vec<u8> {
        w(code, text).unwrap_or_else(|e| panic!("{code} {text}: {e:?}"))
    }

    pub(in crate::ts::zonefile) fn err(code: &str, text: &str) -> String {
        w(code, text).unwrap_err().1
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ORIGIN, err, ok};
    use super::*;
    use crate::ts::zonefile::lexer::entries;

    /// [`wire_into`] into a new buffer.
    fn wire(
        code: u16,
        tokens: &[Token<'_>],
        origin: Option<&[u8]>,
        line: usize,
    ) -> Result<Vec<u8>, Bad> {
        let mut out = Vec::new();
        wire_into(code, tokens, origin, line, &mut out).map(|()| out)
    }

    #[test]
    fn addresses() {
        assert_eq!(ok("A", "192.0.2.1"), [192, 0, 2, 1]);
        assert_eq!(ok("AAAA", "::1")[15], 1);
        assert!(err("A", "300.1.1.1").contains("bad IPv4 address '300.1.1.1'"));
        assert!(err("A", "").contains("missing IPv4 address"));
        assert!(err("A", "1.2.3.4 5").contains("unexpected '5'"));
    }

    #[test]
    fn names_in_rdata() {
        assert_eq!(ok("CNAME", "@"), ORIGIN);
        assert_eq!(ok("DNAME", "x."), b"\x01x\x00");
        assert_eq!(ok("MX", "10 @"), [&[0, 10][..], ORIGIN].concat());
        assert_eq!(
            ok("SRV", "0 5 5060 sip."),
            [0, 0, 0, 5, 0x13, 0xc4, 3, b's', b'i', b'p', 0]
        );
    }

    #[test]
    fn soa_timers_take_units() {
        let soa = ok("SOA", "ns h ( 1 1h 15m 1w 300 )");
        assert_eq!(soa[soa.len() - 20..soa.len() - 16], [0, 0, 0, 1]);
        assert_eq!(soa[soa.len() - 16..soa.len() - 12], 3600u32.to_be_bytes());
        assert!(err("SOA", "ns h 1 2 3 4").contains("missing minimum"));
    }

    #[test]
    fn strings() {
        assert_eq!(ok("TXT", "\"\\065\\066\""), b"\x02AB");
        assert_eq!(ok("TXT", "a\\059b"), b"\x03a;b");
        assert_eq!(ok("TXT", "\"a b\" c"), b"\x03a b\x01c");
        assert_eq!(ok("SPF", "\"v=spf1 -all\""), b"\x0bv=spf1 -all");
        assert_eq!(ok("TXT", "\"\""), [0]);
        assert_eq!(
            ok("HINFO", "( \"PC (x86)\" \"Linux; 6\" )"),
            b"\x08PC (x86)\x08Linux; 6"
        );
        assert!(err("TXT", &format!("\"{}\"", "x".repeat(256))).contains("256 bytes"));
        assert!(err("HINFO", "one").contains("missing OS"));
        assert_eq!(
            ok("CAA", "0 issue \"ca.example; x=y\""),
            b"\x00\x05issueca.example; x=y"
        );
        assert!(err("CAA", "0 is-sue x").contains("bad CAA tag"));
        assert_eq!(
            ok("NAPTR", "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp."),
            b"\x00\x64\x00\x0a\x01S\x07SIP+D2U\x00\x04_sip\x04_udp\x00"
        );
    }

    #[test]
    fn generic_form() {
        assert_eq!(ok("A", "\\# 4 0a000001"), [10, 0, 0, 1]);
        assert_eq!(ok("TYPE65534", "\\# 3 ab cd ef"), [0xab, 0xcd, 0xef]);
        assert_eq!(ok("TYPE65534", "\\# 0"), Vec::<u8>::new());
        assert!(err("TYPE65534", "\\# 2 abcdef").contains("says 2 bytes"));
        assert!(err("TYPE65534", "abc").contains("generic form"));
        assert!(err("ANY", "\\# 0").contains("cannot be in a zone"));
    }

    #[test]
    fn hex_and_base64_types() {
        assert_eq!(
            ok("SSHFP", "1 1 ( 0123 4567 )"),
            [1, 1, 0x01, 0x23, 0x45, 0x67]
        );
        assert_eq!(ok("TLSA", "3 1 1 ABCD"), [3, 1, 1, 0xab, 0xcd]);
        assert!(err("TLSA", "3 1 1 abc").contains("bad hex"));
        assert_eq!(ok("OPENPGPKEY", "AQID BA=="), [1, 2, 3, 4]);
    }

    #[test]
    fn dnssec_types() {
        // RFC 4034 §5.4's DS, and §2.3's DNSKEY (start of its key).
        let ds = ok(
            "DS",
            "60485 5 1 ( 2BB183AF5F22588179A53B0A 98631FAD1A292118 )",
        );
        assert_eq!(ds[..4], [0xec, 0x45, 5, 1]);
        assert_eq!(ds.len(), 4 + 20);
        assert_eq!(ok("CDS", "0 0 0 00"), [0, 0, 0, 0, 0]);
        let key = ok("DNSKEY", "256 3 ECDSAP256SHA256 AQID");
        assert_eq!(key, [1, 0, 3, 13, 1, 2, 3]);
        assert_eq!(ok("CDNSKEY", "0 3 0 AA=="), [0, 0, 3, 0, 0]);
        let sig = ok(
            "RRSIG",
            "A 5 3 86400 20030322173103 ( 20030220173103 2642 example.com. AQID )",
        );
        assert_eq!(sig[..4], [0, 1, 5, 3]);
        assert_eq!(sig[4..8], 86400u32.to_be_bytes());
        assert_eq!(sig[8..12], 1_048_354_263u32.to_be_bytes());
        assert_eq!(sig[16..18], 2642u16.to_be_bytes());
        assert_eq!(sig[18..], *b"\x07example\x03com\x00\x01\x02\x03");
        assert!(err("RRSIG", "BOGUS 5 3 1 1 1 1 x. AQID").contains("type covered"));
        assert!(err("RRSIG", "A 5 3 1 20031322000000 1 1 x. AQID").contains("signature time"));
        let nsec = ok("NSEC", "host.example.com. ( A MX RRSIG NSEC TYPE1234 )");
        assert_eq!(nsec[..18], *b"\x04host\x07example\x03com\x00");
        assert_eq!(nsec[18..20], [0, 6]);
        // RFC 5155 Appendix A.
        let nsec3 = ok(
            "NSEC3",
            "1 1 12 aabbccdd ( 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG )",
        );
        assert_eq!(nsec3[..9], [1, 1, 0, 12, 4, 0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(nsec3[9], 20);
        assert_eq!(ok("NSEC3PARAM", "1 0 0 -"), [1, 0, 0, 0, 0]);
        assert!(err("NSEC3", "1 1 12 aabbccdd 2t7b4g4v!").contains("base32hex"));
    }

    #[test]
    fn other_types() {
        assert_eq!(
            ok("URI", "10 1 \"https://x/\""),
            b"\x00\x0a\x00\x01https://x/"
        );
        assert_eq!(ok("RP", "a. b."), b"\x01a\x00\x01b\x00");
        assert_eq!(ok("KX", "10 k."), b"\x00\x0a\x01k\x00");
        assert_eq!(ok("AFSDB", "1 k."), b"\x00\x01\x01k\x00");
        assert_eq!(
            ok("CERT", "PKIX 1 RSASHA256 AQID"),
            [0, 1, 0, 1, 8, 1, 2, 3]
        );
        assert_eq!(ok("CERT", "3 1 8 AQID"), [0, 3, 0, 1, 8, 1, 2, 3]);
        assert_eq!(
            ok("CSYNC", "66 3 A NS AAAA"),
            [0, 0, 0, 66, 0, 3, 0, 4, 0x60, 0, 0, 0x08]
        );
        assert_eq!(
            ok("ZONEMD", "2018031500 1 1 ( ABCD )"),
            [&2_018_031_500u32.to_be_bytes()[..], &[1, 1, 0xab, 0xcd]].concat()
        );
        assert!(err("CERT", "NOPE 1 8 AQID").contains("certificate type"));
        // WKS services by number only (NSD asks the system's services file).
        assert_eq!(
            ok("WKS", "192.0.2.1 tcp 25 80"),
            [&[192, 0, 2, 1, 6][..], &[0, 0, 0, 0x40], &[0; 6], &[0x80]].concat()
        );
        assert!(err("WKS", "192.0.2.1 6 smtp").contains("bad service 'smtp'"));
        // LOC (RFC 1876 §3): the defaults 1m, 10000m, 10m.
        assert_eq!(
            ok("LOC", "0 N 0 E 0m"),
            [
                &[0u8, 0x12, 0x16, 0x13][..],
                &(1u32 << 31).to_be_bytes(),
                &(1u32 << 31).to_be_bytes(),
                &10_000_000u32.to_be_bytes()
            ]
            .concat()
        );
    }

    #[test]
    fn errors_name_the_line_of_the_field() {
        let all = entries(b"( 1\n 2\n bad 4 5 )").unwrap();
        let tokens: Vec<Token> = all.into_iter().flat_map(|e| e.tokens).collect();
        let (line, msg) = wire(6, &[], None, 7).unwrap_err();
        assert_eq!(
            (line, msg.as_str()),
            (7, "missing primary server name (MNAME)")
        );
        let (line, msg) = wire(44, &tokens, None, 1).unwrap_err();
        assert_eq!(line, 3, "{msg}");
    }
}
