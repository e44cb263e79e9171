//! The `[[ts.service]]` names put into the zones a TS loads: each service's
//! endpoints as A/AAAA records of the zone holding its name, and the
//! checks that the name is this TS's to answer (inside a zone from a file,
//! no secondary zone between that zone and the name, not a wildcard, not occluded by a delegation or DNAME, no other data at
//! it), each error naming the service's place in the config.
use hickory_proto::rr::Name;

use crate::ts::error::ZoneError;
use crate::ts::settings::TsSettings;
use crate::ts::zone::ZoneBuilder;

use super::origins::ByOrigin;

/// Adds every `[[ts.service]]` of `settings` to the zone holding its name
/// (the longest origin above it) with every endpoint's A or AAAA record:
/// transfers carry them all (a secondary answers as if all were live) and a
/// zone the TS signs signs them, with A/AAAA in the owner's NSEC bitmap.
/// Each service with its builder's index.
///
/// # Errors
/// A name outside every zone of the TS, or one the zone has other data at
/// (both places named).
pub(super) fn add_services(
    settings: &TsSettings,
    builders: &mut [ZoneBuilder],
    by_origin: &ByOrigin,
) -> Result<Vec<(usize, usize)>, ZoneError> {
    use hickory_proto::rr::RData;
    let mut out = Vec::with_capacity(settings.services.len());
    for (i, s) in settings.services.iter().enumerate() {
        // The longest origin above the name: its suffixes looked up, not
        // every zone scanned.
        let b = {
            let mut n = s.name.clone();
            n.set_fqdn(true);
            loop {
                if let Some(b) = crate::ts::zone::key_of(&n)
                    .ok()
                    .and_then(|k| by_origin.get(builders, &k))
                {
                    break Some(b);
                }
                if n.is_root() || n.num_labels() == 0 {
                    break None;
                }
                n = n.base_name();
            }
        };
        // A secondary zone at or below the file zone found (or holding the
        // name when no file zone does) is the longest origin above it: the
        // name is the primary's.
        let file_labels = b.map(|b| builders[b].origin().num_labels());
        let secondary = settings
            .secondaries
            .iter()
            .filter(|z| z.name.zone_of(&s.name))
            .filter(|z| file_labels.is_none_or(|l| z.name.num_labels() >= l))
            .max_by_key(|z| z.name.num_labels());
        if let Some(z) = secondary {
            return Err(service_error(
                s,
                format!(
                    "is in {}, a secondary zone: services need a zone from a file \
                     (the primary's data is not this TS's to change)",
                    z.name
                ),
            ));
        }
        let Some(b) = b else {
            let origins: Vec<String> = builders.iter().map(|b| b.origin().to_string()).collect();
            let msg = if origins.is_empty() {
                "is outside every zone of this TS: services need a zone from a file".to_owned()
            } else {
                format!("is outside every zone of this TS ({})", origins.join(", "))
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
        for v4 in [true, false] {
            let n = s.endpoint.iter().filter(|e| e.addr.is_ipv4() == v4).count();
            if n > usize::from(u16::MAX) {
                let family = if v4 { "IPv4" } else { "IPv6" };
                return Err(service_error(
                    s,
                    format!(
                        "has {n} {family} endpoints: one RRset holds at most {}",
                        u16::MAX
                    ),
                ));
            }
        }
        let config = std::path::Path::new(&s.at);
        for e in &s.endpoint {
            let data = match e.addr {
                std::net::IpAddr::V4(a) => RData::A(a.into()),
                std::net::IpAddr::V6(a) => RData::AAAA(a.into()),
            };
            let rec = crate::ts::source::SourceRecord {
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
    use crate::ts::zone::rtype::{DNAME, NS};
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
pub(super) fn service_error(s: &crate::config::ServiceConfig, msg: String) -> ZoneError {
    ZoneError::Shared {
        file: s.at.clone().into(),
        msg: format!("ts.service.name: {} {msg}", s.name),
    }
}
