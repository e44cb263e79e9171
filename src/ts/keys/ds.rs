//! `dnslb ds`: the DS records (SHA-256, RFC 4509) of the zones a TS signs,
//! in presentation format as `dnssec-dsfromkey -2` prints them, for the
//! operator to hand to the parent zone. The keys are made when absent, so the
//! DS can reach the parent before the TS first starts.
use hickory_proto::rr::Name;

use super::{KeyError, ZoneKey, ZoneKeys, canonical_wire, file::origin_text};
use crate::ts::signing::signs;
use crate::ts::source::ZoneError;
use crate::ts::{TsSettings, load_catalog};

/// Why `dnslb ds` prints nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsError {
    /// The TS has no `dnssec`: it signs nothing.
    #[error(
        "ts '{0}' has no dnssec: it signs no zone (add dnssec = {{ keys = \"DIR\" }}); \
         the DS of a zone signed before it is loaded comes from its signer's keys: \
         dnssec-dsfromkey -2 on the KSK's .key file"
    )]
    NotSigning(String),
    /// A zone file could not be read.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// A key could not be read or made.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The zones the TS of `settings` signs itself ([`signs`]): every zone it
/// serves but those its files sign already (a DNSKEY at the apex). Empty
/// without `dnssec`.
///
/// # Errors
/// A zone that does not load, as `file:line`.
pub fn signed_by_ts(settings: &TsSettings) -> Result<Vec<Name>, ZoneError> {
    if settings.dnssec.is_none() {
        return Ok(Vec::new());
    }
    let catalog = load_catalog(settings, 1)?;
    let zones = catalog.zones().iter().filter(|z| signs(settings, z));
    Ok(zones.map(|z| z.origin().clone()).collect())
}

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

/// The DS lines of every zone the TS of `settings` signs, at `now`: one for
/// each published SEP key not revoked (each published key not revoked when
/// none is SEP), in the catalog's zone order. A zone's keys are made when
/// it has none.
///
/// # Errors
/// The TS has no `dnssec`, a zone does not load, a key cannot be read or
/// made.
pub fn ds_lines(settings: &TsSettings, now: u32) -> Result<Vec<String>, DsError> {
    let Some(dnssec) = &settings.dnssec else {
        return Err(DsError::NotSigning(settings.name.clone()));
    };
    let mut lines = Vec::new();
    for origin in signed_by_ts(settings)? {
        let keys = ZoneKeys::load_or_create(&dnssec.keys, &origin, dnssec.algorithm, now)?;
        // A revoked key (RFC 5011) is no trust anchor: no DS, as
        // `dnssec-dsfromkey` prints none.
        let live = || keys.published().filter(|k| !k.is_revoked());
        let any_sep = live().any(ZoneKey::is_sep);
        for key in live().filter(|k| k.is_sep() || !any_sep) {
            lines.push(ds_line(&origin, key));
        }
    }
    Ok(lines)
}
