//! TSIG (RFC 8945): transaction signatures with a shared secret, as NSD, Knot
//! and BIND use them on zone transfers and NOTIFY.
//!
//! - [`Key`]: a named secret and its HMAC algorithm (hmac-sha256/384/512,
//!   [`Algorithm`]); its `Debug` never shows the secret.
//! - [`verify_request`]: a request's TSIG checked against the key a server
//!   expects: unsigned, unreadable before any TSIG (the ordinary checks
//!   answer it), [`Verified`] (the MAC the answer must build on), or
//!   [`Rejected`] with the TSIG error (BADKEY, BADSIG, BADTIME, BADTRUNC) or
//!   FORMERR for a malformed record; [`Rejected::answer`] adds the TSIG of
//!   the error answer (unsigned for BADKEY and BADSIG, signed otherwise,
//!   §5.3.2).
//! - [`Signer`]: signs message after message of an answer (the request's MAC
//!   first, §5.3; then the prior MAC, the message and the timers, §5.3.1), or
//!   a request such as a NOTIFY, whose answer [`verify_response`] checks.
//!
//! The HMACs are `ring`'s; a full MAC is checked with `ring::hmac::verify`
//! (constant time). Every function takes hostile bytes: no panic, no
//! unbounded allocation (the record is read in place, see `record.rs`).
use std::fmt;
use std::sync::Arc;

use ring::hmac;

mod record;
#[cfg(test)]
mod tests;

pub use record::{Malformed, TsigRecord, find};
use record::{Scan, append, scan, time48};

/// Seconds of clock difference a signature allows either side (RFC 8945
/// §10 recommends 300).
pub const FUDGE: u16 = 300;

/// The shortest MAC accepted, as a share of the hash: the whole of it (a
/// truncated MAC that verifies is answered BADTRUNC, §5.2.2.1's local
/// policy).
const FULL_MAC_ONLY: bool = true;

/// A TSIG algorithm this product signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA256 (`hmac-sha256.`).
    HmacSha256,
    /// HMAC-SHA384 (`hmac-sha384.`).
    HmacSha384,
    /// HMAC-SHA512 (`hmac-sha512.`).
    HmacSha512,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 3] = [
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// Its name as `tsig-keygen`, `dig -y` and the configs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm named `text` (case aside, a final dot allowed).
    pub fn from_name(text: &str) -> Option<Self> {
        let text = text.strip_suffix('.').unwrap_or(text);
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(text))
    }

    /// Its name in wire form (one label, then the root).
    fn wire_name(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    /// The length of its MAC (the hash's), in bytes.
    pub fn mac_len(self) -> usize {
        self.ring().digest_algorithm().output_len()
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key name that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key name {0:?} is not a DNS name")]
pub struct BadKeyName(pub String);

/// A TSIG key: its name, algorithm and secret. `Debug` shows the name and
/// algorithm only.
pub struct Key {
    /// The name, lower case, in wire form.
    name: Vec<u8>,
    /// The name as configured.
    text: String,
    algorithm: Algorithm,
    hmac: hmac::Key,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.text)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key `name` (a DNS name such as `xfr` or `xfr.example.`) with
    /// `secret` for `algorithm`.
    ///
    /// # Errors
    /// A name that is not a DNS name.
    pub fn new(name: &str, algorithm: Algorithm, secret: &[u8]) -> Result<Self, BadKeyName> {
        let wire = name_wire(name).ok_or_else(|| BadKeyName(name.to_owned()))?;
        Ok(Key {
            name: wire,
            text: name.to_owned(),
            algorithm,
            hmac: hmac::Key::new(algorithm.ring(), secret),
        })
    }

    /// Its name as configured.
    pub fn name(&self) -> &str {
        &self.text
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The bytes the TSIG record it signs a message with adds (no error,
    /// no other data): its name, the fixed fields, the algorithm's name and
    /// the full MAC. An answer to be signed is sized to its limit less this
    /// (RFC 8945 §5.3).
    pub fn tsig_len(&self) -> usize {
        // TYPE, CLASS, TTL, RDLENGTH; time signed, fudge, MAC size, original
        // ID, error, other length.
        const FIXED: usize = 2 + 2 + 4 + 2;
        const RDATA_FIXED: usize = 6 + 2 + 2 + 2 + 2 + 2;
        self.name.len()
            + FIXED
            + self.algorithm.wire_name().len()
            + RDATA_FIXED
            + self.algorithm.mac_len()
    }
}

/// `name` in lower-case wire form, fully qualified; `None` when it is not
/// a DNS name.
fn name_wire(name: &str) -> Option<Vec<u8>> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            let len = u8::try_from(label.len())
                .ok()
                .filter(|&l| (1..64).contains(&l))?;
            out.push(len);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// A wire-form name in lower case (for comparing and for the MAC, which
/// RFC 8945 §4.3.3 computes over canonical names).
fn lower(wire: &[u8]) -> Vec<u8> {
    wire.iter().map(u8::to_ascii_lowercase).collect()
}

/// A TSIG error (RFC 8945 §3, the TSIG record's Error field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsigError {
    /// 16: the MAC does not verify.
    BadSig,
    /// 17: the key is not known (name or algorithm).
    BadKey,
    /// 18: the time signed is outside the fudge.
    BadTime,
    /// 22: the MAC is shorter than local policy allows.
    BadTrunc,
}

impl TsigError {
    /// Every error, in the order the metrics list them.
    pub const ALL: [TsigError; 4] = [
        TsigError::BadSig,
        TsigError::BadKey,
        TsigError::BadTime,
        TsigError::BadTrunc,
    ];

    /// Its code.
    pub fn code(self) -> u16 {
        match self {
            TsigError::BadSig => 16,
            TsigError::BadKey => 17,
            TsigError::BadTime => 18,
            TsigError::BadTrunc => 22,
        }
    }

    /// Its mnemonic, as `dig` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigError::BadSig => "BADSIG",
            TsigError::BadKey => "BADKEY",
            TsigError::BadTime => "BADTIME",
            TsigError::BadTrunc => "BADTRUNC",
        }
    }
}

