//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018), on
//! raw wire bytes, as pure functions of the bytes, the client's address,
//! the secrets and the time (a made-up clock in tests).
//!
//! A client sends a COOKIE option (code 10): its client cookie (8 bytes),
//! then, once it has learnt one, the server cookie the server gave it (8 to
//! 32 bytes). Any other length is malformed: FORMERR (RFC 7873 §5.2.2,
//! [`MalformedCookie`]). A server cookie of ours is RFC 9018's: Version 1,
//! Reserved (3 bytes), Timestamp (4 bytes, seconds since the epoch) and the
//! Hash (8 bytes), SipHash-2-4 over client cookie | Version | Reserved |
//! Timestamp | client IP (4 or 16 bytes), keyed by a 16-byte secret. Every
//! server that shares the secret (anycast siblings, whatever their
//! software) accepts the others' cookies.
//!
//! [`ServerSecrets`] holds the secrets: the first makes cookies, each one
//! is accepted (rotation: add the new one first, later remove the old, as
//! BIND's `cookie-secret`). [`ServerSecrets::check`] reads a COOKIE and
//! gives its [`CookieVerdict`]: a client cookie only, a valid server cookie, or
//! a bad one (not ours, wrong version, outside its time, another client's).
//! A server cookie is valid from 5 minutes in the future to 1 hour in the
//! past (serial arithmetic on the timestamp), and replaced by a fresh one in
//! the answer once older than 30 minutes, or when an older secret made it
//! ([`CookieCheck::reply`]). [`find`] reads the option out of a raw query,
//! [`set_option`] puts the answer's into a raw response's OPT.
use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use super::limits::HEADER_LEN;
use super::nsid::find_option;
use super::walk::{TYPE_OPT, u16_at, walk_message};

/// EDNS option code of COOKIE (RFC 7873 §4).
pub const COOKIE_OPTION: u16 = 10;
/// Length of a client cookie.
pub const CLIENT_COOKIE_LEN: usize = 8;
/// Length of the server cookies this product makes (RFC 9018 §4).
pub const SERVER_COOKIE_LEN: usize = 16;
/// Length of the COOKIE this product answers with: client + server cookie.
pub const REPLY_COOKIE_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
/// What the answer's COOKIE option adds to an OPT: code, length, payload.
pub const REPLY_OPTION_LEN: usize = 4 + REPLY_COOKIE_LEN;
/// Length of a server secret (RFC 9018 §4.4: 128 bits).
pub const SECRET_LEN: usize = 16;
/// The Version field of RFC 9018's server cookies.
const VERSION: u8 = 1;
/// A server cookie is valid up to this many seconds after its timestamp.
const MAX_AGE: i64 = 3600;
/// ... and from this many seconds before it (a sibling's clock ahead).
const MAX_AHEAD: i64 = 300;
/// A valid server cookie older than this is replaced by a fresh one.
const REFRESH_AGE: i64 = 1800;

/// A COOKIE option of a length RFC 7873 §5.2.2 answers with FORMERR: not
/// 8 bytes, nor 16 to 40.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed COOKIE option ({0} bytes: 8, or 16 to 40)")]
pub struct MalformedCookie(pub usize);

/// A `cookie_secret` that is not 128 bits of hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 32 hex digits (a 128-bit secret), got {0} characters{1}")]
pub struct SecretError(pub usize, &'static str);

/// What a query's COOKIE says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieVerdict {
    /// A client cookie and no server cookie: a first contact.
    ClientOnly,
    /// A server cookie one of our secrets made for this client and client
    /// cookie, within its time: the client's address is proven.
    Valid,
    /// A server cookie we did not make for this client (forged, another
    /// server's, another address's, expired, or another version).
    Bad,
}

/// A query's COOKIE read and checked: its verdict and what the answer needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieCheck {
    /// What the cookie says.
    pub verdict: CookieVerdict,
    /// The client cookie.
    client: [u8; CLIENT_COOKIE_LEN],
    /// The server cookie to echo when it needs no refresh.
    echo: Option<[u8; SERVER_COOKIE_LEN]>,
}

impl std::fmt::Debug for CookieCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCheck")
            .field("verdict", &self.verdict)
            .field("echo", &self.echo.is_some())
            .finish_non_exhaustive()
    }
}

