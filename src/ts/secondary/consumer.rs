//! A catalog zone consumed (RFC 9432, version 2; `catalog_from` in a
//! `[[ts]]`): the catalog is itself a secondary zone (transferred, NOTIFYed,
//! timed and kept in `state_dir` as any), and each version of it served is
//! read here into its members ([`members`], pure), which the consumer task
//! ([`run`]) makes secondary zones of the catalog's primary, with its key:
//! a member added is transferred and served, a member gone stops being
//! served and its `state_dir` copy is deleted, a member whose ID changed
//! (RFC 9432 §5.4, a reset) is dropped and transferred anew.
//!
//! Bounded: a catalog transfer brings at most [`CATALOG_MAX_BYTES`], and
//! at most [`MAX_MEMBERS`] members are taken; a catalog over that, or of
//! another version than 2, is refused whole ([`accept`]: logged, counted
//! as a failed refresh, neither served nor written to `state_dir`, as Knot
//! does) and the members served so far stay as they are, across a restart
//! too (the catalog read from `state_dir` is the last one taken). A member
//! that no TS should serve from a catalog (the root, the catalog itself or
//! a name under it) is ignored and logged. Members come and go in batches:
//! one rebuild of the zones served for all the members a version removes,
//! and their transfers wait for the primary's slots.
use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::driver::{Driving, Secondaries, SecondaryZone, run as run_zone};
use super::records::ZoneCopy;
use crate::ts::table_server::{SecondaryChange, TableServer};

/// The most members a consumed catalog may list (RFC 9432 sets none): a
/// hundred thousand zones of a hosting fleet, twice over. Each member costs
/// a task and its zone; beyond this the catalog is refused whole.
pub const MAX_MEMBERS: usize = 200_000;

/// The most bytes a catalog's transfer may bring: about 40 MB of PTRs is
/// [`MAX_MEMBERS`] with long names; beyond this the transfer fails.
pub const CATALOG_MAX_BYTES: usize = 48 << 20;

/// One member of a catalog: its ID (the label under `zones.`, lower-cased)
/// and its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's unique ID.
    pub id: String,
    /// The member zone.
    pub zone: Name,
}

/// Why a catalog's version is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogRefused {
    /// `version.<catalog> TXT` is missing or not "2".
    #[error("the catalog's version is {0:?}, not \"2\" (RFC 9432)")]
    Version(String),
    /// More members than [`MAX_MEMBERS`].
    #[error("the catalog lists {0} members or more, over the bound of {MAX_MEMBERS}")]
    TooMany(usize),
}

/// A catalog's members, and the zones it lists that are not taken.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The members.
    pub members: Vec<Member>,
    /// Zones listed but not taken, each with why.
    pub ignored: Vec<(Name, &'static str)>,
}

/// Why the zone `zone` cannot be a member of `catalog`, if so.
fn unfit(zone: &Name, catalog: &Name) -> Option<&'static str> {
    if zone.is_root() {
        Some("the root zone is no member a catalog may add")
    } else if catalog.zone_of(zone) {
        Some("the catalog itself, or a name inside it")
    } else {
        None
    }
}

/// The catalog `copy` taken or refused whole: the [`Accept`] of its zone.
pub fn accept(catalog: Name) -> super::driver::Accept {
    Arc::new(move |copy: &ZoneCopy| {
        members(copy, &catalog)
            .map(|_| ())
            .map_err(|e| format!("catalog refused, its members kept as they are: {e}"))
    })
}

/// The members of the catalog `copy` (of the zone `catalog`), by zone
/// name, one ID each: a member node with other than one PTR is ignored
/// (RFC 9432 §4.1), a zone listed under two IDs keeps the lowest, a zone
/// [`unfit`] to be a member is listed as ignored.
///
/// # Errors
/// See [`CatalogRefused`].
pub fn members(copy: &ZoneCopy, catalog: &Name) -> Result<Listing, CatalogRefused> {
    let version = Name::from_labels(vec!["version"])
        .ok()
        .and_then(|v| v.append_domain(catalog).ok());
    let zones = Name::from_labels(vec!["zones"])
        .ok()
        .and_then(|z| z.append_domain(catalog).ok());
    let mut found = None;
    let mut by_id: HashMap<String, Vec<Name>> = HashMap::new();
    let mut ptrs = 0usize;
    for r in copy.records() {
        match &r.data {
            RData::TXT(t) if version.as_ref().is_some_and(|v| v.eq_ignore_root(&r.name)) => {
                let text: Vec<u8> = t.txt_data.iter().flat_map(|d| d.iter().copied()).collect();
                found = Some(String::from_utf8_lossy(&text).into_owned());
            }
            RData::PTR(p)
                if r.record_type() == RecordType::PTR
                    && r.name.num_labels() == catalog.num_labels() + 2
                    && zones.as_ref().is_some_and(|z| z.zone_of(&r.name)) =>
            {
                let Some(id) = r.name.iter().next() else {
                    continue;
                };
                let id = String::from_utf8_lossy(id).to_ascii_lowercase();
                ptrs += 1;
                if ptrs > MAX_MEMBERS {
                    return Err(CatalogRefused::TooMany(ptrs));
                }
                let list = by_id.entry(id).or_default();
                let mut zone = p.0.to_lowercase();
                zone.set_fqdn(true);
                list.push(zone);
            }
            _ => {}
        }
    }
    if found.as_deref() != Some("2") {
        return Err(CatalogRefused::Version(found.unwrap_or_default()));
    }
    let mut ids: Vec<(String, Name)> = by_id
        .into_iter()
        .filter(|(_, z)| z.len() == 1)
        .filter_map(|(id, mut z)| Some((id, z.pop()?)))
        .collect();
    ids.sort();
    let mut seen = std::collections::HashSet::new();
    let mut out = Listing::default();
    for (id, zone) in ids {
        if !seen.insert(zone.clone()) {
            continue;
        }
        match unfit(&zone, catalog) {
            Some(why) => out.ignored.push((zone, why)),
            None => out.members.push(Member { id, zone }),
        }
    }
    Ok(out)
}

