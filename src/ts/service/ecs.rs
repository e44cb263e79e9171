//! The EDNS Client Subnet option (RFC 7871) of a query, read in place
//! ([`find`]: none, one well formed, or [`MalformedEcs`], which the TS answers
//! FORMERR, RFC 7871 §7.1.1), and the option echoed in the answer with the
//! scope the answer depended on ([`ClientSubnet::write_echo`]; scope 0 in
//! the zone's other answers, [`opt_with_echo`]). Pure.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The ECS option code (RFC 7871 §6).
pub const ECS_CODE: u16 = 8;

/// A query's client subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The address, the bits past `source` zero.
    pub addr: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]))
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *b.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return Some(at + 2),
            l if l < 64 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

/// An ECS option in a query that RFC 7871 §6 does not allow: a family
/// other than 1 (IPv4) or 2 (IPv6), a source prefix longer than the
/// family's address, an address of other than ceil(prefix / 8) octets or
/// with bits set past the prefix, a SCOPE other than 0, an option shorter
/// than its fixed 4 octets. The server answers FORMERR (§7.1.1; gdnsd does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedEcs;

/// The ECS option of the OPT in query `raw`: `Ok(None)` when it has none
/// (or the message cannot be walked to its OPT: the other checks judge
/// that), `Err` when it has a malformed one ([`MalformedEcs`]).
pub fn find(raw: &[u8]) -> Result<Option<ClientSubnet>, MalformedEcs> {
    let Some(options) = opt_options(raw) else {
        return Ok(None);
    };
    let mut pos = 0;
    while pos + 4 <= options.len() {
        let (Some(code), Some(len)) = (be16(options, pos), be16(options, pos + 2)) else {
            return Ok(None);
        };
        let Some(data) = options.get(pos + 4..pos + 4 + usize::from(len)) else {
            return Ok(None);
        };
        if code == ECS_CODE {
            return parse(data).map(Some);
        }
        pos += 4 + usize::from(len);
    }
    Ok(None)
}

/// The options (RDATA) of the OPT record of query `raw`, if it has one.
fn opt_options(raw: &[u8]) -> Option<&[u8]> {
    let (qd, an, ns, ar) = (be16(raw, 4)?, be16(raw, 6)?, be16(raw, 8)?, be16(raw, 10)?);
    if qd != 1 || ar == 0 {
        return None;
    }
    let mut at = skip_name(raw, 12)? + 4;
    for _ in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
        at = skip_name(raw, at)?;
        let rtype = be16(raw, at)?;
        let rdlen = usize::from(be16(raw, at + 8)?);
        let rdata = raw.get(at + 10..at + 10 + rdlen)?;
        if rtype == 41 {
            return Some(rdata);
        }
        at += 10 + rdlen;
    }
    None
}

/// One ECS option's data, as a query carries it (RFC 7871 §6).
fn parse(d: &[u8]) -> Result<ClientSubnet, MalformedEcs> {
    let (Some(family), Some(&source), Some(&scope), Some(bytes)) =
        (be16(d, 0), d.get(2), d.get(3), d.get(4..))
    else {
        return Err(MalformedEcs);
    };
    let need = usize::from(source).div_ceil(8);
    if bytes.len() != need || scope != 0 {
        return Err(MalformedEcs);
    }
    let addr = match family {
        1 if source <= 32 => IpAddr::V4(Ipv4Addr::from(padded::<4>(bytes, source)?)),
        2 if source <= 128 => IpAddr::V6(Ipv6Addr::from(padded::<16>(bytes, source)?)),
        _ => return Err(MalformedEcs),
    };
    Ok(ClientSubnet { addr, source })
}

/// The address `bytes` begin, zero-padded to `N` bytes; malformed if it
/// has a bit set past `source` (RFC 7871 §6).
fn padded<const N: usize>(bytes: &[u8], source: u8) -> Result<[u8; N], MalformedEcs> {
    let mut a = [0u8; N];
    a.get_mut(..bytes.len())
        .ok_or(MalformedEcs)?
        .copy_from_slice(bytes);
    if mask(a, source) != a {
        return Err(MalformedEcs);
    }
    Ok(a)
}

/// `a` with the bits past `prefix` cleared.
fn mask<const N: usize>(mut a: [u8; N], prefix: u8) -> [u8; N] {
    for (i, byte) in a.iter_mut().enumerate() {
        let bits = usize::from(prefix).saturating_sub(i * 8).min(8);
        *byte &= !(0xFFu8
            .checked_shr(u32::try_from(bits).unwrap_or(8))
            .unwrap_or(0));
    }
    a
}

