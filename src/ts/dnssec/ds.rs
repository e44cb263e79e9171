//! The DS records (SHA-256, RFC 4509) of a zone's keys, in presentation
//! format as `dnssec-dsfromkey -2` prints them, for the operator to hand to
//! the parent zone (`dnslb ds`, in `roles/ds.rs`, which finds the zones
//! and makes their keys).
use hickory_proto::rr::Name;

use super::keys::{ZoneKey, ZoneKeys, canonical_wire, origin_text};

/// One DS record in presentation format, as `dnssec-dsfromkey` prints it:
/// `example.com. IN DS 12345 13 2 ABCD...`.
pub fn ds_line(origin: &Name, key: &ZoneKey) -> String {
    let ds = key.ds_sha256(&canonical_wire(origin));
    let digest = data_encoding::HEXUPPER.encode(ds.get(4..).unwrap_or_default());
    format!(
        "{} IN DS {} {} 2 {digest}",
        origin_text(origin),
        key.tag(),
        key.algorithm()
    )
}

/// The DS lines of the zone `origin` with `keys`: one for each published
/// SEP key not revoked (each published key not revoked when none is SEP).
pub fn zone_ds_lines(origin: &Name, keys: &ZoneKeys) -> Vec<String> {
    // A revoked key (RFC 5011) is no trust anchor: no DS, as
    // `dnssec-dsfromkey` prints none.
    let live = || keys.published().filter(|k| !k.is_revoked());
    let any_sep = live().any(ZoneKey::is_sep);
    live()
        .filter(|k| k.is_sep() || !any_sep)
        .map(|key| ds_line(origin, key))
        .collect()
}