/// What to do to go from the members served (`current`: zone to ID) to
/// `wanted`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Members to start.
    pub add: Vec<Member>,
    /// Zones to stop serving.
    pub remove: Vec<Name>,
    /// Members whose ID changed: stopped, their copy deleted, started anew.
    pub reset: Vec<Member>,
}

/// The [`Plan`] from `current` to `wanted`.
pub fn plan(current: &HashMap<Name, String>, wanted: &[Member]) -> Plan {
    let mut out = Plan::default();
    for m in wanted {
        match current.get(&m.zone) {
            None => out.add.push(m.clone()),
            Some(id) if *id != m.id => out.reset.push(m.clone()),
            Some(_) => {}
        }
    }
    let keep: std::collections::HashSet<&Name> = wanted.iter().map(|m| &m.zone).collect();
    out.remove = current
        .keys()
        .filter(|z| !keep.contains(z))
        .cloned()
        .collect();
    out.remove.sort();
    out
}

/// A member zone at work: its ID, its task and what stops it.
struct Running {
    id: String,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

/// Tells the TS's own secondaries of a member's new version.
pub type Changed = Arc<dyn Fn(Name) + Send + Sync>;

/// What the consumer works with.
pub struct Consumer {
    /// The TS serving the members.
    pub ts: Arc<TableServer>,
    /// Its secondary zones (members are added to and removed from them).
    pub secondaries: Arc<Secondaries>,
    /// The catalog zone.
    pub catalog: Arc<SecondaryZone>,
    /// How members are driven (`copies` unused).
    pub driving: Driving,
    /// Told of each member's new version.
    pub changed: Changed,
}

/// Follows the catalog's versions told on `copies` until `stop`: see the
/// module's text. Stopping stops every member's task.
pub async fn run(
    c: Consumer,
    mut copies: watch::Receiver<Option<Arc<ZoneCopy>>>,
    stop: CancellationToken,
) {
    let name = c.ts.settings().name.clone();
    let mut running: HashMap<Name, Running> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = copies.changed() => if r.is_err() { break },
        }
        let Some(copy) = copies.borrow_and_update().clone() else {
            continue;
        };
        let wanted = match members(&copy, &c.catalog.name) {
            Ok(listing) => {
                for (zone, why) in &listing.ignored {
                    warn!(ts = %name, catalog = %c.catalog.name, zone = %zone, why, "catalog member ignored");
                }
                listing.members
            }
            Err(err) => {
                warn!(ts = %name, catalog = %c.catalog.name, serial = copy.serial(), %err, "catalog refused; its members served are kept as they are");
                continue;
            }
        };
        // Zones this TS serves otherwise (its files, its own secondaries).
        let served: std::collections::HashSet<Name> =
            c.ts.catalog()
                .zones()
                .iter()
                .map(|z| z.origin().to_lowercase())
                .collect();
        let wanted: Vec<Member> = wanted
            .into_iter()
            .filter(|m| {
                let theirs = running.contains_key(&m.zone)
                    || (c.secondaries.get(&m.zone).is_none() && !served.contains(&m.zone));
                if !theirs {
                    warn!(ts = %name, zone = %m.zone, "catalog member skipped: this TS serves that zone already");
                }
                theirs
            })
            .collect();
        let current = running
            .iter()
            .map(|(z, r)| (z.clone(), r.id.clone()))
            .collect();
        let p = plan(&current, &wanted);
        let leaving = p.remove.iter().chain(p.reset.iter().map(|m| &m.zone));
        let leaving: Vec<(Name, Running)> = leaving
            .filter_map(|zone| Some((zone.clone(), running.remove(zone)?)))
            .collect();
        drop_members(&c, leaving).await;
        for m in p.add.iter().chain(&p.reset) {
            running.insert(m.zone.clone(), start_member(&c, m, &stop));
        }
        info!(ts = %name, catalog = %c.catalog.name, serial = copy.serial(), members = running.len(), added = p.add.len(), removed = p.remove.len(), reset = p.reset.len(), "catalog applied");
    }
    for (_, r) in running {
        r.stop.cancel();
        let _ = r.task.await;
    }
}

