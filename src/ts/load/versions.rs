//! Which version of each zone read from the files a reload serves
//! ([`versions`]): a zone whose data did not change keeps the one served
//! (its serial and compiled records); a changed zone goes out at a serial
//! above the one served (its file's, which must go up, or the TS's own,
//! raised); a zone the TS signs is signed again when its data or what its
//! keys do changed, or its signatures are due, and kept otherwise. A policy
//! over the zones given: no I/O but the keys' files read for the zones
//! signed here.
use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::ts::dnssec::keys::ZoneKeys;
use crate::ts::dnssec::policy;
use crate::ts::error::ZoneError;
use crate::ts::serials::{self, serial_newer};
use crate::ts::settings::TsSettings;
use crate::ts::zone::{Catalog, Zone};

/// The keys of the zones a TS signs, by lower-cased wire origin.
pub(crate) type ZoneKeyMap = HashMap<Vec<u8>, Arc<ZoneKeys>>;

/// What a reload serves of the zones read.
pub(crate) struct Versions {
    /// Each zone's version, in the order read.
    pub(crate) zones: Vec<Zone>,
    /// The origins of the zones whose data (or signatures) changed.
    pub(crate) changed: Vec<Name>,
    /// The keys of the zones signed here, as read now.
    pub(crate) keys: ZoneKeyMap,
}

/// The version of each of `fresh` (read from the files of `settings` at
/// `clock`) served after a reload, `old` the zones served before it.
///
/// # Errors
/// A changed zone whose file's serial did not go up (at its SOA's
/// `file:line`), or a zone the TS signs whose keys cannot be read or that
/// cannot be signed.
pub(crate) fn versions(
    settings: &TsSettings,
    old: &Catalog,
    fresh: Vec<Zone>,
    clock: u32,
) -> Result<Versions, ZoneError> {
    let mut out = Versions {
        zones: Vec::with_capacity(fresh.len()),
        changed: Vec::new(),
        keys: ZoneKeyMap::new(),
    };
    for z in fresh {
        let previous = old.with_origin(z.origin_wire());
        // A file's serial raised alone is a change too: the served
        // serial never stays below the file's (secondaries follow it).
        let same = |o: &Zone| {
            o.same_data(&z) && (z.soa_synthesized() || !serial_newer(z.serial(), o.serial()))
        };
        if policy::signs(settings, &z) {
            let keys = policy::zone_keys(settings, &z, clock).map_err(ZoneError::signing)?;
            // Kept when neither the data nor what the keys do changed
            // and its signatures hold; their timing is taken anew.
            let unchanged =
                |o: &Zone| same(o) && o.signature().is_some_and(|s| !s.stale(&keys.tags(), clock));
            let serial = match previous {
                Some(o) if unchanged(o) => {
                    out.zones
                        .push(o.clone().with_key_event(keys.next_event(clock)));
                    out.keys.insert(z.origin_wire().to_vec(), Arc::new(keys));
                    continue;
                }
                Some(o) => serials::next_serial(o.serial(), clock),
                None => serials::start_serial(None, false, clock),
            };
            let signed = policy::sign_with(settings, &z, previous, &keys, serial, clock)
                .map_err(ZoneError::signing)?;
            out.changed.push(z.origin().clone());
            out.zones.push(signed);
            out.keys.insert(z.origin_wire().to_vec(), Arc::new(keys));
            continue;
        }
        let zone = match previous {
            // Unchanged: keep serving the compiled zone already in memory
            // (the zone read is that one when the load kept it: not copied
            // again).
            Some(o) if same(o) => {
                if z.serial() == o.serial() {
                    z
                } else {
                    o.clone()
                }
            }
            Some(o) if z.soa_synthesized() => {
                // Our serial: up by at least one, and to the clock when it is ahead.
                let s = serials::next_serial(o.serial(), clock);
                out.changed.push(z.origin().clone());
                z.with_serial(s)
            }
            Some(o) => {
                // The file's serial: it must go up, or secondaries would
                // never see the change (RFC 1982 arithmetic).
                if !serial_newer(z.serial(), o.serial()) {
                    let (idx, line) = z.soa_source().unwrap_or((0, 0));
                    let file = settings.zones.get(idx).cloned().unwrap_or_default();
                    return Err(ZoneError::line(
                        &file,
                        line,
                        format!(
                            "zone {} changed but its SOA serial {} is not above {}: raise the serial",
                            z.origin(),
                            z.serial(),
                            o.serial()
                        ),
                    ));
                }
                out.changed.push(z.origin().clone());
                z
            }
            None => {
                out.changed.push(z.origin().clone());
                z
            }
        };
        out.zones.push(zone);
    }
    Ok(out)
}
