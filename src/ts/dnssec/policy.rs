//! Which of a TS's zones it signs itself (`dnssec` in `[[ts]]`), with which
//! keys ([`keys::ZoneKeys`], read again at every signing, reload and wake so
//! a key added, or its timing changed, is picked up), and what serial a signed zone takes:
//! the TS owns it (signatures change without the files changing, and
//! secondaries must see a newer serial each time), so it goes up at every
//! signing by RFC 1982 arithmetic, never below the file's own.
use super::keys::{DnssecKeyError, ZoneKey, ZoneKeys};
use crate::ts::serials::serial_newer;
use crate::ts::settings::TsSettings;
use crate::ts::zone::rtype::DNSKEY;
use crate::ts::zone::{Keys, RrsetSigner, SignError, Zone};

/// Any data type (A): the keys that sign data.
const DATA: u16 = 1;

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Its keys could not be read or made.
    #[error("zone {zone}: {source}")]
    Keys {
        /// The zone's origin.
        zone: String,
        /// What went wrong.
        source: DnssecKeyError,
    },
    /// The signer failed.
    #[error("zone {zone}: cannot sign: {source}")]
    Sign {
        /// The zone's origin.
        zone: String,
        /// What went wrong.
        source: SignError,
    },
}

impl RrsetSigner for ZoneKey {
    fn tag(&self) -> u16 {
        ZoneKey::tag(self)
    }

    fn algorithm(&self) -> u8 {
        ZoneKey::algorithm(self)
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        ZoneKey::sign(self, data).map_err(|_| SignError::Crypto {
            tag: ZoneKey::tag(self),
        })
    }
}

/// True when `settings` has the TS sign `zone`: `dnssec` is set and the zone
/// was not signed in its files (a pre-signed zone is served as it is).
pub fn signs(settings: &TsSettings, zone: &Zone) -> bool {
    settings.dnssec.is_some() && !zone.is_presigned()
}

/// The keys of `zone` now (read, or made when its folder has none). A
/// signed zone whose [`Signature::tags`](crate::ts::zone::Signature::tags)
/// differ from their [`ZoneKeys::tags`] is signed again.
///
/// # Errors
/// [`SigningError::Keys`].
pub fn zone_keys(settings: &TsSettings, zone: &Zone, now: u32) -> Result<ZoneKeys, SigningError> {
    let Some(d) = &settings.dnssec else {
        return Err(SigningError::Sign {
            zone: zone.origin().to_string(),
            source: SignError::NoKey,
        });
    };
    ZoneKeys::load_or_create(&d.keys, zone.origin(), d.algorithm, now).map_err(|source| {
        SigningError::Keys {
            zone: zone.origin().to_string(),
            source,
        }
    })
}

/// What starting the TS would say of signing `zone` at `now`, found
/// without writing anything (`dnslb check`): its keys read
/// ([`ZoneKeys::load_dry`]) and the zone signed, the result dropped; the
/// [`algorithm_warning`], if any.
///
/// # Errors
/// [`SigningError`], as [`sign`] would fail at start.
pub fn dry_run(
    settings: &TsSettings,
    zone: &Zone,
    now: u32,
) -> Result<Option<String>, SigningError> {
    let Some(d) = &settings.dnssec else {
        return Ok(None);
    };
    let keys = ZoneKeys::load_dry(&d.keys, zone.origin(), d.algorithm, now).map_err(|source| {
        SigningError::Keys {
            zone: zone.origin().to_string(),
            source,
        }
    })?;
    sign_with(settings, zone, None, &keys, 1, now)?;
    Ok(algorithm_warning(settings, zone, &keys))
}

/// `zone` signed at `now` with its keys, its serial `serial` (at least the
/// zone's own when the files gave it), keeping the signatures of
/// `previous` (the version served until now) that need not change
/// ([`sign::zone`](crate::ts::zone::sign::zone)); and the keys (a service's answer sets are signed
/// with them later).
///
/// # Errors
/// [`SigningError`]: keys unreadable, or none to sign with.
pub fn sign(
    settings: &TsSettings,
    zone: &Zone,
    previous: Option<&Zone>,
    serial: u32,
    now: u32,
) -> Result<(Zone, ZoneKeys), SigningError> {
    let keys = zone_keys(settings, zone, now)?;
    if let Some(w) = algorithm_warning(settings, zone, &keys) {
        tracing::warn!("{w}");
    }
    let signed = sign_with(settings, zone, previous, &keys, serial, now)?;
    Ok((signed, keys))
}

/// A warning when `keys` publish no key of the configured `algorithm`:
/// the setting changed, but it only picks the algorithm of a key made for
/// an empty folder; the zone goes on with the keys it has.
pub fn algorithm_warning(settings: &TsSettings, zone: &Zone, keys: &ZoneKeys) -> Option<String> {
    let d = settings.dnssec.as_ref()?;
    (!keys.publishes(d.algorithm)).then(|| {
        format!(
            "zone {}: warning: algorithm = \"{}\" but no key of it is published: the zone \
             goes on signing with the keys in {} (the setting picks the algorithm of a key \
             made for an empty folder); to change algorithm, roll it (docs/CONFIG.md, dnssec)",
            zone.origin(),
            d.algorithm,
            d.keys.display()
        )
    })
}

/// [`sign`] with `keys`, read already ([`zone_keys`]).
///
/// # Errors
/// [`SigningError::Sign`]: none to sign with.
pub fn sign_with(
    settings: &TsSettings,
    zone: &Zone,
    previous: Option<&Zone>,
    keys: &ZoneKeys,
    serial: u32,
    now: u32,
) -> Result<Zone, SigningError> {
    let dnssec = settings.dnssec.as_ref();
    let denial = dnssec.map(|d| d.denial).unwrap_or_default();
    let signers = |rtype| keys.signing(rtype).map(|k| k as &dyn RrsetSigner).collect();
    let with = Keys {
        dnskeys: keys
            .published()
            .map(|k| k.dnskey_rdata().to_vec())
            .collect(),
        for_keys: signers(DNSKEY),
        for_data: signers(DATA),
        id: keys.tags(),
        next_event: keys.next_event(now),
    };
    let serial = if !zone.soa_synthesized() && serial_newer(zone.serial(), serial) {
        zone.serial()
    } else {
        serial
    };
    crate::ts::zone::sign::zone(zone, previous, &with, denial, serial, now).map_err(|source| {
        SigningError::Sign {
            zone: zone.origin().to_string(),
            source,
        }
    })
}