impl fmt::Display for TsigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a MAC of `len` bytes may stand for `algorithm`'s (§5.2.2.1):
/// `Err(Malformed)` longer than the hash or shorter than the larger of 10
/// bytes and half the hash (the RFC: "MUST cause the DNS message to be
/// dropped and RCODE 1 (FORMERR) to be returned"; NSD and Knot answer
/// NOTAUTH/BADSIG there instead); `Ok(true)` when it is truncated.
fn mac_size(algorithm: Algorithm, len: usize) -> Result<bool, Malformed> {
    let full = algorithm.mac_len();
    if len > full || len < (full / 2).max(10) {
        return Err(Malformed);
    }
    Ok(len < full)
}

/// What goes into a MAC besides the message: the MAC it builds on (the
/// request's, or the prior message's), and the TSIG variables in full or
/// the timers only (§4.3.3, §5.3.1).
struct MacInput<'a> {
    prior: Option<&'a [u8]>,
    time_signed: u64,
    fudge: u16,
    /// `None`: the timers only.
    full: Option<(u16, &'a [u8])>,
}

/// The bytes a MAC covers: `input`'s prior MAC, the message `head` (its
/// 12-byte header as signed) + `body`, then the TSIG variables.
fn mac_data(key: &Key, head: &[u8], body: &[u8], input: &MacInput<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 128);
    let len16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
    if let Some(prior) = input.prior {
        out.extend_from_slice(&len16(prior.len()));
        out.extend_from_slice(prior);
    }
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    if let Some((error, other)) = input.full {
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&record::CLASS_ANY.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(key.algorithm.wire_name());
        out.extend_from_slice(&time48(input.time_signed));
        out.extend_from_slice(&input.fudge.to_be_bytes());
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&len16(other.len()));
        out.extend_from_slice(other);
    } else {
        out.extend_from_slice(&time48(input.time_signed));
        out.extend_from_slice(&input.fudge.to_be_bytes());
    }
    out
}