impl ClientSubnet {
    /// Appends the option echoed with `scope` (RFC 7871 §7.2.1: family,
    /// source prefix and address as sent).
    pub fn write_echo(&self, scope: u8, out: &mut Vec<u8>) {
        let need = usize::from(self.source).div_ceil(8);
        let (family, octets): (u16, [u8; 16]) = match self.addr {
            IpAddr::V4(a) => {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&a.octets());
                (1, o)
            }
            IpAddr::V6(a) => (2, a.octets()),
        };
        out.extend_from_slice(&ECS_CODE.to_be_bytes());
        let len = u16::try_from(4 + need).unwrap_or(4);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&family.to_be_bytes());
        out.push(self.source);
        out.push(scope);
        out.extend_from_slice(&octets[..need]);
    }
}

/// The OPT of an answer that does not depend on the client's subnet (a
/// name no service holds): `opt` (an OPT record without options, as
/// `answer::opt_record` writes it) with `ecs` echoed at scope 0. RFC 7871
/// §7.2.1: a server that implements ECS echoes the option, and scope 0
/// says the answer suits every subnet (as gdnsd answers).
pub fn opt_with_echo(opt: &[u8], ecs: &ClientSubnet) -> Vec<u8> {
    let mut out = opt.to_vec();
    ecs.write_echo(0, &mut out);
    let rdlen = u16::try_from(out.len().saturating_sub(opt.len())).unwrap_or(0);
    if let Some(at) = out.get_mut(9..11) {
        at.copy_from_slice(&rdlen.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet as HSubnet, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    fn query(subnet: Option<(&str, u8)>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.example.org.").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        if let Some((addr, prefix)) = subnet {
            let s = HSubnet::new(addr.parse::<IpAddr>().unwrap(), prefix, 0);
            e.options_mut().insert(EdnsOption::Subnet(s));
        }
        m.set_edns(e);
        m.to_vec().unwrap()
    }

    #[test]
    fn the_option_is_read_and_echoed_with_the_scope() {
        let got = find(&query(Some(("10.1.2.0", 24)))).unwrap().unwrap();
        assert_eq!(got.addr, "10.1.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(got.source, 24);
        let mut out = Vec::new();
        got.write_echo(8, &mut out);
        assert_eq!(out, [0, 8, 0, 7, 0, 1, 24, 8, 10, 1, 2]);
        let v6 = find(&query(Some(("2001:db8:1::", 56)))).unwrap().unwrap();
        assert_eq!(v6.addr, "2001:db8:1::".parse::<IpAddr>().unwrap());
        assert_eq!(find(&query(None)), Ok(None));
        let zero = find(&query(Some(("0.0.0.0", 0)))).unwrap().unwrap();
        assert_eq!(zero.source, 0);
        assert_eq!(find(&[0; 5]), Ok(None), "no OPT to read: not ours to judge");
    }

    /// A query for www.example.org A with an OPT holding one option
    /// `data` of code 8 (ECS), built by hand.
    fn with_option(data: &[u8]) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0]);
        let len = u16::try_from(4 + data.len()).unwrap();
        q.extend_from_slice(&len.to_be_bytes());
        q.extend_from_slice(&[0, 8]);
        q.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        q.extend_from_slice(data);
        q
    }

    #[test]
    fn each_malformed_option_of_rfc7871_section_6_is_malformed() {
        let cases: [(&str, &[u8]); 11] = [
            ("family 3", &[0, 3, 8, 0, 10]),
            ("family 0", &[0, 0, 0, 0]),
            ("IPv4 /33", &[0, 1, 33, 0, 1, 2, 3, 4, 5]),
            (
                "IPv6 /129",
                &[
                    0, 2, 129, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            ("/24 with 5 octets", &[0, 1, 24, 0, 10, 1, 2, 3, 4]),
            ("/24 with 2 octets", &[0, 1, 24, 0, 10, 1]),
            ("/0 with 1 octet", &[0, 1, 0, 0, 10]),
            ("bits past /9", &[0, 1, 9, 0, 10, 0xFF]),
            ("bits past /12 in an octet", &[0, 1, 12, 0, 10, 0x1F]),
            ("scope 8 in a query", &[0, 1, 24, 8, 10, 1, 2]),
            ("too short", &[0, 1]),
        ];
        for (what, data) in cases {
            assert_eq!(find(&with_option(data)), Err(MalformedEcs), "{what}");
        }
        let fine = find(&with_option(&[0, 1, 12, 0, 10, 0x10]))
            .unwrap()
            .unwrap();
        assert_eq!(fine.addr, "10.16.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask([0xFF, 0xFF], 12), [0xFF, 0xF0]);
    }
}
