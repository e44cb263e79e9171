//! The record types NSD reads beside the common ones (X25, ISDN, AVC, NID,
//! L32, L64, LP, PX, EUI48, EUI64, NSAP, WKS, APL, IPSECKEY, LOC), each in
//! its own presentation form.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::cursor::{Bad, Fields};
use super::fields::{self, base64, char_string, hex, name, u8_of};
use super::loc::loc;

/// The types NSD reads beside the common ones (X25, ISDN, AVC, NID, L32, L64, LP, PX,
/// EUI48, EUI64, NSAP, WKS, APL, IPSECKEY, LOC), in wire form; `None` for other types.
pub(super) fn more_types(
    f: &mut Fields<'_>,
    code: u16,
    origin: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, Bad> {
    let mut out = Vec::new();
    match code {
        // X25, ISDN (an address and an optional subaddress), AVC
        19 | 20 | 258 => {
            let rest = f.rest("text")?;
            let most = match code {
                19 => 1,
                20 => 2,
                _ => usize::MAX,
            };
            if rest.len() > most {
                return Err((f.line, "too many strings".into()));
            }
            for token in rest {
                f.line = token.line;
                let r = char_string(token.text, &mut out);
                f.bad(r)?;
            }
            f.at = f.tokens.len();
        }
        // NID, L64: a preference and 64 bits as four groups of hex
        104 | 106 => {
            out.extend(f.u16("preference")?.to_be_bytes());
            let raw = f.next("locator")?;
            let s = f.bad(fields::text(raw))?;
            let groups: Vec<&str> = s.split(':').collect();
            let ok = groups.len() == 4 && groups.iter().all(|g| g.len() == 4);
            for g in &groups {
                match u16::from_str_radix(g, 16) {
                    Ok(v) if ok => out.extend(v.to_be_bytes()),
                    _ => return Err((f.line, format!("bad locator '{s}'"))),
                }
            }
        }
        // L32
        105 => {
            out.extend(f.u16("preference")?.to_be_bytes());
            let ip: Ipv4Addr = f.parsed("locator")?;
            out.extend(ip.octets());
        }
        // LP
        107 => {
            out.extend(f.u16("preference")?.to_be_bytes());
            // NSD writes the name in lower case.
            out.extend(f.name("FQDN", origin)?.to_ascii_lowercase());
        }
        // PX
        26 => {
            out.extend(f.u16("preference")?.to_be_bytes());
            // NSD writes these names in lower case.
            out.extend(f.name("MAP822", origin)?.to_ascii_lowercase());
            out.extend(f.name("MAPX400", origin)?.to_ascii_lowercase());
        }
        // EUI48, EUI64
        108 | 109 => {
            let raw = f.next("address")?;
            let s = f.bad(fields::text(raw))?;
            let want = if code == 108 { 6 } else { 8 };
            let parts: Vec<&str> = s.split('-').collect();
            if parts.len() != want || parts.iter().any(|p| p.len() != 2) {
                return Err((f.line, format!("bad address '{s}'")));
            }
            for p in parts {
                let b = u8::from_str_radix(p, 16)
                    .map_err(|_| (f.line, format!("bad address '{s}'")))?;
                out.push(b);
            }
        }
        // NSAP: 0x and hex, dots anywhere
        22 => {
            let raw = f.next("NSAP address")?;
            let hexed = raw
                .strip_prefix(b"0x")
                .or_else(|| raw.strip_prefix(b"0X"))
                .ok_or_else(|| (f.line, "an NSAP address starts with 0x".to_string()))?;
            let digits: Vec<u8> = hexed.iter().copied().filter(|&c| c != b'.').collect();
            out = f.bad(hex(&digits))?;
            if out.is_empty() {
                return Err((f.line, "empty NSAP address".into()));
            }
        }
        // WKS: an address, a protocol, the ports of the services
        11 => {
            let ip: Ipv4Addr = f.parsed("IPv4 address")?;
            out.extend(ip.octets());
            let raw = f.next("protocol")?;
            let proto = match raw.to_ascii_lowercase().as_slice() {
                b"tcp" => 6,
                b"udp" => 17,
                _ => f.bad(u8_of(raw, "protocol"))?,
            };
            out.push(proto);
            let mut bitmap: Vec<u8> = Vec::new();
            while f.at < f.tokens.len() {
                let port = f.u16("service")?;
                let byte = usize::from(port / 8);
                if bitmap.len() <= byte {
                    bitmap.resize(byte + 1, 0);
                }
                bitmap[byte] |= 0x80 >> (port % 8);
            }
            out.extend(bitmap);
        }
        // APL: [!]afi:address/prefix items
        42 => {
            while f.at < f.tokens.len() {
                let raw = f.next("APL item")?;
                let s = f.bad(fields::text(raw))?;
                let bad = || (f.line, format!("bad APL item '{s}'"));
                let (negate, rest) = match s.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, s),
                };
                let (afi, rest) = rest.split_once(':').ok_or_else(bad)?;
                let (addr, prefix) = rest.split_once('/').ok_or_else(bad)?;
                let prefix = prefix.parse::<u8>().map_err(|_| bad())?;
                let (afi, mut bytes) = match afi {
                    "1" if prefix <= 32 => (
                        1u16,
                        addr.parse::<Ipv4Addr>()
                            .map_err(|_| bad())?
                            .octets()
                            .to_vec(),
                    ),
                    "2" if prefix <= 128 => (
                        2u16,
                        addr.parse::<Ipv6Addr>()
                            .map_err(|_| bad())?
                            .octets()
                            .to_vec(),
                    ),
                    _ => return Err(bad()),
                };
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                out.extend(afi.to_be_bytes());
                out.push(prefix);
                // At most 16 bytes: fits in the 7-bit length.
                out.push(u8::from(negate) << 7 | bytes.len() as u8);
                out.extend(bytes);
            }
        }
        // IPSECKEY (RFC 4025 §3)
        45 => {
            let precedence = f.u8("precedence")?;
            let kind = f.u8("gateway type")?;
            let algorithm = f.u8("algorithm")?;
            out.extend([precedence, kind, algorithm]);
            let raw = f.next("gateway")?;
            let s = f.bad(fields::text(raw))?.to_owned();
            let bad = || (f.line, format!("bad gateway '{s}'"));
            match kind {
                0 if s == "." => {}
                1 => out.extend(s.parse::<Ipv4Addr>().map_err(|_| bad())?.octets()),
                2 => out.extend(s.parse::<Ipv6Addr>().map_err(|_| bad())?.octets()),
                // NSD writes the name in lower case.
                3 => out.extend(f.bad(name(raw, origin))?.to_ascii_lowercase()),
                _ => return Err(bad()),
            }
            if f.at < f.tokens.len() {
                let joined = f.joined("public key")?;
                out.extend(f.bad(base64(&joined))?);
            }
        }
        // LOC (RFC 1876 §3)
        29 => out = loc(f)?,
        _ => return Ok(None),
    }
    Ok(Some(out))
}
