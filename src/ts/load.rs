//! Reading a TS's zone files into a [`Catalog`]: PROJ tables compiled line
//! by line as they are read, master files each into their own zone, and the
//! SOA made up for a zone whose files hold none.
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::SOA;

use super::clock::unix_now;
use super::dnssec::presigned;
use super::settings::TsSettings;
use super::source::ZoneError;
use super::zone::{Catalog, ZoneBuilder};
use super::{table, zonefile};

/// SOA timers of a zone built from PROJ tables (RFC 1912 §2.2 values).
const SYNTH_REFRESH: i32 = 3600;
const SYNTH_RETRY: i32 = 600;
const SYNTH_EXPIRE: i32 = 604_800;

/// Loads every zone of `settings` into a catalog. Zones whose SOA is
/// synthesized get `serial`.
///
/// # Errors
/// The first problem found, as `file:line: what is wrong`.
pub fn load_catalog(settings: &TsSettings, serial: u32) -> Result<Catalog, ZoneError> {
    load_catalog_noting(settings, serial, &mut Vec::new())
}

/// [`load_catalog`], with the warnings about the files (a signed zone's
/// signatures expired or expiring within a day) added to `warnings`.
///
/// # Errors
/// As [`load_catalog`].
pub fn load_catalog_noting(
    settings: &TsSettings,
    serial: u32,
    warnings: &mut Vec<String>,
) -> Result<Catalog, ZoneError> {
    // One builder per zone origin: PROJ tables share the TS origin and are
    // compiled line by line as they are read; each master file brings its own.
    let mut builders: Vec<ZoneBuilder> = Vec::new();
    // By builder: the first master file and the first PROJ table in it.
    let mut sources = Vec::new();
    type Sources = Vec<(Option<usize>, Option<usize>)>;
    fn builder_for(builders: &mut Vec<ZoneBuilder>, sources: &mut Sources, origin: &Name) -> usize {
        match builders.iter().position(|b| b.origin() == origin) {
            Some(i) => i,
            None => {
                builders.push(ZoneBuilder::new(origin.clone(), 0));
                sources.push((None, None));
                builders.len() - 1
            }
        }
    }
    let mut table_origin = settings.origin.clone();
    table_origin.set_fqdn(true);
    for (i, file) in settings.zones.iter().enumerate() {
        if zonefile::is_master_file(file) {
            let (origin, records) =
                zonefile::load_any_noting(file, &settings.origin, settings.ttl, warnings)?;
            warnings.extend(presigned::warnings(file, &records, unix_now()));
            warnings.extend(presigned::nsec3_params(file, &origin, &records)?);
            let b = builder_for(&mut builders, &mut sources, &origin);
            sources[b].0.get_or_insert(i);
            for rec in &records {
                builders[b].add(i, file, rec)?;
            }
        } else {
            let b = builder_for(&mut builders, &mut sources, &table_origin);
            sources[b].1.get_or_insert(i);
            let builder = &mut builders[b];
            table::visit_table_file(file, &table_origin, settings.ttl, |rec| {
                builder.add(i, file, &rec)
            })?;
        }
    }
    let mut zones = Vec::with_capacity(builders.len());
    for (b, files) in builders.into_iter().zip(sources) {
        let ttl = settings.ttl;
        let zone = b.finish_noting(
            &settings.zones,
            |origin, apex_ns| synth_soa(origin, apex_ns, ttl, serial),
            warnings,
        )?;
        // A table merged into a zone signed in its file would be served
        // with no signatures and no denial: bogus to validators.
        if let (Some(master), Some(table)) = files
            && zone.is_presigned()
        {
            let name = |i: usize| settings.zones.get(i).cloned().unwrap_or_default();
            return Err(ZoneError::Shared {
                file: name(table),
                msg: format!(
                    "this PROJ table's origin {} is the zone of {}, which is signed in its \
                     file (pre-signed): the table's records would be served with no RRSIG \
                     and no NSEC/NSEC3, bogus to validators; give the table another origin, \
                     or add its records to the unsigned zone and sign it again",
                    zone.origin(),
                    name(master).display()
                ),
            });
        }
        zones.push(zone);
    }
    Ok(Catalog::new(zones))
}

/// The SOA of a zone that has none in its files: the first apex NS target
/// (or the origin) as primary, `hostmaster.<origin>` as contact.
fn synth_soa(origin: &Name, apex_ns: Option<&Name>, ttl: u32, serial: u32) -> (u32, SOA) {
    let mname = apex_ns.cloned().unwrap_or_else(|| origin.clone());
    let rname = origin
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| origin.clone());
    (
        ttl,
        SOA::new(
            mname,
            rname,
            serial,
            SYNTH_REFRESH,
            SYNTH_RETRY,
            SYNTH_EXPIRE,
            ttl,
        ),
    )
}
