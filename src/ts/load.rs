//! Reading a TS's zone files into a [`Catalog`]: PROJ tables compiled line
//! by line as they are read, master files each into their own zone, and the
//! SOA made up for a zone whose files hold none.
use std::collections::HashMap;

use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::SOA;

use super::clock::unix_now;
use super::dnssec::presigned;
use super::publish;
use super::settings::TsSettings;
use super::source::ZoneError;
use super::zone::{Catalog, Zone, ZoneBuilder};
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
    // By origin (lower-cased), the builder's index: a TS of 100,000 zones
    // finds each file's builder at once, not by a scan of those before it.
    let mut by_origin: HashMap<Name, usize> = HashMap::new();
    type Sources = Vec<(Option<usize>, Option<usize>)>;
    fn builder_for(
        builders: &mut Vec<ZoneBuilder>,
        sources: &mut Sources,
        by_origin: &mut HashMap<Name, usize>,
        origin: &Name,
    ) -> usize {
        *by_origin.entry(origin.to_lowercase()).or_insert_with(|| {
            builders.push(ZoneBuilder::new(origin.clone(), 0));
            sources.push((None, None));
            builders.len() - 1
        })
    }
    let mut table_origin = settings.origin.clone();
    table_origin.set_fqdn(true);
    for (i, file) in settings.zones.iter().enumerate() {
        if zonefile::is_master_file(file) {
            let (origin, records) =
                zonefile::load_any_noting(file, &settings.origin, settings.ttl, warnings)?;
            warnings.extend(presigned::warnings(file, &records, unix_now()));
            warnings.extend(presigned::nsec3_params(file, &origin, &records)?);
            let b = builder_for(&mut builders, &mut sources, &mut by_origin, &origin);
            sources[b].0.get_or_insert(i);
            for rec in &records {
                builders[b].add(i, file, rec)?;
            }
        } else {
            let b = builder_for(&mut builders, &mut sources, &mut by_origin, &table_origin);
            sources[b].1.get_or_insert(i);
            let builder = &mut builders[b];
            table::visit_table_file(file, &table_origin, settings.ttl, |rec| {
                builder.add(i, file, &rec)
            })?;
        }
    }
    let with_services = add_services(settings, &mut builders)?;
    let mut zones = Vec::with_capacity(builders.len());
    let mut origins = Vec::with_capacity(builders.len());
    for (i, (b, files)) in builders.into_iter().zip(sources).enumerate() {
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
        if zone.is_presigned()
            && let Some(s) = with_services.iter().find(|(_, b)| *b == i)
        {
            return Err(service_error(
                &settings.services[s.0],
                format!(
                    "is in {}, which is signed in its file (pre-signed): the service's \
                     answers could not be signed; sign the zone with `dnssec` in [[ts]] instead",
                    zone.origin()
                ),
            ));
        }
        zones.push(zone);
        origins.push(files);
    }
    if let Some(cat) = &settings.catalog {
        let members: Vec<Name> = zones.iter().map(|z| z.origin().clone()).collect();
        let records = publish::catalog_records(cat, &members);
        let ttl = settings.ttl;
        let zone = Zone::build(cat.clone(), vec![(0, records)], &settings.zones, |o, ns| {
            synth_soa(o, ns, ttl, serial)
        })?;
        zones.retain(|z| z.origin() != cat);
        zones.push(zone);
    }
    let ts_signs = settings.dnssec.is_some();
    if let Some((child, parent)) = without_cut(&zones, ts_signs) {
        return Err(below_signed(settings, &zones, &origins, child, parent));
    }
    Ok(Catalog::new(zones))
}

