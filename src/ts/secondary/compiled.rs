//! A secondary zone's copy compiled into the zone served: whole
//! ([`compile`]), or, after an IXFR, the zone served before patched for the
//! names the changes touch ([`compile_changed`]); and the copy's SOA
//! timers ([`timers_of`]).
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::rr::{Name, RData};

use super::records::{IxfrChange, Rec, ZoneCopy};
use super::timers::SoaTimers;
use crate::ts::error::ZoneError;
use crate::ts::service::compiled::lower_wire;
use crate::ts::source::SourceRecord;
use crate::ts::zone::{Zone, build, patch};

/// The zone served for `copy`, transferred from `primary`.
///
/// # Errors
/// Records the zone cannot hold (outside it, a CNAME beside data...).
pub fn compile(copy: &ZoneCopy, primary: SocketAddr) -> Result<Zone, ZoneError> {
    let records = std::iter::once(&copy.soa)
        .chain(copy.records())
        .enumerate()
        .map(|(i, r)| source_record(r, i + 1))
        .collect();
    let file = PathBuf::from(format!("transfer from {primary}"));
    let soa = match &copy.soa.data {
        RData::SOA(s) => s.clone(),
        _ => return Err(ZoneError::line(&file, 1, "the first record is no SOA")),
    };
    let ttl = copy.soa.ttl;
    build::zone(
        copy.origin().clone(),
        vec![(0, records)],
        &[file],
        |_, _| (ttl, soa),
    )
}

/// The SOA timers of `copy`.
pub fn timers_of(copy: &ZoneCopy) -> SoaTimers {
    match &copy.soa.data {
        RData::SOA(s) => {
            let u = |v: i32| u32::try_from(v).unwrap_or(0);
            SoaTimers::new(u(s.refresh), u(s.retry), u(s.expire))
        }
        _ => SoaTimers::new(0, 0, 0),
    }
}

/// The zone served for `copy` after `changes` were applied to it: `served`
/// (the zone served for the copy before them) patched for the names they
/// touch when it can be ([`patch::patched`]), else compiled whole.
///
/// # Errors
/// As [`compile`].
pub fn compile_changed(
    copy: &ZoneCopy,
    changes: &[IxfrChange],
    served: Option<&Zone>,
    primary: SocketAddr,
) -> Result<Zone, ZoneError> {
    let patched = served.filter(|z| !z.is_expired()).and_then(|z| {
        let mut owners: Vec<&Name> = changes
            .iter()
            .flat_map(|c| c.deleted.iter().chain(&c.added))
            .map(|r| &r.name)
            .collect();
        owners.push(copy.origin());
        let mut seen = HashSet::new();
        owners.retain(|n| seen.insert(lower_wire(n)));
        let records = owners
            .iter()
            .flat_map(|o| copy.records_at(o))
            .map(|r| source_record(r, 2))
            .collect();
        let owners: Vec<Name> = owners.into_iter().cloned().collect();
        patch::patched(z, source_record(&copy.soa, 1), &owners, records)
    });
    match patched {
        Some(z) => Ok(z),
        None => compile(copy, primary),
    }
}

/// `r` as a compiled zone takes it, said to come from `line`.
fn source_record(r: &Rec, line: usize) -> SourceRecord {
    SourceRecord {
        name: r.name.clone(),
        ttl: r.ttl,
        data: r.data.clone(),
        line,
    }
}
