//! The wire structure of record data written in RFC 3597's generic form
//! (`\# LENGTH HEX`), checked for the types the reader knows: RFC 3597 §5
//! requires the data of a known type to be valid for it, and a zone that
//! loads malformed data serves malformed answers. Unknown types are opaque.

/// A reader over RDATA, every read checked against its end.
struct Wire<'a> {
    data: &'a [u8],
    at: usize,
}

impl Wire<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(format!("data ends inside the {what}"));
        };
        let got = &self.data[self.at..end];
        self.at = end;
        Ok(got)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn fixed(&mut self, n: usize, what: &str) -> Result<(), String> {
        self.take(n, what).map(|_| ())
    }

    fn left(&self) -> usize {
        self.data.len() - self.at
    }

    /// An uncompressed domain name (RFC 1035 §3.1; no pointers in RDATA
    /// read from a file).
    fn name(&mut self, what: &str) -> Result<(), String> {
        let start = self.at;
        loop {
            let len = self.u8(what)?;
            if len == 0 {
                break;
            }
            if len > 63 {
                return Err(format!("bad label length {len} in the {what}"));
            }
            self.fixed(usize::from(len), what)?;
        }
        if self.at - start > 255 {
            return Err(format!("the {what} is over 255 bytes"));
        }
        Ok(())
    }

    /// A `<character-string>`: a length byte and that many bytes.
    fn string(&mut self, what: &str) -> Result<(), String> {
        let len = self.u8(what)?;
        self.fixed(usize::from(len), what)
    }

    /// A type bitmap (RFC 4034 §4.1.2): windows in increasing order, each
    /// of 1 to 32 bytes. It runs to the end of the data.
    fn bitmap(&mut self) -> Result<(), String> {
        let mut last: Option<u8> = None;
        while self.left() > 0 {
            let window = self.u8("type bitmap")?;
            if last.is_some_and(|l| window <= l) {
                return Err("type bitmap windows out of order".into());
            }
            last = Some(window);
            let len = self.u8("type bitmap")?;
            if !(1..=32).contains(&len) {
                return Err(format!("bad type bitmap length {len}"));
            }
            self.fixed(usize::from(len), "type bitmap")?;
        }
        Ok(())
    }

    /// At least `n` bytes left, taken.
    fn rest(&mut self, n: usize, what: &str) -> Result<(), String> {
        if self.left() < n {
            return Err(format!("missing the {what}"));
        }
        self.at = self.data.len();
        Ok(())
    }

    fn end(&self) -> Result<(), String> {
        match self.left() {
            0 => Ok(()),
            n => Err(format!("{n} bytes past the end of the data")),
        }
    }
}

/// Checks that `data` has the wire structure of type `code`, for the types
/// the reader knows in presentation form; other types pass.
///
/// # Errors
/// What is wrong with the data, for the type `name`.
pub(super) fn check(code: u16, name: &str, data: &[u8]) -> Result<(), String> {
    let mut w = Wire { data, at: 0 };
    structure(code, &mut w).map_err(|e| format!("\\# data is not a valid {name}: {e}"))
}