impl CookieCheck {
    /// A valid server cookie: the client is proven (RRL lets it through,
    /// the LS's `truncate` actions spare it).
    pub fn valid(&self) -> bool {
        self.verdict == CookieVerdict::Valid
    }

    /// The COOKIE of the answer to `ip`, at `now`: the client cookie and
    /// the server cookie as sent when it is valid, made by the first secret
    /// and at most 30 minutes old; else a fresh one (RFC 9018 §4.3).
    pub fn reply(&self, secrets: &ServerSecrets, ip: IpAddr, now: u32) -> [u8; REPLY_COOKIE_LEN] {
        let mut out = [0; REPLY_COOKIE_LEN];
        out[..CLIENT_COOKIE_LEN].copy_from_slice(&self.client);
        let server = match self.echo {
            Some(server) => server,
            None => secrets.make(&self.client, ip, now),
        };
        out[CLIENT_COOKIE_LEN..].copy_from_slice(&server);
        out
    }
}

/// The server secrets of one TS or LS: the first makes server cookies,
/// each is accepted. Never printed (its `Debug` says how many there are).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecrets {
    keys: Box<[[u8; SECRET_LEN]]>,
}

impl std::fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerSecrets({} secret(s), not shown)", self.keys.len())
    }
}

/// One secret written as 32 hex digits.
pub fn parse_secret(hex: &str) -> Result<[u8; SECRET_LEN], SecretError> {
    let bad = |why| SecretError(hex.chars().count(), why);
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| bad(" that are not all hex digits"))?;
    bytes.try_into().map_err(|_| bad(""))
}

impl ServerSecrets {
    /// `keys`, the first making cookies; a random one when empty.
    pub fn new(keys: Vec<[u8; SECRET_LEN]>) -> Self {
        if keys.is_empty() {
            return Self::random();
        }
        ServerSecrets { keys: keys.into() }
    }

    /// One secret made at random (each start has its own: its cookies are
    /// not accepted by another instance, nor after a restart).
    pub fn random() -> Self {
        ServerSecrets {
            keys: Box::new([rand::random::<[u8; SECRET_LEN]>()]),
        }
    }

    /// The secrets of a `cookie_secret` list (hex), a random one when it
    /// is empty.
    ///
    /// # Errors
    /// A secret that is not 32 hex digits.
    pub fn from_hex(list: &[String]) -> Result<Self, SecretError> {
        let keys = list
            .iter()
            .map(|h| parse_secret(h))
            .collect::<Result<_, _>>()?;
        Ok(Self::new(keys))
    }

    /// A fresh server cookie for `client` at `ip`, stamped `now`, made by
    /// the first secret (Reserved zero).
    pub fn make(
        &self,
        client: &[u8; CLIENT_COOKIE_LEN],
        ip: IpAddr,
        now: u32,
    ) -> [u8; SERVER_COOKIE_LEN] {
        let mut out = [0; SERVER_COOKIE_LEN];
        out[0] = VERSION;
        out[4..8].copy_from_slice(&now.to_be_bytes());
        let hash = hash(&self.keys[0], client, &out[..8], ip);
        out[8..].copy_from_slice(&hash);
        out
    }

    /// The COOKIE option payload `option` from `ip`, read and checked at
    /// `now` (seconds since the epoch, as RFC 9018's timestamps).
    ///
    /// # Errors
    /// A payload of a length RFC 7873 §5.2.2 calls malformed.
    pub fn check(
        &self,
        option: &[u8],
        ip: IpAddr,
        now: u32,
    ) -> Result<CookieCheck, MalformedCookie> {
        let (client, server) = split(option)?;
        let mut checked = CookieCheck {
            verdict: CookieVerdict::ClientOnly,
            client: *client,
            echo: None,
        };
        let Some(server) = server else {
            return Ok(checked);
        };
        checked.verdict = CookieVerdict::Bad;
        let Ok(server) = <&[u8; SERVER_COOKIE_LEN]>::try_from(server) else {
            return Ok(checked);
        };
        if server[0] != VERSION {
            return Ok(checked);
        }
        let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // RFC 1982 arithmetic: the age is the signed difference.
        let age = i64::from(now.wrapping_sub(stamp) as i32);
        if !(-MAX_AHEAD..=MAX_AGE).contains(&age) {
            return Ok(checked);
        }
        let made_by = self
            .keys
            .iter()
            .position(|k| hash(k, client, &server[..8], ip) == server[8..]);
        let Some(made_by) = made_by else {
            return Ok(checked);
        };
        checked.verdict = CookieVerdict::Valid;
        if made_by == 0 && age <= REFRESH_AGE {
            checked.echo = Some(*server);
        }
        Ok(checked)
    }
}