/// Starts the member `m` as a secondary zone of the catalog's primary.
fn start_member(c: &Consumer, m: &Member, stop: &CancellationToken) -> Running {
    let zone = SecondaryZone::new(m.zone.clone(), c.catalog.primary, c.catalog.key.clone());
    let zone = c.secondaries.add(zone);
    let token = stop.child_token();
    let changed = c.changed.clone();
    let task = tokio::spawn(run_zone(
        c.ts.clone(),
        zone,
        c.driving.clone(),
        move |n| changed(n),
        token.clone(),
    ));
    Running {
        id: m.id.clone(),
        task,
        stop: token,
    }
}

/// Stops the members `leaving`: their tasks ended, no longer served (one
/// batch), their copies in `state_dir` deleted.
async fn drop_members(c: &Consumer, leaving: Vec<(Name, Running)>) {
    if leaving.is_empty() {
        return;
    }
    for (_, r) in &leaving {
        r.stop.cancel();
    }
    let mut zones = Vec::with_capacity(leaving.len());
    for (zone, r) in leaving {
        let _ = r.task.await;
        c.secondaries.remove(&zone);
        zones.push(zone);
    }
    // By the one writer, after whatever the members handed it: nothing
    // brings their files back, and a member reset reads none at start.
    if let Some(w) = &c.driving.writer {
        w.delete(&zones).await;
    }
    for zone in &zones {
        info!(ts = %c.ts.settings().name, zone = %zone, "catalog member removed: no longer served");
    }
    let gone = zones
        .into_iter()
        .map(SecondaryChange::Remove)
        .collect::<Vec<_>>();
    c.driving.installer.apply(gone).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{PTR, SOA, TXT};

    use crate::dns::fixtures::name;

    fn catalog(version: &str, members: &[(&str, &str)]) -> ZoneCopy {
        let cat = name("cat.test.");
        let soa = SOA::new(name("invalid."), name("invalid."), 1, 60, 10, 600, 0);
        let soa = Record::from_rdata(cat.clone(), 0, RData::SOA(soa));
        let mut recs = vec![Record::from_rdata(
            name("version.cat.test."),
            0,
            RData::TXT(TXT::new(vec![version.into()])),
        )];
        for (id, zone) in members {
            recs.push(Record::from_rdata(
                name(&format!("{id}.zones.cat.test.")),
                0,
                RData::PTR(PTR(name(zone))),
            ));
        }
        ZoneCopy::new(soa, recs)
    }

    #[test]
    fn a_catalog_reads_into_its_members_one_id_each() {
        let cat = name("cat.test.");
        let got = members(
            &catalog(
                "2",
                &[
                    ("b", "B.test."),
                    ("a", "a.test."),
                    ("c", "a.test."),
                    ("d", "d.test."),
                    ("d", "e.test."),
                    ("x", "cat.test."),
                    ("r", "."),
                    ("y", "sub.CAT.test."),
                ],
            ),
            &cat,
        )
        .unwrap();
        let text: Vec<String> = got
            .members
            .iter()
            .map(|m| format!("{} {}", m.id, m.zone))
            .collect();
        // a.test. twice: the lowest ID; d has two PTRs: ignored; the
        // catalog itself, a name inside it and the root: no members, and
        // said.
        assert_eq!(text, ["a a.test.", "b b.test."]);
        let ignored: Vec<String> = got.ignored.iter().map(|(z, _)| z.to_ascii()).collect();
        assert_eq!(ignored, [".", "cat.test.", "sub.cat.test."]);
        assert_eq!(
            members(&catalog("1", &[("a", "a.test.")]), &cat),
            Err(CatalogRefused::Version("1".into()))
        );
        assert_eq!(
            members(&catalog("", &[]), &cat),
            Err(CatalogRefused::Version(String::new()))
        );
    }

    #[test]
    fn a_plan_adds_removes_and_resets_on_a_change_of_id() {
        let m = |id: &str, z: &str| Member {
            id: id.into(),
            zone: name(z),
        };
        let current: HashMap<Name, String> = [
            (name("keep.test."), "1".to_owned()),
            (name("gone.test."), "2".to_owned()),
            (name("moved.test."), "3".to_owned()),
        ]
        .into_iter()
        .collect();
        let p = plan(
            &current,
            &[
                m("1", "keep.test."),
                m("9", "moved.test."),
                m("4", "new.test."),
            ],
        );
        assert_eq!(
            p,
            Plan {
                add: vec![m("4", "new.test.")],
                remove: vec![name("gone.test.")],
                reset: vec![m("9", "moved.test.")],
            }
        );
    }
}