/// The header of `msg` as it was signed: the original ID, ARCOUNT less the
/// TSIG.
fn signed_header(msg: &[u8], original_id: u16) -> Option<[u8; 12]> {
    let mut head: [u8; 12] = msg.get(..12)?.try_into().ok()?;
    head[..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([head[10], head[11]]).checked_sub(1)?;
    head[10..].copy_from_slice(&ar.to_be_bytes());
    Some(head)
}

/// Whether `mac` is the MAC of `data`, or its first bytes, compared in
/// constant time.
fn mac_matches(key: &Key, data: &[u8], mac: &[u8]) -> bool {
    if mac.len() == key.algorithm.mac_len() {
        // The full MAC: ring's own check (constant time).
        return hmac::verify(&key.hmac, data, mac).is_ok();
    }
    let tag = hmac::sign(&key.hmac, data);
    let Some(expected) = tag.as_ref().get(..mac.len()) else {
        return false;
    };
    let diff = expected
        .iter()
        .zip(mac)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// A request whose TSIG verified: what its answer is signed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The request's MAC.
    pub mac: Vec<u8>,
    /// Its time signed.
    pub time_signed: u64,
    /// Where its TSIG record started: the request without it is
    /// [`Verified::unsigned`].
    pub start: usize,
}

impl Verified {
    /// The request without its TSIG (ARCOUNT one less), to answer as if it
    /// had come unsigned.
    pub fn unsigned(&self, msg: &[u8]) -> Vec<u8> {
        strip(msg, self.start)
    }
}

/// `msg[..start]` with ARCOUNT one less.
fn strip(msg: &[u8], start: usize) -> Vec<u8> {
    let mut out = msg.get(..start).unwrap_or(msg).to_vec();
    if let Some(ar) = out.get_mut(10..12) {
        let n = u16::from_be_bytes([ar[0], ar[1]]).saturating_sub(1);
        ar.copy_from_slice(&n.to_be_bytes());
    }
    out
}

/// A request whose TSIG did not verify, with what its error answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The TSIG error; `None`: the record is malformed (FORMERR, no TSIG in
    /// the answer).
    pub error: Option<TsigError>,
    key_name: Vec<u8>,
    algorithm: Vec<u8>,
    time_signed: u64,
    fudge: u16,
    /// The request's MAC (an answer signed on it: BADTIME, BADTRUNC).
    mac: Vec<u8>,
    /// Where the request's TSIG started (0 when malformed).
    pub start: usize,
}

impl Rejected {
    fn new(error: TsigError, r: &TsigRecord<'_>) -> Self {
        Rejected {
            error: Some(error),
            key_name: r.key_name.to_vec(),
            algorithm: r.algorithm.to_vec(),
            time_signed: r.time_signed,
            fudge: r.fudge,
            mac: r.mac.to_vec(),
            start: r.start,
        }
    }

    fn malformed() -> Self {
        Rejected {
            error: None,
            key_name: Vec::new(),
            algorithm: Vec::new(),
            time_signed: 0,
            fudge: 0,
            mac: Vec::new(),
            start: 0,
        }
    }

    /// The request without its TSIG, to build the error answer from
    /// (`None` when the record is malformed: it cannot be cut off).
    pub fn unsigned(&self, msg: &[u8]) -> Option<Vec<u8>> {
        self.error.map(|_| strip(msg, self.start))
    }

    /// Adds the TSIG of the error answer `msg` (RCODE NOTAUTH, made by the
    /// caller) at `now`: for BADKEY and BADSIG an unsigned one naming the
    /// request's key and algorithm (§5.3.2); for BADTIME one signed with
    /// `key`, carrying the request's time signed and the server's time in
    /// its other data (§5.2.3); for BADTRUNC one signed with `key`. (Without
    /// a key only BADKEY comes: [`verify_without_key`].)
    pub fn answer(&self, key: Option<&Key>, msg: &mut Vec<u8>, now: u64) {
        let Some(error) = self.error else {
            return;
        };
        let original_id = u16::from_be_bytes([
            msg.first().copied().unwrap_or(0),
            msg.get(1).copied().unwrap_or(0),
        ]);
        let signing = match (error, key) {
            (TsigError::BadTime | TsigError::BadTrunc, Some(key)) => Some(key),
            _ => None,
        };
        match signing {
            None => append(
                msg,
                &TsigRecord {
                    start: 0,
                    key_name: &self.key_name,
                    algorithm: &self.algorithm,
                    time_signed: self.time_signed,
                    fudge: self.fudge,
                    mac: &[],
                    original_id,
                    error: error.code(),
                    other: &[],
                },
            ),
            Some(key) => {
                let server_time = time48(now);
                let (time_signed, other): (u64, &[u8]) = if error == TsigError::BadTime {
                    (self.time_signed, &server_time)
                } else {
                    (now, &[])
                };
                let mut signer = Signer {
                    key: None,
                    prior: Some(self.mac.clone()),
                    first: true,
                };
                signer.sign_with(key, msg, time_signed, error.code(), other);
            }
        }
    }
}