fn structure(code: u16, w: &mut Wire<'_>) -> Result<(), String> {
    match code {
        // A, AAAA
        1 => w.fixed(4, "address")?,
        28 => w.fixed(16, "address")?,
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => w.name("target name")?,
        // SOA
        6 => {
            w.name("primary name")?;
            w.name("mailbox")?;
            w.fixed(20, "timers")?;
        }
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => {
            w.fixed(2, "preference")?;
            w.name("exchange")?;
        }
        // MINFO, RP
        14 | 17 => {
            w.name("first name")?;
            w.name("second name")?;
        }
        // TXT, SPF: one string at least
        16 | 99 => {
            w.string("text")?;
            while w.left() > 0 {
                w.string("text")?;
            }
        }
        // HINFO
        13 => {
            w.string("CPU")?;
            w.string("OS")?;
        }
        // SRV
        33 => {
            w.fixed(6, "priority, weight and port")?;
            w.name("target")?;
        }
        // NAPTR
        35 => {
            w.fixed(4, "order and preference")?;
            w.string("flags")?;
            w.string("services")?;
            w.string("regexp")?;
            w.name("replacement")?;
        }
        // CAA: a tag of at least one byte, then the value
        257 => {
            w.fixed(1, "flags")?;
            let len = w.u8("tag")?;
            if len == 0 {
                return Err("empty tag".into());
            }
            w.fixed(usize::from(len), "tag")?;
            w.rest(0, "value")?;
        }
        // URI
        256 => {
            w.fixed(4, "priority and weight")?;
            w.rest(0, "target")?;
        }
        // SSHFP
        44 => {
            w.fixed(2, "algorithm and type")?;
            w.rest(1, "fingerprint")?;
        }
        // TLSA, SMIMEA
        52 | 53 => {
            w.fixed(3, "usage, selector and matching type")?;
            w.rest(1, "certificate data")?;
        }
        // OPENPGPKEY, DHCID
        61 | 49 => w.rest(1, "data")?,
        // CERT
        37 => {
            w.fixed(5, "type, key tag and algorithm")?;
            w.rest(0, "certificate")?;
        }
        // CSYNC
        62 => {
            w.fixed(6, "serial and flags")?;
            w.bitmap()?;
        }
        // ZONEMD
        63 => {
            w.fixed(6, "serial, scheme and algorithm")?;
            w.rest(1, "digest")?;
        }
        // DS, CDS, DLV
        43 | 59 | 32769 => {
            w.fixed(4, "key tag, algorithm and digest type")?;
            w.rest(1, "digest")?;
        }
        // DNSKEY, CDNSKEY, KEY
        48 | 60 | 25 => {
            w.fixed(4, "flags, protocol and algorithm")?;
            w.rest(1, "public key")?;
        }
        // RRSIG
        46 => {
            w.fixed(18, "type covered to key tag")?;
            w.name("signer's name")?;
            w.rest(1, "signature")?;
        }
        // NSEC
        47 => {
            w.name("next domain name")?;
            w.bitmap()?;
        }
        // NSEC3, NSEC3PARAM
        50 | 51 => {
            w.fixed(4, "algorithm, flags and iterations")?;
            w.string("salt")?;
            if code == 50 {
                let len = w.u8("next hashed owner name")?;
                if len == 0 {
                    return Err("empty next hashed owner name".into());
                }
                w.fixed(usize::from(len), "next hashed owner name")?;
                w.bitmap()?;
            }
        }
        // SVCB, HTTPS (RFC 9460 §2.2): keys in strictly increasing order
        64 | 65 => {
            w.fixed(2, "priority")?;
            w.name("target name")?;
            let mut last: Option<u16> = None;
            while w.left() > 0 {
                let k = w.take(2, "SvcParamKey")?;
                let key = u16::from_be_bytes([k[0], k[1]]);
                if last.is_some_and(|l| key <= l) {
                    return Err(format!("SvcParamKey {key} out of order or repeated"));
                }
                last = Some(key);
                let l = w.take(2, "SvcParamValue length")?;
                let len = u16::from_be_bytes([l[0], l[1]]);
                w.fixed(usize::from(len), "SvcParamValue")?;
            }
        }
        // LOC version 0 (RFC 1876 §2)
        29 => {
            if w.u8("version")? != 0 {
                return Err("LOC version is not 0".into());
            }
            w.fixed(15, "location")?;
        }
        // WKS: address, protocol, bitmap
        11 => {
            w.fixed(5, "address and protocol")?;
            w.rest(0, "bitmap")?;
        }
        // EUI48, EUI64
        108 => w.fixed(6, "address")?,
        109 => w.fixed(8, "address")?,
        // NID, L64; L32
        104 | 106 => w.fixed(10, "preference and locator")?,
        105 => w.fixed(6, "preference and locator")?,
        // LP
        107 => {
            w.fixed(2, "preference")?;
            w.name("FQDN")?;
        }
        // PX
        26 => {
            w.fixed(2, "preference")?;
            w.name("MAP822")?;
            w.name("MAPX400")?;
        }
        // X25; ISDN (one or two strings); AVC (one or more)
        19 => w.string("address")?,
        20 => {
            w.string("address")?;
            if w.left() > 0 {
                w.string("subaddress")?;
            }
        }
        258 => {
            w.string("text")?;
            while w.left() > 0 {
                w.string("text")?;
            }
        }
        // NSAP
        22 => w.rest(1, "address")?,
        _ => w.rest(0, "data")?,
    }
    w.end()
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn short_or_long_data_of_known_types_is_refused() {
        for (code, data) in [
            (33u16, &[0u8][..]),
            (51, &[1]),
            (43, &[]),
            (1, &[192, 0, 2]),
            (1, &[192, 0, 2, 1, 0]),
            (5, &[3, b'a', b'b']),
            (47, &[0, 0, 1]),
            (47, &[0, 0, 0]),
            (16, &[]),
            (64, &[0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
            (29, &[0; 15]),
            (29, &[1; 16]),
            (108, &[0; 5]),
            (26, &[0, 1, 0]),
        ] {
            assert!(check(code, "T", data).is_err(), "{code} {data:?}");
        }
    }

    #[test]
    fn well_formed_data_passes() {
        for (code, data) in [
            (33u16, &[0u8, 1, 0, 2, 0, 3, 0][..]),
            (51, &[1, 0, 0, 0, 0]),
            (43, &[0, 1, 13, 2, 9]),
            (1, &[192, 0, 2, 1]),
            (5, &[1, b'a', 0]),
            (47, &[0, 0, 1, 0x40]),
            (16, &[0]),
            (64, &[0, 1, 0, 0, 1, 0, 0, 0, 3, 0, 2, 0, 53]),
            (65280, &[]),
            (29, &[0; 16]),
            (108, &[0; 6]),
            (26, &[0, 1, 0, 0]),
        ] {
            assert!(check(code, "T", data).is_ok(), "{code} {data:?}");
        }
    }
}
