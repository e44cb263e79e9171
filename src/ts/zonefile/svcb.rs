//! SVCB and HTTPS (RFC 9460) in presentation form: the SvcParams by key,
//! their values decoded and written in key order.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::cursor::{Bad, Fields};
use super::fields::quoted;
use super::fields::{self, base64, unescape};

/// SVCB and HTTPS (RFC 9460 §2.1, Appendix A): the priority, the target (relative or
/// `@` allowed, escapes as in any name) and the SvcParams `key[=value]`, a value quoted
/// or not, its escapes decoded as a character string's; written in key order (NSD
/// sorts them), a key given twice refused.
pub(super) fn service_binding(f: &mut Fields<'_>, origin: Option<&[u8]>) -> Result<Vec<u8>, Bad> {
    let mut out = Vec::new();
    out.extend(f.u16("priority")?.to_be_bytes());
    out.extend(f.name("target name", origin)?);
    let mut params: Vec<(u16, Vec<u8>)> = Vec::new();
    while f.at < f.tokens.len() {
        let token = f.next_token("SvcParam")?;
        if token.quoted {
            let shown = quoted(token.text);
            return Err((
                f.line,
                format!("a quoted \"{shown}\" where a SvcParamKey belongs"),
            ));
        }
        let (key_text, value) = match token.text.iter().position(|&c| c == b'=') {
            None => (token.text, None),
            Some(eq) => {
                let rest = &token.text[eq + 1..];
                let value = match f.tokens.get(f.at) {
                    Some(next) if rest.is_empty() && next.quoted => {
                        f.at += 1;
                        f.line = next.line;
                        next.text
                    }
                    _ => rest,
                };
                (&token.text[..eq], Some(value))
            }
        };
        let key = f.bad(svc_key(key_text))?;
        let value = match value {
            Some(v) => Some(f.bad(unescape(v))?),
            None => None,
        };
        let wire = f.bad(svc_value(key, value.as_deref()))?;
        if params.iter().any(|(k, _)| *k == key) {
            let shown = quoted(key_text);
            return Err((f.line, format!("SvcParamKey {shown} given twice")));
        }
        params.push((key, wire));
    }
    params.sort_by_key(|(k, _)| *k);
    f.bad(self_consistent(&params))?;
    for (key, wire) in params {
        let len = u16::try_from(wire.len())
            .map_err(|_| (f.line, "SvcParamValue over 65,535 bytes".to_string()))?;
        out.extend(key.to_be_bytes());
        out.extend(len.to_be_bytes());
        out.extend(wire);
    }
    Ok(out)
}

/// The RFC 9460 rules a record's SvcParams must keep together (`params`:
/// key and wire value): every key `mandatory` lists is present (§8), and
/// `no-default-alpn` comes with `alpn` (§7.1.1). NSD, Knot and BIND refuse
/// the first; BIND the second too.
fn self_consistent(params: &[(u16, Vec<u8>)]) -> Result<(), String> {
    let has = |key: u16| params.iter().any(|(k, _)| *k == key);
    if let Some((_, list)) = params.iter().find(|(k, _)| *k == 0) {
        for key in list.chunks_exact(2) {
            let key = u16::from_be_bytes([key[0], key[1]]);
            if !has(key) {
                return Err(format!(
                    "mandatory lists {} but the record has no such SvcParam (RFC 9460 §8)",
                    key_name(key)
                ));
            }
        }
    }
    if has(2) && !has(1) {
        return Err("no-default-alpn without alpn (RFC 9460 §7.1.1)".into());
    }
    Ok(())
}

/// The presentation name of SvcParamKey `key`.
fn key_name(key: u16) -> String {
    SVC_KEYS
        .iter()
        .find(|(_, code)| *code == key)
        .map_or_else(|| format!("key{key}"), |(name, _)| (*name).to_owned())
}

/// The SvcParamKeys by name (RFC 9460 §14.3.2, RFC 9461, RFC 9540).
const SVC_KEYS: &[(&str, u16)] = &[
    ("mandatory", 0),
    ("alpn", 1),
    ("no-default-alpn", 2),
    ("port", 3),
    ("ipv4hint", 4),
    ("ech", 5),
    ("ipv6hint", 6),
    ("dohpath", 7),
    ("ohttp", 8),
];

/// A SvcParamKey: a name, or `keyNNNNN` (65535 is reserved), in lower case
/// as RFC 9460 §2.1 writes them (NSD, Knot and BIND refuse `ALPN`).
fn svc_key(raw: &[u8]) -> Result<u16, String> {
    let s = fields::text(raw)?;
    if let Some(&(_, code)) = SVC_KEYS.iter().find(|(name, _)| *name == s) {
        return Ok(code);
    }
    let numbered = s
        .strip_prefix("key")
        .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|k| *k != u16::MAX);
    match numbered {
        Some(k) => Ok(k),
        None if s.bytes().any(|c| c.is_ascii_uppercase())
            && svc_key(s.to_ascii_lowercase().as_bytes()).is_ok() =>
        {
            Err(format!(
                "SvcParamKey '{s}' in upper case (keys are written in lower case, RFC 9460 §2.1)"
            ))
        }
        None => Err(format!("unknown SvcParamKey '{s}'")),
    }
}