/// What [`verify_request`] made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// No TSIG record.
    Unsigned,
    /// A message that cannot be walked before any TSIG record is seen (a
    /// count that lies, a record past the end): no TSIG matter, the
    /// ordinary checks answer it (FORMERR).
    Unreadable,
    /// A TSIG by the key, that verified, in time.
    Signed(Verified),
    /// A TSIG that did not verify, or a malformed one.
    Rejected(Rejected),
}

/// Checks the TSIG of the request `msg` against `key` at `now` (seconds
/// since the epoch), in RFC 8945 §5.2's order: the record's form (FORMERR),
/// the key's name and algorithm (BADKEY, §5.2.1), the MAC (FORMERR for a
/// size §5.2.2.1 forbids, else BADSIG, §5.2.2), the time (BADTIME, §5.2.3),
/// then BADTRUNC for a truncated MAC (§5.2.4).
pub fn verify_request(msg: &[u8], key: &Key, now: u64) -> Checked {
    let r = match scan(msg) {
        Scan::Unsigned => return Checked::Unsigned,
        Scan::Unreadable => return Checked::Unreadable,
        Scan::Signed(r) => r,
        Scan::Malformed => return Checked::Rejected(Rejected::malformed()),
    };
    match check(msg, &r, key, None, now) {
        Ok(()) => Checked::Signed(Verified {
            mac: r.mac.to_vec(),
            time_signed: r.time_signed,
            start: r.start,
        }),
        Err(Some(error)) => Checked::Rejected(Rejected::new(error, &r)),
        Err(None) => Checked::Rejected(Rejected::malformed()),
    }
}

/// [`verify_request`] for a server that holds no key: a request signed
/// with any key is [`Rejected`] with BADKEY (RFC 8945 §5.2.1: "the key is
/// not recognized by the server"), as NSD without a key answers it, rather
/// than answered unsigned as if it had not been signed.
pub fn verify_without_key(msg: &[u8]) -> Checked {
    match scan(msg) {
        Scan::Unsigned => Checked::Unsigned,
        Scan::Unreadable => Checked::Unreadable,
        Scan::Signed(r) => Checked::Rejected(Rejected::new(TsigError::BadKey, &r)),
        Scan::Malformed => Checked::Rejected(Rejected::malformed()),
    }
}

/// The checks of [`verify_request`] on the record `r` of `msg`, the MAC
/// built on `prior` (a response's: the request's MAC). `Err(None)`: a MAC
/// size §5.2.2.1 forbids.
fn check(
    msg: &[u8],
    r: &TsigRecord<'_>,
    key: &Key,
    prior: Option<&[u8]>,
    now: u64,
) -> Result<(), Option<TsigError>> {
    if lower(r.key_name) != key.name || lower(r.algorithm) != key.algorithm.wire_name() {
        return Err(Some(TsigError::BadKey));
    }
    let truncated = mac_size(key.algorithm, r.mac.len()).map_err(|Malformed| None)?;
    let head = signed_header(msg, r.original_id).ok_or(None)?;
    let body = msg.get(12..r.start).ok_or(None)?;
    let input = MacInput {
        prior,
        time_signed: r.time_signed,
        fudge: r.fudge,
        full: Some((r.error, r.other)),
    };
    if !mac_matches(key, &mac_data(key, &head, body, &input), r.mac) {
        return Err(Some(TsigError::BadSig));
    }
    if now.abs_diff(r.time_signed) > u64::from(r.fudge) {
        return Err(Some(TsigError::BadTime));
    }
    if truncated && FULL_MAC_ONLY {
        return Err(Some(TsigError::BadTrunc));
    }
    Ok(())
}

