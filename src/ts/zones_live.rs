//! What a reload changes of the zones a TS serves when its config changed
//! `zones` in its `[[ts]]`: the settings with the new zone files and
//! secondary zones ([`with_zones_of`], every other key as in force: only a
//! restart applies them), the secondary zones to start, stop or start again
//! ([`SecondaryPlan`]), the zones a swap added and removed
//! ([`added_removed`]), and the refusal of a zone given twice. Pure
//! functions over the settings and the zones; the role applies them.
use std::collections::HashSet;

use hickory_proto::rr::Name;

use crate::config::Config;

use super::error::ZoneError;
use super::settings::{Secondary, TsSettings};
use super::zone::{Catalog, Zone};

/// `applied` with the `zones` (files and secondary zones) that `config`
/// gives its `[[ts]]` (the one of the same name); `None` when `applied`
/// was not started from a file or `config` has no `[[ts]]` of that name.
pub fn with_zones_of(applied: &TsSettings, config: &Config) -> Option<TsSettings> {
    let (path, started) = applied.started_from.as_ref()?;
    let tc = config.ts_by_name(&applied.name)?;
    let fresh = TsSettings::from_config_in(config, tc);
    let mut started = started.clone();
    started.zones.secondaries.clone_from(&tc.zones.secondaries);
    Some(TsSettings {
        zones: fresh.zones,
        secondaries: fresh.secondaries,
        started_from: Some((path.clone(), started)),
        ..applied.clone()
    })
}

/// Refuses `zones` (a load's) when one of them is also given as a
/// secondary zone (or is the catalog `catalog_from` consumes).
///
/// # Errors
/// The first such zone, named.
pub fn refuse_given_twice<'a>(
    settings: &TsSettings,
    zones: impl IntoIterator<Item = &'a Zone>,
) -> Result<(), ZoneError> {
    let taken: Vec<&Secondary> = settings
        .secondaries
        .iter()
        .chain(&settings.catalog_from)
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    for z in zones {
        if let Some(s) = taken.iter().find(|s| s.name.eq_ignore_root(z.origin())) {
            let file = settings.started_from.as_ref().map(|(p, _)| p.clone());
            return Err(ZoneError::Shared {
                file: file.unwrap_or_default(),
                msg: format!(
                    "[[ts]] {}: the zone {} is given twice, by a zone file and as a secondary zone: give each zone once",
                    settings.name, s.name
                ),
            });
        }
    }
    Ok(())
}

/// The origins of `new` that `old` did not serve, and those of `old` that
/// `new` does not hold.
pub fn added_removed(old: &Catalog, new: &[Zone]) -> (Vec<Name>, Vec<Name>) {
    let before: HashSet<&[u8]> = old.zones().iter().map(Zone::origin_wire).collect();
    let after: HashSet<&[u8]> = new.iter().map(Zone::origin_wire).collect();
    let added = (new.iter())
        .filter(|z| !before.contains(z.origin_wire()))
        .map(|z| z.origin().clone())
        .collect();
    let removed = (old.zones().iter())
        .filter(|z| !after.contains(z.origin_wire()))
        .map(|z| z.origin().clone())
        .collect();
    (added, removed)
}

/// How the secondary zones of `zones` change from one list to another.
#[derive(Debug, Default)]
pub struct SecondaryPlan {
    /// Zones new to the list: started.
    pub add: Vec<Secondary>,
    /// Zones gone from it: stopped, no longer served, their copy deleted.
    pub remove: Vec<Name>,
    /// Zones whose primary or key changed: started again with them, their
    /// copy served meanwhile.
    pub restart: Vec<Secondary>,
}

impl SecondaryPlan {
    /// The plan from `old` to `new` (zones compared by name, case aside).
    pub fn of(old: &[Secondary], new: &[Secondary]) -> Self {
        let find = |list: &[Secondary], n: &Name| -> Option<Secondary> {
            list.iter().find(|s| s.name.eq_ignore_root(n)).cloned()
        };
        let mut plan = SecondaryPlan::default();
        for n in new {
            match find(old, &n.name) {
                None => plan.add.push(n.clone()),
                Some(o) if o.primary != n.primary || o.key != n.key => {
                    plan.restart.push(n.clone());
                }
                Some(_) => {}
            }
        }
        for o in old {
            if find(new, &o.name).is_none() {
                plan.remove.push(o.name.clone());
            }
        }
        plan
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.restart.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::name;

    fn sec(zone: &str, port: u16) -> Secondary {
        Secondary {
            name: name(zone),
            primary: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            key: None,
        }
    }

    #[test]
    fn a_plan_starts_the_new_stops_the_gone_and_restarts_the_moved() {
        let old = [
            sec("keep.test.", 1),
            sec("gone.test.", 1),
            sec("moved.test.", 1),
        ];
        let new = [
            sec("KEEP.test.", 1),
            sec("moved.test.", 2),
            sec("new.test.", 1),
        ];
        let p = SecondaryPlan::of(&old, &new);
        let names = |v: &[Secondary]| v.iter().map(|s| s.name.to_ascii()).collect::<Vec<_>>();
        assert_eq!(names(&p.add), ["new.test."]);
        assert_eq!(names(&p.restart), ["moved.test."]);
        assert_eq!(p.remove, [name("gone.test.")]);
        assert!(SecondaryPlan::of(&old, &old).is_empty());
    }

    #[test]
    fn a_config_that_adds_a_zone_file_changes_the_zones_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        let text = |zones: &str, ttl: u32| {
            format!(
                "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nttl = {ttl}\nzones = [{zones}]\n"
            )
        };
        std::fs::write(&config, text("\"a.zone\"", 300)).unwrap();
        let cfg = Config::load(&config).unwrap();
        let applied = TsSettings::from_config_in(&cfg, &cfg.ts[0]);
        std::fs::write(
            &config,
            text(
                "\"a.zone\", \"b.zone\", { name = \"s.test\", primary = \"127.0.0.1:5\" }",
                60,
            ),
        )
        .unwrap();
        let now = Config::load(&config).unwrap();
        let next = with_zones_of(&applied, &now).unwrap();
        assert_eq!(
            next.zones,
            [dir.path().join("a.zone"), dir.path().join("b.zone")]
        );
        assert_eq!(next.secondaries.len(), 1);
        assert_eq!(next.ttl, 300, "a key only a restart applies is not taken");
        let (_, started) = next.started_as().unwrap();
        assert_eq!(
            started.zones, now.ts[0].zones,
            "the zones in force are the new ones"
        );
        assert_eq!(started.ttl, 300);
        assert!(
            with_zones_of(&TsSettings::for_test(Vec::new()), &now).is_none(),
            "not from a file"
        );
    }
}