/// The items of a comma-separated list; with `escapes`, `\,` and `\\` stand for
/// themselves inside an item (RFC 9460 §A.1's value-list). Empty items are refused.
fn svc_list(value: &[u8], escapes: bool) -> Result<Vec<Vec<u8>>, String> {
    let mut items = Vec::new();
    let mut item = Vec::new();
    let mut at = 0;
    while let Some(&c) = value.get(at) {
        match c {
            b'\\' if escapes => {
                let next = value.get(at + 1).ok_or("a backslash ends the list")?;
                item.push(*next);
                at += 1;
            }
            b',' => items.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
        at += 1;
    }
    items.push(item);
    if items.iter().any(Vec::is_empty) {
        return Err("an empty item in a SvcParam list".into());
    }
    Ok(items)
}

/// The wire form of the value of SvcParamKey `key` (`None`: written without `=`).
fn svc_value(key: u16, value: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let needs = |v: Option<&[u8]>| -> Result<Vec<u8>, String> {
        v.filter(|v| !v.is_empty())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("SvcParamKey {key} needs a value"))
    };
    let text = |b: &[u8]| fields::text(b).map(str::to_owned);
    let mut out = Vec::new();
    match key {
        0 => {
            let mut keys = Vec::new();
            for item in svc_list(&needs(value)?, false)? {
                keys.push(svc_key(&item)?);
            }
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) || keys.contains(&0) {
                return Err("bad mandatory key list".into());
            }
            for k in keys {
                out.extend(k.to_be_bytes());
            }
        }
        1 => {
            for id in svc_list(&needs(value)?, true)? {
                let len = u8::try_from(id.len()).map_err(|_| "ALPN id over 255 bytes")?;
                out.push(len);
                out.extend(id);
            }
        }
        2 | 8 => {
            if value.is_some_and(|v| !v.is_empty()) {
                return Err(format!("SvcParamKey {key} takes no value"));
            }
        }
        3 => {
            let s = text(&needs(value)?)?;
            let port = s.parse::<u16>().map_err(|_| format!("bad port '{s}'"))?;
            out.extend(port.to_be_bytes());
        }
        4 | 6 => {
            for item in svc_list(&needs(value)?, false)? {
                let s = text(&item)?;
                let bad = || format!("bad address '{s}'");
                if key == 4 {
                    out.extend(s.parse::<Ipv4Addr>().map_err(|_| bad())?.octets());
                } else {
                    out.extend(s.parse::<Ipv6Addr>().map_err(|_| bad())?.octets());
                }
            }
        }
        5 => out = base64(&needs(value)?)?,
        7 => {
            let v = needs(value)?;
            text(&v)?;
            out = v;
        }
        _ => out = value.map(<[u8]>::to_vec).unwrap_or_default(),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::rdata::testing::{ORIGIN, ok, w};

    #[test]
    fn service_bindings() {
        let https = ok("HTTPS", "1 . alpn=\"h2,h3\" port=443");
        assert_eq!(https[..3], [0, 1, 0]);
        let svcb = ok("SVCB", "0 svc");
        assert_eq!(svcb, [&[0, 0, 3, b's', b'v', b'c'][..], ORIGIN].concat());
    }

    #[test]
    fn svcb_params_are_decoded_and_sorted() {
        let https = ok(
            "HTTPS",
            "1 . port=443 alpn=\"h2\\\\,h3,h1\" key65000=\"a b\" no-default-alpn",
        );
        let want: &[u8] = &[
            0, 1, 0, // priority 1, target .
            0, 1, 0, 9, 5, b'h', b'2', b',', b'h', b'3', 2, b'h', b'1', // alpn
            0, 2, 0, 0, // no-default-alpn
            0, 3, 0, 2, 1, 187, // port 443
            0xfd, 0xe8, 0, 3, b'a', b' ', b'b', // key65000
        ];
        assert_eq!(https, want);
        let svcb = ok("SVCB", "1 a\\.b. ipv4hint=192.0.2.1,192.0.2.2");
        let want: &[u8] = &[
            0, 1, 3, b'a', b'.', b'b', 0, 0, 4, 0, 8, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        assert_eq!(svcb, want);
        for bad in [
            "1 . alpn=h2 alpn=h3",
            "1 . port=x",
            "1 . alpn=",
            "1 . alpn=h2,,h3",
            "1 . no-default-alpn=x",
            "1 . key65535=x",
            "1 . frob=1",
        ] {
            assert!(w("HTTPS", bad).is_err(), "{bad}");
        }
    }
}