/// Adds every `[[ts.service]]` of `settings` to the zone holding its name
/// (the longest origin above it) with every endpoint's A or AAAA record:
/// transfers carry them all (a secondary answers as if all were live) and a
/// zone the TS signs signs them, with A/AAAA in the owner's NSEC bitmap.
/// Each service with its builder's index.
///
/// # Errors
/// A name outside every zone of the TS, or one the zone has other data at
/// (both places named).
fn add_services(
    settings: &TsSettings,
    builders: &mut [ZoneBuilder],
) -> Result<Vec<(usize, usize)>, ZoneError> {
    use hickory_proto::rr::RData;
    let mut out = Vec::with_capacity(settings.services.len());
    for (i, s) in settings.services.iter().enumerate() {
        let b = builders
            .iter()
            .enumerate()
            .filter(|(_, b)| b.origin().zone_of(&s.name))
            .max_by_key(|(_, b)| b.origin().num_labels())
            .map(|(b, _)| b);
        let Some(b) = b else {
            let origins: Vec<String> = builders.iter().map(|b| b.origin().to_string()).collect();
            let secondary = settings
                .secondaries
                .iter()
                .find(|z| z.name.zone_of(&s.name));
            let msg = match secondary {
                Some(z) => format!(
                    "is in {}, a secondary zone: services need a zone from a file \
                     (the primary's data is not this TS's to change)",
                    z.name
                ),
                None if origins.is_empty() => {
                    "is outside every zone of this TS: services need a zone from a file".to_owned()
                }
                None => format!("is outside every zone of this TS ({})", origins.join(", ")),
            };
            return Err(service_error(s, msg));
        };
        if s.name.is_wildcard() {
            return Err(service_error(
                s,
                "is a wildcard: a service answers its own name only (name each one)".to_owned(),
            ));
        }
        if let Some((cut, file, line, rtype)) = occluding(settings, &builders[b], &s.name) {
            return Err(service_error(
                s,
                format!(
                    "is at or below {cut}, a delegation ({} at {}:{line}): the name is the \
                     child zone's (occluded: a secondary answers it with a referral); put \
                     the service in the child zone's TS",
                    hickory_proto::rr::RecordType::from(rtype),
                    file.display()
                ),
            ));
        }
        if let Some((file, line, rtype)) = builders[b].first_at(&s.name) {
            let file = settings.zones.get(file).cloned().unwrap_or_default();
            return Err(service_error(
                s,
                format!(
                    "the zone has other data at this name ({} at {}:{line}): a service's \
                     name holds nothing else",
                    hickory_proto::rr::RecordType::from(rtype),
                    file.display()
                ),
            ));
        }
        let config = std::path::Path::new(&s.at);
        for e in &s.endpoint {
            let data = match e.addr {
                std::net::IpAddr::V4(a) => RData::A(a.into()),
                std::net::IpAddr::V6(a) => RData::AAAA(a.into()),
            };
            let rec = super::source::SourceRecord {
                name: s.name.clone(),
                ttl: s.ttl,
                data,
                line: 0,
            };
            builders[b].add(usize::MAX, config, &rec)?;
        }
        out.push((i, b));
    }
    Ok(out)
}

/// The delegation (an NS set not at the apex) or DNAME at or above `name`
/// in the zone of `b` (below its origin) that occludes it: the cut's name,
/// the file and line of its record, and its type.
fn occluding(
    settings: &TsSettings,
    b: &ZoneBuilder,
    name: &Name,
) -> Option<(Name, std::path::PathBuf, usize, u16)> {
    use super::zone::rtype::{DNAME, NS};
    let apex = b.origin().num_labels();
    let mut n = name.clone();
    while n.num_labels() > apex {
        // A DNAME redirects the names below it, not its own.
        let at_name = n.num_labels() == name.num_labels();
        let wanted = |t: u16| t == NS || (t == DNAME && !at_name);
        if let Some((file, line, rtype)) = b.first_where(&n, wanted) {
            let file = settings.zones.get(file).cloned().unwrap_or_default();
            return Some((n, file, line, rtype));
        }
        n = n.base_name();
    }
    None
}