/// A COOKIE payload as its client cookie and its server cookie, if any.
///
/// # Errors
/// Not 8 bytes, nor 16 to 40 (RFC 7873 §5.2.2).
pub fn split(option: &[u8]) -> Result<(&[u8; CLIENT_COOKIE_LEN], Option<&[u8]>), MalformedCookie> {
    let malformed = MalformedCookie(option.len());
    let (client, server) = option
        .split_first_chunk::<CLIENT_COOKIE_LEN>()
        .ok_or(malformed)?;
    match server.len() {
        0 => Ok((client, None)),
        8..=32 => Ok((client, Some(server))),
        _ => Err(malformed),
    }
}

/// RFC 9018's Hash: SipHash-2-4 over the client cookie, the server
/// cookie's first 8 bytes (Version, Reserved, Timestamp) and the client's
/// address, keyed by `key`, in the byte order RFC 9018 Appendix A shows.
fn hash(
    key: &[u8; SECRET_LEN],
    client: &[u8; CLIENT_COOKIE_LEN],
    head: &[u8],
    ip: IpAddr,
) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(client);
    h.write(head);
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A v4 client on a dual-stack socket is hashed as itself, so
            // that a v4-only sibling accepts its cookie.
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()),
        },
    }
    h.finish().to_le_bytes()
}

/// The payload of the query `raw`'s COOKIE option, if its OPT has one
/// (the first, if several). A plain query (one question, one additional
/// record, nothing else) is read where its OPT must be; any other is
/// walked. `None` without an OPT, or when the message cannot be read.
pub fn find(raw: &[u8]) -> Option<&[u8]> {
    if u16_at(raw, 10)? == 0 {
        return None;
    }
    let plain = u16_at(raw, 4)? == 1 && u16_at(raw, 6)? == 0 && u16_at(raw, 8)? == 0;
    let rdata = match plain.then(|| super::peek_plain_query(raw)).flatten() {
        Some((_, end)) if u16_at(raw, 10)? == 1 => {
            // The OPT: root owner, TYPE, CLASS, TTL, RDLENGTH, RDATA.
            if *raw.get(end)? != 0 || u16_at(raw, end + 1)? != TYPE_OPT {
                return None;
            }
            let len = usize::from(u16_at(raw, end + 9)?);
            raw.get(end + 11..end + 11 + len)?
        }
        _ => {
            let opt = walk_message(raw)?.opt?;
            raw.get(opt.rdata_start..opt.rdata_end)?
        }
    };
    find_option(rdata, COOKIE_OPTION).ok().flatten()
}

