//! A zone inside a signed zone of the same TS with no delegation to it
//! ([`without_cut`]): every answer it gave would be bogus to validators, so
//! the load refuses it, naming both files ([`below_signed`]).
use std::collections::HashMap;

use hickory_proto::rr::Name;

use crate::ts::error::ZoneError;
use crate::ts::settings::TsSettings;
use crate::ts::zone::Zone;

/// The first zone (index into `zones`) whose origin lies strictly inside a
/// signed zone of the same TS (pre-signed, or any zone when `ts_signs`: the
/// TS signs them all) with no delegation (NS) in that zone at or above it,
/// and that zone's index. Such a zone answers for names its
/// signed parent denies or holds as its own: every answer would be bogus to
/// validators (the parent's chain proves no zone cut there). With a
/// delegation, secure (DS) or provably insecure (no DS, the NSEC/NSEC3
/// says so), the child answers for itself, as NSD and Knot answer.
///
/// Each zone's ancestors are looked up by name among the signed zones, so
/// the check costs the zones times their depth, not the zones squared (a TS
/// of 100,000 zones).
pub(super) fn without_cut(
    zones: &[Zone],
    presigned: &[bool],
    ts_signs: bool,
) -> Option<(usize, usize)> {
    let signed: HashMap<Name, usize> = zones
        .iter()
        .enumerate()
        .filter(|(i, _)| ts_signs || presigned.get(*i).copied().unwrap_or(false))
        .map(|(i, z)| (z.origin().to_lowercase(), i))
        .collect();
    if signed.is_empty() {
        return None;
    }
    zones.iter().enumerate().find_map(|(c, child)| {
        let mut above = child.origin().to_lowercase();
        while !above.is_root() {
            above = above.base_name();
            if let Some(&p) = signed.get(&above)
                && zones[p].cut_toward(child.origin()).is_none()
            {
                return Some((c, p));
            }
        }
        None
    })
}

/// The refusal of `zones[child]`, below the pre-signed `zones[parent]`
/// with no delegation to it: both files named (`file:line` of their SOA
/// where a file gave it, else the first file that made the zone).
pub(super) fn below_signed(
    settings: &TsSettings,
    zones: &[Zone],
    origins: &[(Option<usize>, Option<usize>)],
    child: usize,
    parent: usize,
) -> ZoneError {
    let file = |i: usize| settings.zones.get(i).cloned().unwrap_or_default();
    let (c, p) = (&zones[child], &zones[parent]);
    let what = match origins[child] {
        (None, Some(_)) => "this PROJ table's origin",
        _ => "this zone",
    };
    let at = |z: &Zone, files: (Option<usize>, Option<usize>)| match z.soa_source() {
        Some((i, line)) => format!("{}:{line}", file(i).display()),
        None => file(files.0.or(files.1).unwrap_or_default())
            .display()
            .to_string(),
    };
    let how = if p.is_presigned() {
        "signed in its file (pre-signed)"
    } else {
        "signed by this TS (`dnssec`)"
    };
    let msg = format!(
        "{what} {} lies inside {}, {how} at {}, which has no \
         delegation (NS) to it: validators would find every answer bogus (the parent's \
         NSEC/NSEC3 proves no zone cut there); delegate {} in the signed zone (NS, with a \
         DS or without), or give this zone an origin outside {}",
        c.origin(),
        p.origin(),
        at(p, origins[parent]),
        c.origin(),
        p.origin()
    );
    match c.soa_source() {
        Some((i, line)) => ZoneError::Line {
            file: file(i),
            line,
            msg,
        },
        None => ZoneError::Shared {
            file: file(origins[child].1.or(origins[child].0).unwrap_or_default()),
            msg,
        },
    }
}