/// What [`verify_response`] made of an answer to a signed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCheck {
    /// Unsigned (a peer may answer a NOTIFY so).
    Unsigned,
    /// Signed by the key, on the request's MAC, in time; with the TSIG
    /// error the peer reported (0 = none).
    Signed(u16),
    /// A TSIG with no MAC: the form of a peer's BADSIG or BADKEY answer
    /// (RFC 8945 §5.3.2), with that error. Nobody vouches for it: it may
    /// say why the peer refused, never that it accepted.
    Unverified(u16),
}

/// Checks the TSIG of `msg`, the answer to a request signed with `key`
/// whose MAC was `request_mac`, at `now`.
///
/// # Errors
/// The TSIG error found (a malformed record counts as BADSIG: the answer
/// cannot be trusted).
pub fn verify_response(
    msg: &[u8],
    key: &Key,
    request_mac: &[u8],
    now: u64,
) -> Result<ResponseCheck, TsigError> {
    let r = match find(msg) {
        Ok(None) => return Ok(ResponseCheck::Unsigned),
        Ok(Some(r)) => r,
        Err(Malformed) => return Err(TsigError::BadSig),
    };
    if r.mac.is_empty() {
        // An unsigned error answer (BADKEY, BADSIG from the peer).
        return Ok(ResponseCheck::Unverified(r.error));
    }
    match check(msg, &r, key, Some(request_mac), now) {
        Ok(()) => Ok(ResponseCheck::Signed(r.error)),
        // The peer's BADTIME answer carries its time, ours is off.
        Err(Some(TsigError::BadTime)) if r.error != 0 => Ok(ResponseCheck::Signed(r.error)),
        Err(e) => Err(e.unwrap_or(TsigError::BadSig)),
    }
}

/// Most messages of a multi-message answer that may come unsigned in a row
/// (RFC 8945 §5.3.1: "the client MUST accept up to 99").
const UNSIGNED_RUN_MAX: usize = 99;

/// Checks, message after message, the answer to a request of ours signed
/// with a key (a zone transfer, RFC 8945 §5.3.1): the first message must
/// be signed on the request's MAC with the TSIG variables in full; later
/// ones on the prior MAC, the unsigned messages since and the timers only;
/// at most 99 unsigned in a row; and the answer must end on a signed one
/// ([`StreamVerifier::ends_signed`]).
#[derive(Debug)]
pub struct StreamVerifier {
    key: Arc<Key>,
    prior: Vec<u8>,
    first: bool,
    /// The unsigned messages since the last signed one, as received.
    unsigned: Vec<u8>,
    run: usize,
}

impl StreamVerifier {
    /// A verifier of the answer to a request signed with `key`, whose MAC
    /// was `request_mac` ([`Signer::last_mac`]).
    pub fn new(key: Arc<Key>, request_mac: &[u8]) -> Self {
        StreamVerifier {
            key,
            prior: request_mac.to_vec(),
            first: true,
            unsigned: Vec::new(),
            run: 0,
        }
    }