/// The answer to a query for a server cookie alone (RFC 7873 §5.4: opcode
/// QUERY, no question, no records but an OPT with a COOKIE), with `rcode`
/// (extended rcodes in the OPT's TTL): the query's ID and RD, an empty OPT
/// that the answering server's cookie goes into. `None` for any other
/// message, which is answered as before (FORMERR for no question).
pub fn cookie_only_answer(raw: &[u8], rcode: u16) -> Option<Vec<u8>> {
    let flags = u16_at(raw, 2)?;
    let counts = [u16_at(raw, 4)?, u16_at(raw, 6)?, u16_at(raw, 8)?];
    if flags & 0xf800 != 0 || counts != [0, 0, 0] {
        return None;
    }
    find(raw)?;
    let mut msg = Vec::with_capacity(HEADER_LEN + 11 + REPLY_OPTION_LEN);
    msg.extend_from_slice(raw.get(..2)?);
    msg.extend_from_slice(&(0x8000 | (flags & 0x0100) | (rcode & 0x000f)).to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    msg.push(0);
    msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
    msg.extend_from_slice(&super::limits::UDP_PAYLOAD_MAX.to_be_bytes());
    // The upper 8 bits of the rcode, version 0, no flags, RDLENGTH 0.
    let upper = u8::try_from(rcode >> 4).ok()?;
    msg.extend_from_slice(&[upper, 0, 0, 0, 0, 0]);
    Some(msg)
}

/// The payload of the COOKIE option in an OPT's RDATA `rdata`, if any.
pub fn in_opt(rdata: &[u8]) -> Option<&[u8]> {
    find_option(rdata, COOKIE_OPTION).ok().flatten()
}

/// Puts `payload` as the COOKIE option of the response `resp`'s OPT: in
/// place of the one there (the echo of the client's), else appended, the
/// OPT's RDLENGTH fixed. Nothing is changed (and `false` returned) when the
/// response has no OPT, is signed, cannot be walked, or would grow past
/// `max_size` bytes.
pub fn set_option(resp: &mut Vec<u8>, payload: &[u8], max_size: usize) -> bool {
    let Some(w) = walk_message(resp).filter(|w| !w.signed && resp.len() >= HEADER_LEN) else {
        return false;
    };
    let Some(opt) = w.opt else {
        return false;
    };
    let Some(rdata) = resp.get(opt.rdata_start..opt.rdata_end) else {
        return false;
    };
    // Where the option's payload lies, if there is one.
    let mut pos = 0;
    let mut old = None;
    while pos + 4 <= rdata.len() {
        let (Some(code), Some(len)) = (u16_at(rdata, pos), u16_at(rdata, pos + 2)) else {
            return false;
        };
        let len = usize::from(len);
        if code == COOKIE_OPTION {
            old = Some((opt.rdata_start + pos, 4 + len));
            break;
        }
        pos += 4 + len;
    }
    let (at, removed) = old.unwrap_or((opt.rdata_end, 0));
    let rdlen = opt.rdata_end - opt.rdata_start + 4 + payload.len() - removed;
    let (Ok(rdlen), Ok(len)) = (u16::try_from(rdlen), u16::try_from(payload.len())) else {
        return false;
    };
    if resp.len() + 4 + payload.len() - removed > max_size || at + removed > resp.len() {
        return false;
    }
    let mut option = Vec::with_capacity(4 + payload.len());
    option.extend_from_slice(&COOKIE_OPTION.to_be_bytes());
    option.extend_from_slice(&len.to_be_bytes());
    option.extend_from_slice(payload);
    resp.splice(at..at + removed, option);
    if let Some(field) = resp.get_mut(opt.rdlen_at..opt.rdlen_at + 2) {
        field.copy_from_slice(&rdlen.to_be_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    fn secrets(keys: &[&str]) -> ServerSecrets {
        ServerSecrets::new(keys.iter().map(|k| parse_secret(k).unwrap()).collect())
    }

    /// The reply of `s` to the COOKIE `sent` (hex) from `ip` at `now`, in hex,
    /// and the verdict.
    fn answer(s: &ServerSecrets, sent: &str, ip: &str, now: u32) -> (CookieVerdict, String) {
        let ip: IpAddr = ip.parse().unwrap();
        let c = s.check(&hex(sent), ip, now).unwrap();
        (
            c.verdict,
            data_encoding::HEXLOWER.encode(&c.reply(s, ip, now)),
        )
    }

    const A_SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

    #[test]
    fn rfc9018_a1_a_new_client_learns_a_server_cookie() {
        let s = secrets(&[A_SECRET]);
        let got = answer(&s, "2464c4abcf10c957", "198.51.100.100", 1559731985);
        let want = "2464c4abcf10c957010000005cf79f111f8130c3eee29480";
        assert_eq!(got, (CookieVerdict::ClientOnly, want.into()));
    }

    #[test]
    fn rfc9018_a2_a_cookie_older_than_half_an_hour_is_valid_and_renewed() {
        let s = secrets(&[A_SECRET]);
        let sent = "2464c4abcf10c957010000005cf79f111f8130c3eee29480";
        let got = answer(&s, sent, "198.51.100.100", 1559734385);
        let want = "2464c4abcf10c957010000005cf7a871d4a564a1442aca77";
        assert_eq!(got, (CookieVerdict::Valid, want.into()));
    }

    #[test]
    fn rfc9018_a3_reserved_bytes_are_hashed_and_a_fresh_cookie_has_them_zero() {
        let s = secrets(&[A_SECRET]);
        let sent = "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5";
        // Valid when it was made (its timestamp, 1559727985)...
        let (verdict, echoed) = answer(&s, sent, "203.0.113.203", 1559727985);
        assert_eq!(
            (verdict, echoed.as_str()),
            (CookieVerdict::Valid, sent),
            "echoed as sent"
        );
        // ... and at the appendix's time, 1 h 52 min later, past its hour:
        // the answer is a fresh cookie, the appendix's bytes.
        let got = answer(&s, sent, "203.0.113.203", 1559734700);
        let want = "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e";
        assert_eq!(got, (CookieVerdict::Bad, want.into()));
    }

    #[test]
    fn rfc9018_a4_an_ipv6_cookie_of_the_old_secret_is_valid_and_renewed_by_the_new() {
        let old = "dd3bdf9344b678b185a6f5cb60fca715";
        let new = "445536bcd2513298075a5d379663c962";
        let sent = "22681ab97d52c298010000005cf7c57926556bd0934c72f8";
        let ip = "2001:db8:220:1:59de:d0f4:8769:82b8";
        let want = "22681ab97d52c298010000005cf7c609a6bb79d16625507a";
        let rolled = secrets(&[new, old]);
        assert_eq!(
            answer(&rolled, sent, ip, 1559741961),
            (CookieVerdict::Valid, want.into())
        );
        // The new secret alone does not know it; the old one alone echoes it.
        assert_eq!(
            answer(&secrets(&[new]), sent, ip, 1559741961),
            (CookieVerdict::Bad, want.into())
        );
        let (v, echoed) = answer(&secrets(&[old]), sent, ip, 1559741961);
        assert_eq!((v, echoed.as_str()), (CookieVerdict::Valid, sent));
    }

    #[test]
    fn a_cookie_is_valid_from_5_minutes_ahead_to_an_hour_old_renewed_past_30_minutes() {
        let s = secrets(&[A_SECRET]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let client = [7; CLIENT_COOKIE_LEN];
        let made = 1_000_000;
        let mut sent = client.to_vec();
        sent.extend_from_slice(&s.make(&client, ip, made));
        let at = |now: u32| s.check(&sent, ip, now).unwrap();
        for (now, verdict, echoed) in [
            (made - 301, CookieVerdict::Bad, false),
            (made - 300, CookieVerdict::Valid, true),
            (made, CookieVerdict::Valid, true),
            (made + 1800, CookieVerdict::Valid, true),
            (made + 1801, CookieVerdict::Valid, false),
            (made + 3600, CookieVerdict::Valid, false),
            (made + 3601, CookieVerdict::Bad, false),
        ] {
            let c = at(now);
            assert_eq!(c.verdict, verdict, "at {now}");
            assert_eq!(c.reply(&s, ip, now)[8..] == sent[8..], echoed, "at {now}");
        }
        // Across the 32-bit wrap (RFC 1982): still an age of 10 s.
        let mut wrapped = client.to_vec();
        wrapped.extend_from_slice(&s.make(&client, ip, u32::MAX - 5));
        assert!(s.check(&wrapped, ip, 4).unwrap().valid());
    }

    #[test]
    fn another_address_client_cookie_version_or_secret_is_a_bad_cookie() {
        let s = secrets(&[A_SECRET]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let client = [7; CLIENT_COOKIE_LEN];
        let mut sent = client.to_vec();
        sent.extend_from_slice(&s.make(&client, ip, 100));
        assert!(s.check(&sent, ip, 100).unwrap().valid());
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(
            s.check(&sent, other, 100).unwrap().verdict,
            CookieVerdict::Bad
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(
            s.check(&sent, mapped, 100).unwrap().valid(),
            "v4-mapped is v4"
        );
        for at in [0, 8, 9, 13, 16, 23] {
            let mut forged = sent.clone();
            forged[at] ^= 1;
            assert_eq!(
                s.check(&forged, ip, 100).unwrap().verdict,
                CookieVerdict::Bad,
                "byte {at}"
            );
        }
        assert_eq!(
            secrets(&["00".repeat(16).as_str()])
                .check(&sent, ip, 100)
                .unwrap()
                .verdict,
            CookieVerdict::Bad
        );
        // Server cookies of other lengths (another server's) are well formed, not ours.
        for len in [8, 15, 17, 32] {
            let c = s.check(&vec![1; 8 + len], ip, 100).unwrap();
            assert_eq!(c.verdict, CookieVerdict::Bad, "{len}");
        }
    }

    #[test]
    fn lengths_other_than_8_or_16_to_40_are_malformed() {
        let s = ServerSecrets::random();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for len in 0..=48 {
            let ok = len == 8 || (16..=40).contains(&len);
            assert_eq!(s.check(&vec![0; len], ip, 0).is_ok(), ok, "{len}");
        }
    }

    #[test]
    fn secrets_are_32_hex_digits_and_never_shown() {
        assert!(parse_secret(A_SECRET).is_ok());
        assert!(parse_secret(&A_SECRET.to_uppercase()).is_ok());
        assert_eq!(parse_secret("abcd"), Err(SecretError(4, "")));
        assert!(parse_secret(&"g".repeat(32)).is_err());
        let shown = format!("{:?}", secrets(&[A_SECRET]));
        assert!(
            !shown.contains("e5e9") && shown.contains("1 secret"),
            "{shown}"
        );
        assert_ne!(ServerSecrets::random(), ServerSecrets::random());
        assert_eq!(ServerSecrets::from_hex(&[]).map(|s| s.keys.len()), Ok(1));
    }

    /// `a.test.` A with an OPT carrying `options`.
    fn query(options: &[u8], questions_after: bool) -> Vec<u8> {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
        if questions_after {
            // The question's name compressed: the walked path.
            q.truncate(HEADER_LEN);
            q.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
            q[5] = 2;
            q.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1]);
        }
        let len = u16::try_from(options.len()).unwrap().to_be_bytes();
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, len[0], len[1]]);
        q.extend_from_slice(options);
        q
    }

    #[test]
    fn the_cookie_is_found_in_a_plain_query_and_a_walked_one() {
        let opt = [0, 3, 0, 0, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        for walked in [false, true] {
            assert_eq!(
                find(&query(&opt, walked)),
                Some(&opt[8..]),
                "walked {walked}"
            );
            assert_eq!(find(&query(&opt[..4], walked)), None, "no cookie");
        }
        assert_eq!(find(&query(&opt, false)[..20]), None, "cut short");
        assert_eq!(find(&[0; 12]), None);
    }

    #[test]
    fn the_answers_cookie_replaces_the_echo_or_is_appended_within_the_size() {
        let echo = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut resp = query(&echo, false);
        resp[2] |= 0x80;
        let payload = [9; REPLY_COOKIE_LEN];
        assert!(
            !set_option(&mut resp.clone(), &payload, resp.len() + 15),
            "too big"
        );
        assert!(set_option(&mut resp, &payload, 512));
        assert_eq!(find(&resp), Some(&payload[..]), "replaced");
        assert_eq!(resp.len(), query(&[], false).len() + REPLY_OPTION_LEN);
        let mut bare = query(&[0, 3, 0, 0], false);
        assert!(set_option(&mut bare, &payload, 512));
        assert_eq!(find(&bare), Some(&payload[..]), "appended");
        let mut no_opt = query(&[], false);
        no_opt.truncate(no_opt.len() - 11);
        no_opt[11] = 0;
        assert!(!set_option(&mut no_opt.clone(), &payload, 512), "no OPT");
    }

    #[test]
    fn a_query_for_a_cookie_alone_gets_an_empty_answer_with_an_opt() {
        // ID 0x1234, RD, no question, one OPT with a client cookie.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
        q.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let a = cookie_only_answer(&q, 0).expect("answered");
        assert_eq!(&a[..12], &[0x12, 0x34, 0x81, 0x00, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&a[12..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(set_option(&mut a.clone(), &[9; REPLY_COOKIE_LEN], 512));
        // BADCOOKIE (23): 7 in the header, 1 in the OPT's TTL.
        let bad = cookie_only_answer(&q, 23).expect("answered");
        assert_eq!((bad[3] & 0x0f, bad[12 + 5]), (7, 1));
        // Not a query for a cookie alone: a question, no COOKIE, a response,
        // another opcode.
        let mut no_cookie = q.clone();
        no_cookie[12 + 11] = 11;
        let mut response = q.clone();
        response[2] |= 0x80;
        let mut notify = q.clone();
        notify[2] = 4 << 3;
        let asked = crate::dns::fixtures::query_bytes(
            "a.example.",
            hickory_proto::rr::RecordType::A,
            Some(1232),
        );
        for m in [no_cookie, response, notify, asked] {
            assert_eq!(cookie_only_answer(&m, 0), None, "{m:?}");
        }
    }
}
