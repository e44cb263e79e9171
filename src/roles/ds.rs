//! `dnslb ds`: the DS records of the zones a TS signs, for the operator to
//! hand to the parent zone (the lines are
//! [`ds_line`](crate::ts::dnssec::ds::ds_line)'s). The zones are
//! found by loading the TS's files, and their keys are made when absent, so
//! the DS can reach the parent before the TS first starts.
use hickory_proto::rr::Name;

use crate::ts::dnssec::ds::zone_ds_lines;
use crate::ts::dnssec::keys::{DnssecKeyError, ZoneKeys};
use crate::ts::dnssec::policy::signs;
use crate::ts::error::ZoneError;
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
    Key(#[from] DnssecKeyError),
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

/// The DS lines of every zone the TS of `settings` signs, at `now`
/// ([`zone_ds_lines`] of each), in the catalog's zone order. A zone's keys
/// are made when it has none.
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
        lines.extend(zone_ds_lines(&origin, &keys));
    }
    Ok(lines)
}