/// A problem of service `s` found with the zones, at its `name` in the config.
fn service_error(s: &crate::config::ServiceConfig, msg: String) -> ZoneError {
    ZoneError::Shared {
        file: s.at.clone().into(),
        msg: format!("ts.service.name: {} {msg}", s.name),
    }
}

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
fn without_cut(zones: &[Zone], ts_signs: bool) -> Option<(usize, usize)> {
    let signed: HashMap<Name, usize> = zones
        .iter()
        .enumerate()
        .filter(|(_, z)| ts_signs || z.is_presigned())
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
fn below_signed(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The error loading a TS with `[[ts.service]]` `service` over the zone `zone`.
    fn load_error(zone: &str, service: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.org.zone");
        std::fs::write(&file, zone).unwrap();
        let text = format!(
            "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\n\n[[ts.service]]\n{service}endpoint = [ {{ addr = \"192.0.2.1\" }} ]\n",
            file.display().to_string()
        );
        let c = Config::from_toml(&text, std::path::Path::new("c.toml")).unwrap();
        let settings = TsSettings::from_config(&c.ts[0]);
        let err = load_catalog(&settings, 1).unwrap_err().to_string();
        err.replace(&file.display().to_string(), "Z")
    }

    const ZONE: &str = "$ORIGIN example.org.\n@ 300 SOA ns hostmaster 1 3600 600 86400 60\n@ 300 NS ns\nns 300 A 192.0.2.53\nwww 300 TXT \"x\"\n";

    #[test]
    fn a_service_outside_the_zones_or_over_other_data_is_refused_naming_both_places() {
        assert_eq!(
            load_error(ZONE, "name = \"www.example.net\"\n"),
            "c.toml:7: ts.service.name: www.example.net. is outside every zone of this TS (example.org.)"
        );
        assert_eq!(
            load_error(ZONE, "name = \"www.example.org\"\n"),
            "c.toml:7: ts.service.name: www.example.org. the zone has other data at this name (TXT at Z:5): a service's name holds nothing else"
        );
    }

    #[test]
    fn a_service_below_a_delegation_or_a_wildcard_is_refused() {
        let zone =
            format!("{ZONE}deleg 300 NS ns.elsewhere.example.\nold 300 DNAME example.net.\n");
        for name in ["sub.deleg.example.org", "a.b.deleg.example.org"] {
            assert_eq!(
                load_error(&zone, &format!("name = {name:?}\n")),
                format!(
                    "c.toml:7: ts.service.name: {name}. is at or below deleg.example.org., a \
                     delegation (NS at Z:6): the name is the child zone's (occluded: a \
                     secondary answers it with a referral); put the service in the child \
                     zone's TS"
                )
            );
        }
        assert!(
            load_error(&zone, "name = \"x.old.example.org\"\n")
                .contains("is at or below old.example.org., a delegation (DNAME at Z:7)")
        );
        assert_eq!(
            load_error(&zone, "name = \"*.example.org\"\n"),
            "c.toml:7: ts.service.name: *.example.org. is a wildcard: a service answers its \
             own name only (name each one)"
        );
    }

    #[test]
    fn a_service_adds_every_endpoint_to_its_zone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.org.zone");
        std::fs::write(&file, ZONE).unwrap();
        let text = format!(
            "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\n\n[[ts.service]]\nname = \"app.example.org\"\nttl = 20\nendpoint = [ {{ addr = \"192.0.2.1\" }}, {{ addr = \"2001:db8::1\" }} ]\n",
            file.display().to_string()
        );
        let c = Config::from_toml(&text, std::path::Path::new("c.toml")).unwrap();
        let catalog = load_catalog(&TsSettings::from_config(&c.ts[0]), 1).unwrap();
        let records = catalog.zones()[0].records();
        let at: Vec<String> = records
            .iter()
            .filter(|(n, _, _)| n.to_ascii() == "app.example.org.")
            .map(|(_, ttl, d)| format!("{ttl} {d}"))
            .collect();
        assert_eq!(at, ["20 192.0.2.1", "20 2001:db8::1"]);
    }

    /// A TS of many zones loads in time linear in them: each file finds its
    /// zone's builder, and each zone its signed parent, by name (20,000
    /// zones took minutes in a debug build when both were scans; 100,000 is
    /// what a hosting provider serves).
    #[test]
    fn twenty_thousand_zones_load_without_a_scan_per_zone() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<std::path::PathBuf> = (0..20_000)
            .map(|i| {
                let file = dir.path().join(format!("z{i}.zone"));
                let text = format!(
                    "$ORIGIN z{i}.test.\n@ 300 SOA ns hostmaster 1 3600 600 86400 60\n@ 300 NS ns\nns 300 A 192.0.2.53\n"
                );
                std::fs::write(&file, text).unwrap();
                file
            })
            .collect();
        let settings = TsSettings::serving("t".into(), files, Name::root(), 300);
        let started = std::time::Instant::now();
        let catalog = load_catalog(&settings, 1).unwrap();
        assert_eq!(catalog.zones().len(), 20_000);
        // Generous: linear takes a few seconds in a debug build on a busy
        // machine; the scans took minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }
}