    /// Checks the next message at `now`: `Ok(true)` signed and verified,
    /// `Ok(false)` unsigned (allowed between signed ones).
    ///
    /// # Errors
    /// The TSIG error: a first message unsigned, more than 99 unsigned in a
    /// row, an error reported by the peer, a MAC that does not verify, a
    /// time outside the fudge, a malformed record (BADSIG).
    pub fn check(&mut self, msg: &[u8], now: u64) -> Result<bool, TsigError> {
        let r = match find(msg) {
            Ok(None) => {
                if self.first || self.run >= UNSIGNED_RUN_MAX {
                    return Err(TsigError::BadSig);
                }
                self.unsigned.extend_from_slice(msg);
                self.run += 1;
                return Ok(false);
            }
            Ok(Some(r)) => r,
            Err(Malformed) => return Err(TsigError::BadSig),
        };
        let key = &self.key;
        if lower(r.key_name) != key.name || lower(r.algorithm) != key.algorithm.wire_name() {
            return Err(TsigError::BadKey);
        }
        if r.error != 0 || r.mac.len() != key.algorithm.mac_len() {
            return Err(TsigError::ALL
                .into_iter()
                .find(|e| e.code() == r.error)
                .unwrap_or(TsigError::BadSig));
        }
        let head = signed_header(msg, r.original_id).ok_or(TsigError::BadSig)?;
        let body = msg.get(12..r.start).ok_or(TsigError::BadSig)?;
        let len16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
        let mut lead = Vec::with_capacity(2 + self.prior.len() + self.unsigned.len() + 12);
        lead.extend_from_slice(&len16(self.prior.len()));
        lead.extend_from_slice(&self.prior);
        lead.extend_from_slice(&self.unsigned);
        lead.extend_from_slice(&head);
        let input = MacInput {
            prior: None,
            time_signed: r.time_signed,
            fudge: r.fudge,
            full: self.first.then_some((r.error, r.other)),
        };
        if !mac_matches(key, &mac_data(key, &lead, body, &input), r.mac) {
            return Err(TsigError::BadSig);
        }
        if now.abs_diff(r.time_signed) > u64::from(r.fudge) {
            return Err(TsigError::BadTime);
        }
        self.prior = r.mac.to_vec();
        self.first = false;
        self.unsigned.clear();
        self.run = 0;
        Ok(true)
    }

    /// Whether the messages checked so far end on a signed one (a transfer
    /// whose last message is unsigned is not vouched for).
    pub fn ends_signed(&self) -> bool {
        !self.first && self.run == 0
    }
}

/// Signs messages one after another with a key: the answer to a verified
/// request (each message of a multi-message answer in turn, RFC 8945
/// §5.3.1), or a request of ours.
#[derive(Debug)]
pub struct Signer {
    key: Option<Arc<Key>>,
    /// The MAC the next message builds on: the request's, then each
    /// message's own.
    prior: Option<Vec<u8>>,
    /// Whether the next message is the first (TSIG variables in full).
    first: bool,
}

impl Signer {
    /// A signer of the answer to `request` (verified with `key`).
    pub fn answer(key: Arc<Key>, request: &Verified) -> Self {
        Signer {
            key: Some(key),
            prior: Some(request.mac.clone()),
            first: true,
        }
    }

    /// A signer of a request of ours (a NOTIFY).
    pub fn request(key: Arc<Key>) -> Self {
        Signer {
            key: Some(key),
            prior: None,
            first: true,
        }
    }

    /// Signs `msg` now: appends its TSIG record and adds one to ARCOUNT.
    pub fn sign(&mut self, msg: &mut Vec<u8>) {
        self.sign_at(msg, crate::clock::unix_now());
    }

    /// [`Signer::sign`] with the time signed `now`.
    pub fn sign_at(&mut self, msg: &mut Vec<u8>, now: u64) {
        if let Some(key) = self.key.clone() {
            self.sign_with(&key, msg, now, 0, &[]);
        }
    }

    /// The MAC of the last message signed (a request's, for checking its
    /// answer with [`verify_response`]).
    pub fn last_mac(&self) -> &[u8] {
        self.prior.as_deref().unwrap_or_default()
    }

    fn sign_with(&mut self, key: &Key, msg: &mut Vec<u8>, now: u64, error: u16, other: &[u8]) {
        let Some(head) = msg.get(..12).and_then(|h| <[u8; 12]>::try_from(h).ok()) else {
            return;
        };
        let original_id = u16::from_be_bytes([head[0], head[1]]);
        let input = MacInput {
            prior: self.prior.as_deref(),
            time_signed: now,
            fudge: FUDGE,
            full: self.first.then_some((error, other)),
        };
        let data = mac_data(key, &head, msg.get(12..).unwrap_or_default(), &input);
        let tag = hmac::sign(&key.hmac, &data);
        append(
            msg,
            &TsigRecord {
                start: 0,
                key_name: &key.name,
                algorithm: key.algorithm.wire_name(),
                time_signed: now,
                fudge: FUDGE,
                mac: tag.as_ref(),
                original_id,
                error,
                other,
            },
        );
        self.prior = Some(tag.as_ref().to_vec());
        self.first = false;
    }
}
