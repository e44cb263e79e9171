//! What a loading TS and `dnslb check` say of a pre-signed zone's
//! signatures: RRSIGs that have expired, or expire within a day, each kind
//! once, at the first such record's `file:line` with how many there are
//! (a zone whose signer stopped has them all expired). Times compare by
//! serial number arithmetic (RFC 4034 §3.1.5, RFC 1982).
use std::path::Path;

use hickory_proto::rr::{RData, RecordType};

use super::source::SourceRecord;

/// How long before expiry a signature is worth a warning.
const SOON_SECS: u32 = 86_400;

/// An RRSIG's expiration (RFC 4034 §3.1.5), from its wire RDATA.
fn expiration(data: &RData) -> Option<u32> {
    let RData::Unknown { code, rdata } = data else {
        return None;
    };
    if *code != RecordType::RRSIG {
        return None;
    }
    let b = rdata.anything.get(8..12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `a` is before `b` in serial number arithmetic.
fn before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// A time as RRSIGs are written: `YYYYMMDDHHmmSS` in UTC.
fn stamp(secs: u32) -> String {
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

/// The warnings about the RRSIGs among `records` (read from `file`) at
/// `now` (seconds since the epoch, modulo 2^32): at most two lines.
pub(super) fn warnings(file: &Path, records: &[SourceRecord], now: u32) -> Vec<String> {
    let mut expired: Option<(&SourceRecord, u32)> = None;
    let mut soon: Option<(&SourceRecord, u32)> = None;
    let (mut n_expired, mut n_soon) = (0usize, 0usize);
    for r in records {
        let Some(exp) = expiration(&r.data) else {
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
    fn stamps_are_rrsig_times() {
        assert_eq!(stamp(0), "19700101000000");
        assert_eq!(stamp(951_782_400), "20000229000000");
        assert_eq!(stamp(u32::MAX), "21060207062815");
    }
}
