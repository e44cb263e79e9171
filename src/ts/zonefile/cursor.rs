//! The fields of one record's data, read in order ([`Fields`]), each error
//! located at the line of the field at fault ([`Bad`]).
use super::fields::quoted;
use super::fields::{name, name_onto, u8_of, u16_of, u32_of};
use super::lexer::Token;

/// A problem with a record's data: the line of the field, and what is wrong.
pub(super) type Bad = (usize, String);

/// The fields of one record's data, read in order.
pub(super) struct Fields<'a> {
    pub(super) tokens: &'a [Token<'a>],
    pub(super) at: usize,
    /// The line of the last field read (or of the record, before the first).
    pub(super) line: usize,
}

impl<'a> Fields<'a> {
    /// The next field, or `missing WHAT`.
    pub(super) fn next(&mut self, what: &str) -> Result<&'a [u8], Bad> {
        let token = self.next_token(what)?;
        Ok(token.text)
    }

    pub(super) fn next_token(&mut self, what: &str) -> Result<&'a Token<'a>, Bad> {
        match self.tokens.get(self.at) {
            Some(token) => {
                self.at += 1;
                self.line = token.line;
                Ok(token)
            }
            None => Err((self.line, format!("missing {what}"))),
        }
    }

    /// An error about the last field read.
    pub(super) fn bad<T>(&self, result: Result<T, String>) -> Result<T, Bad> {
        result.map_err(|msg| (self.line, msg))
    }

    /// The fields left, at least one (`missing WHAT` if none).
    pub(super) fn rest(&mut self, what: &str) -> Result<&'a [Token<'a>], Bad> {
        if self.at >= self.tokens.len() {
            return Err((self.line, format!("missing {what}")));
        }
        let rest = &self.tokens[self.at..];
        self.at = self.tokens.len();
        if let Some(last) = rest.last() {
            self.line = last.line;
        }
        Ok(rest)
    }

    /// The fields left, joined (hex and base64 may be split by white space).
    pub(super) fn joined(&mut self, what: &str) -> Result<Vec<u8>, Bad> {
        Ok(self
            .rest(what)?
            .iter()
            .flat_map(|t| t.text.iter().copied())
            .collect())
    }

    /// Errors if any field is left.
    pub(super) fn done(&self) -> Result<(), Bad> {
        match self.tokens.get(self.at) {
            None => Ok(()),
            Some(extra) => Err((
                extra.line,
                format!("unexpected '{}' after the record data", quoted(extra.text)),
            )),
        }
    }

    /// The next field read as `T` (an address), or `bad WHAT 'FIELD'`.
    pub(super) fn parsed<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, Bad> {
        let raw = self.next(what)?;
        self.bad(
            std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse::<T>().ok())
                .ok_or_else(|| format!("bad {what} '{}'", quoted(raw))),
        )
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, Bad> {
        let raw = self.next(what)?;
        self.bad(u8_of(raw, what))
    }

    pub(super) fn u16(&mut self, what: &str) -> Result<u16, Bad> {
        let raw = self.next(what)?;
        self.bad(u16_of(raw, what))
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, Bad> {
        let raw = self.next(what)?;
        self.bad(u32_of(raw, what))
    }

    pub(super) fn name(&mut self, what: &str, origin: Option<&[u8]>) -> Result<Vec<u8>, Bad> {
        let token = self.next_token(what)?;
        self.bad(name(token.text, origin))
    }

    /// The next field as a name, appended to `out` (see [`name_onto`]).
    pub(super) fn name_onto(
        &mut self,
        what: &str,
        origin: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), Bad> {
        let token = self.next_token(what)?;
        self.bad(name_onto(token.text, origin, out))
    }

    /// A DNSSEC algorithm: a number or its mnemonic (RFC 4034 Appendix A.1).
    pub(super) fn algorithm(&mut self) -> Result<u8, Bad> {
        let raw = self.next("algorithm")?;
        let known = ALGORITHMS
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(raw))
            .map(|&(_, code)| code);
        match known {
            Some(code) => Ok(code),
            None => self.bad(u8_of(raw, "algorithm")),
        }
    }
}

/// DNSSEC algorithm mnemonics.
const ALGORITHMS: &[(&str, u8)] = &[
    ("RSAMD5", 1),
    ("DH", 2),
    ("DSA", 3),
    ("RSASHA1", 5),
    ("DSA-NSEC3-SHA1", 6),
    ("RSASHA1-NSEC3-SHA1", 7),
    ("RSASHA256", 8),
    ("RSASHA512", 10),
    ("ECC-GOST", 12),
    ("ECDSAP256SHA256", 13),
    ("ECDSAP384SHA384", 14),
    ("ED25519", 15),
    ("ED448", 16),
    ("INDIRECT", 252),
    ("PRIVATEDNS", 253),
    ("PRIVATEOID", 254),
];
