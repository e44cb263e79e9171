//! What a loading TS and `dnslb check` say of a pre-signed zone: RRSIGs
//! that have expired, or expire within a day, and links of its NSEC or
//! NSEC3 chain that do not lead to the next owner (RFC 4034 §4.1.1, RFC
//! 5155 §3.1.7); each kind once, at the first such record's `file:line`
//! with how many there are (a zone whose signer stopped has every
//! signature expired). Times compare by serial number arithmetic (RFC 4034
//! §3.1.5, RFC 1982). The zone is served as it is either way, as NSD does.
use std::cmp::Ordering;
use std::path::Path;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::ts::error::ZoneError;

use crate::ts::source::SourceRecord;
use crate::ts::wire::cmp_names;
use crate::ts::zone::{NSEC3_ITERATIONS_MAX, key_of, owner_hash};

/// NSEC3 iterations above which validators treat a zone's denials as
/// insecure (RFC 9276 §3.2); `named-checkzone` warns above it too.
const ITERATIONS_INSECURE: u16 = 150;

/// How long before expiry a signature is worth a warning.
const SOON_SECS: u32 = 86_400;

/// An RRSIG's expiration (RFC 4034 §3.1.5), from its wire RDATA.
fn expiration(r: &SourceRecord) -> Option<u32> {
    let b = rdata_of(r, RecordType::RRSIG)?.get(8..12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `a` is before `b` in serial number arithmetic.
fn before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// A time as RRSIGs are written: `YYYYMMDDHHmmSS` in UTC.
pub(super) fn stamp(secs: u32) -> String {
    let days = i64::from(secs / 86_400);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The warnings about the signed zone among `records` (read from `file`)
/// at `now` (seconds since the epoch, modulo 2^32): at most four lines.
pub(in crate::ts) fn warnings(file: &Path, records: &[SourceRecord], now: u32) -> Vec<String> {
    let mut out = signature_warnings(file, records, now);
    out.extend(chain_warning(file, records, RecordType::NSEC));
    out.extend(chain_warning(file, records, RecordType::NSEC3));
    out
}

/// What the NSEC3PARAM at `origin` among `records` (read from `file`)
/// asks of the TS: an error when it could not answer with that chain
/// (a hash algorithm other than SHA-1, or more than
/// [`NSEC3_ITERATIONS_MAX`] iterations: every negative answer would go out
/// without proof, and RFC 9276 §3.2 lets validators fail them anyway), a
/// warning when validators treat the zone's denials as insecure (more than
/// [`ITERATIONS_INSECURE`]), as `named-checkzone` warns.
///
/// # Errors
/// [`ZoneError::Line`] at the NSEC3PARAM's line.
pub(in crate::ts) fn nsec3_params(
    file: &Path,
    origin: &Name,
    records: &[SourceRecord],
) -> Result<Option<String>, ZoneError> {
    let mut warning = None;
    // The NSEC3PARAM at the apex, and every NSEC3 of the chains themselves
    // (a chain of 600 iterations under an NSEC3PARAM that says 0 is served
    // without proofs all the same).
    let params = records.iter().filter_map(|r| {
        let param = (&r.name == origin)
            .then(|| rdata_of(r, RecordType::NSEC3PARAM))
            .flatten();
        param
            .map(|d| (r, d, "NSEC3PARAM"))
            .or_else(|| rdata_of(r, RecordType::NSEC3).map(|d| (r, d, "NSEC3")))
    });
    for (r, rdata, what) in params {
        let (Some(&alg), Some(it)) = (rdata.first(), rdata.get(2..4)) else {
            continue;
        };
        let iterations = u16::from_be_bytes([it[0], it[1]]);
        let again = "sign it again with SHA-1 and 0 iterations, as RFC 9276 asks \
                     (dnssec-signzone -3 - -H 0)";
        if alg != 1 {
            return Err(ZoneError::line(
                file,
                r.line,
                format!(
                    "the {what} of {origin} names hash algorithm {alg}, not SHA-1 (1): \
                     the TS could prove no denial of the zone; {again}"
                ),
            ));
        }
        if iterations > NSEC3_ITERATIONS_MAX {
            return Err(ZoneError::line(
                file,
                r.line,
                format!(
                    "the {what} of {origin} has {iterations} iterations, above \
                     {NSEC3_ITERATIONS_MAX}: validators may fail every negative answer of \
                     such a zone (RFC 9276 §3.2), and the TS answers none with its proofs; \
                     {again}"
                ),
            ));
        }
        if iterations > ITERATIONS_INSECURE && warning.is_none() {
            warning = Some(format!(
                "{}:{}: warning: the {what} of {origin} has {iterations} iterations, \
                 above {ITERATIONS_INSECURE}: validators treat the zone's negative answers as \
                 insecure (RFC 9276 §3.2); {again}",
                file.display(),
                r.line
            ));
        }
    }
    Ok(warning)
}

/// The wire RDATA of `r` when it is of type `rtype` (kept as bytes).
fn rdata_of(r: &SourceRecord, rtype: RecordType) -> Option<&[u8]> {
    match &r.data {
        RData::Unknown { code, rdata } if *code == rtype => Some(&rdata.anything),
        _ => None,
    }
}

/// One link of a chain: where it is, the key of its owner, the key it
/// says comes next (lower-cased wire names for NSEC, hashes for NSEC3).
struct Link<'r> {
    record: &'r SourceRecord,
    /// Which chain: empty for NSEC; for NSEC3 its hash algorithm,
    /// iterations and salt (a zone changing its NSEC3 parameters holds two
    /// chains, each closed on its own: RFC 5155 §7.3).
    chain: Vec<u8>,
    owner: Vec<u8>,
    next: Vec<u8>,
}

/// The link of an NSEC or NSEC3 record.
fn link(r: &SourceRecord, rtype: RecordType) -> Option<Link<'_>> {
    let rdata = rdata_of(r, rtype)?;
    let owner = key_of(&r.name).ok()?;
    let (chain, owner, next) = if rtype == RecordType::NSEC {
        let next = Name::read(&mut BinDecoder::new(rdata)).ok()?;
        (Vec::new(), owner, key_of(&next).ok()?)
    } else {
        let salt_len = usize::from(*rdata.get(4)?);
        let hash_len = usize::from(*rdata.get(5 + salt_len)?);
        let next = rdata.get(6 + salt_len..6 + salt_len + hash_len)?.to_vec();
        let mut chain = vec![rdata[0]];
        chain.extend_from_slice(rdata.get(2..5 + salt_len)?);
        (chain, owner_hash(&owner)?.to_vec(), next)
    };
    Some(Link {
        record: r,
        chain,
        owner,
        next,
    })
}

/// The first link of the `rtype` chain (NSEC or NSEC3) that does not lead
/// to the next owner in the chain's order (the last one back to the first).
fn chain_warning(file: &Path, records: &[SourceRecord], rtype: RecordType) -> Option<String> {
    let mut links: Vec<Link<'_>> = records.iter().filter_map(|r| link(r, rtype)).collect();
    let order = |a: &[u8], b: &[u8]| {
        if rtype == RecordType::NSEC {
            cmp_names(a, b)
        } else {
            a.cmp(b)
        }
    };
    links.sort_by(|a, b| a.chain.cmp(&b.chain).then(order(&a.owner, &b.owner)));
    let mut broken = Vec::new();
    for chain in links.chunk_by(|a, b| a.chain == b.chain) {
        for (i, l) in chain.iter().enumerate() {
            let following = &chain[(i + 1) % chain.len()];
            if order(&l.next, &following.owner) != Ordering::Equal {
                broken.push((l, following));
            }
        }
    }
    let (first, following) = broken.iter().min_by_key(|(l, _)| l.record.line)?;
    let others = match broken.len() {
        1 => String::new(),
        n => format!(" ({n} such links in this file)"),
    };
    Some(format!(
        "{}:{}: warning: the {rtype} chain is broken: the {rtype} of {} does not lead to \
         the next owner, {}{others}",
        file.display(),
        first.record.line,
        first.record.name,
        following.record.name,
    ))
}

/// The warnings about expired and expiring RRSIGs: at most two lines.
fn signature_warnings(file: &Path, records: &[SourceRecord], now: u32) -> Vec<String> {
    let mut expired: Option<(&SourceRecord, u32)> = None;
    let mut soon: Option<(&SourceRecord, u32)> = None;
    let (mut n_expired, mut n_soon) = (0usize, 0usize);
    for r in records {
        let Some(exp) = expiration(r) else {
            continue;
        };
        if !before(now, exp) {
            n_expired += 1;
            expired.get_or_insert((r, exp));
        } else if before(exp, now.wrapping_add(SOON_SECS)) {
            n_soon += 1;
            soon.get_or_insert((r, exp));
        }
    }
    let line = |(r, exp): (&SourceRecord, u32), n: usize, what: &str| {
        let others = match n {
            1 => String::new(),
            n => format!(" ({} signatures in this file)", n),
        };
        format!(
            "{}:{}: warning: the RRSIG of {} {} at {}{}",
            file.display(),
            r.line,
            r.name,
            what,
            stamp(exp),
            others
        )
    };
    let mut out = Vec::new();
    if let Some(first) = expired {
        out.push(line(first, n_expired, "expired"));
    }
    if let Some(first) = soon {
        out.push(line(first, n_soon, "expires within a day,"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::NULL;

    fn rrsig(owner: &str, expiration: u32, line: usize) -> SourceRecord {
        let mut rdata = vec![0, 1, 13, 2, 0, 0, 0, 60];
        rdata.extend_from_slice(&expiration.to_be_bytes());
        rdata.extend_from_slice(&[0; 6]);
        SourceRecord {
            name: Name::from_ascii(owner).unwrap(),
            ttl: 60,
            data: RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(rdata),
            },
            line,
        }
    }

    #[test]
    fn expired_and_expiring_signatures_are_told_once_each_at_the_first() {
        let now = 1_800_000_000;
        let file = Path::new("z.zone");
        let records = [
            rrsig("ok.test.", now + 10 * 86_400, 3),
            rrsig("old.test.", now - 1, 4),
            rrsig("older.test.", now - 86_400, 5),
            rrsig("soon.test.", now + 3600, 6),
        ];
        assert_eq!(
            warnings(file, &records, now),
            [
                "z.zone:4: warning: the RRSIG of old.test. expired at 20270115075959 \
                 (2 signatures in this file)",
                "z.zone:6: warning: the RRSIG of soon.test. expires within a day, at \
                 20270115090000",
            ]
        );
        assert!(warnings(file, &records[..1], now).is_empty());
        // Serial arithmetic: an expiration past 2106 wraps and is still ahead.
        assert!(warnings(file, &[rrsig("w.test.", now.wrapping_add(1 << 30), 1)], now).is_empty());
    }

    #[test]
    fn a_link_of_a_chain_that_skips_or_loops_is_told_at_its_line() {
        let text = "$ORIGIN example.
@ 300 SOA ns hostmaster 1 7200 3600 1209600 300
@ 300 NSEC a.example. SOA NSEC
a 300 NSEC c.example. A NSEC
b 300 NSEC example. A NSEC
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom 300 NSEC3 1 0 0 - 35MTHGPGCU1QG68FAB165KLNSNK3DPVL A
35mthgpgcu1qg68fab165klnsnk3dpvl 300 NSEC3 1 0 0 - 35MTHGPGCU1QG68FAB165KLNSNK3DPVL A
";
        let file = Path::new("c.zone");
        let (_, records) = crate::ts::zonefile::parse_zone_file(text, file, None).unwrap();
        assert_eq!(
            warnings(file, &records, 0),
            [
                "c.zone:4: warning: the NSEC chain is broken: the NSEC of a.example. does not \
                 lead to the next owner, b.example.",
                "c.zone:7: warning: the NSEC3 chain is broken: the NSEC3 of \
                 35mthgpgcu1qg68fab165klnsnk3dpvl.example. does not lead to the next owner, \
                 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example.",
            ]
        );
        // Mended, the chains close.
        let mended = text
            .replace("a 300 NSEC c.example.", "a 300 NSEC b.example.")
            .replace(
                "dpvl 300 NSEC3 1 0 0 - 35MTHGPGCU1QG68FAB165KLNSNK3DPVL",
                "dpvl 300 NSEC3 1 0 0 - 0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM",
            );
        let (_, records) = crate::ts::zonefile::parse_zone_file(&mended, file, None).unwrap();
        assert!(
            warnings(file, &records, 0).is_empty(),
            "{:?}",
            warnings(file, &records, 0)
        );
    }

    #[test]
    fn two_nsec3_chains_are_each_closed_on_their_own() {
        // Two chains, their owners interleaved in hash order: mixed into
        // one, every link would skip; each closes on itself.
        let text = "$ORIGIN example.
@ 300 SOA ns hostmaster 1 7200 3600 1209600 300
00000000000000000000000000000000 300 NSEC3 1 0 0 - 20000000000000000000000000000000 A
10000000000000000000000000000000 300 NSEC3 1 0 5 AABBCCDD 30000000000000000000000000000000 A
20000000000000000000000000000000 300 NSEC3 1 0 0 - 00000000000000000000000000000000 A
30000000000000000000000000000000 300 NSEC3 1 0 5 AABBCCDD 10000000000000000000000000000000 A
";
        let file = Path::new("two.zone");
        let (_, records) = crate::ts::zonefile::parse_zone_file(text, file, None).unwrap();
        assert!(
            warnings(file, &records, 0).is_empty(),
            "{:?}",
            warnings(file, &records, 0)
        );
        // A broken link is still told, in the chain it belongs to.
        let broken = text.replace("AABBCCDD 10000", "AABBCCDD 20000");
        let (_, records) = crate::ts::zonefile::parse_zone_file(&broken, file, None).unwrap();
        assert_eq!(
            warnings(file, &records, 0),
            [
                "two.zone:6: warning: the NSEC3 chain is broken: the NSEC3 of \
              30000000000000000000000000000000.example. does not lead to the next owner, \
              10000000000000000000000000000000.example."
            ]
        );
    }

    #[test]
    fn stamps_are_rrsig_times() {
        assert_eq!(stamp(0), "19700101000000");
        assert_eq!(stamp(951_782_400), "20000229000000");
        assert_eq!(stamp(u32::MAX), "21060207062815");
    }
}
