//! The secondary zones a TS's `zones` lists, at work as the config in force
//! lists them: one task each ([`run_zone`]), started with the TS, and
//! changed by a reload whose config changed `zones` ([`run`], told each
//! reload's [`ListedChanges`]): a zone added is started (its copy in `state_dir`
//! served first, if any, then transferred), a zone gone is stopped, no
//! longer served (REFUSED, as any zone not served) and its `state_dir` copy
//! deleted (as a catalog member gone is, and as NSD's `delzone` does: the
//! zone added back later is transferred anew), a zone whose primary or key
//! changed is started again with them, its copy served meanwhile. The
//! changes of one reload are applied in order, the zones gone in one
//! rebuild of the zones served.
use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::Name;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::consumer::Changed;
use super::driver::{Driving, Secondaries, SecondaryZone, load_key, run as run_zone};
use crate::ts::table_server::{SecondaryChange, TableServer};
use crate::ts::zones_live::SecondaryPlan;

/// A reload's changes to the listed secondary zones, their keys read.
#[derive(Debug, Default)]
pub struct ListedChanges {
    /// Zones to start.
    pub start: Vec<SecondaryZone>,
    /// Zones to start again (another primary or key).
    pub restart: Vec<SecondaryZone>,
    /// Zones to stop and no longer serve.
    pub remove: Vec<Name>,
}

impl ListedChanges {
    /// `plan` with the keys of its zones read.
    ///
    /// # Errors
    /// A key that cannot be read, named: nothing of `plan` is to be applied.
    pub fn read(plan: SecondaryPlan) -> Result<Self, String> {
        let zone = |s: crate::ts::Secondary| -> Result<SecondaryZone, String> {
            let key = load_key(s.key.as_ref())?;
            Ok(SecondaryZone::new(s.name, s.primary, key))
        };
        Ok(ListedChanges {
            start: plan.add.into_iter().map(zone).collect::<Result<_, _>>()?,
            restart: plan
                .restart
                .into_iter()
                .map(zone)
                .collect::<Result<_, _>>()?,
            remove: plan.remove,
        })
    }
}

/// What the listed zones' tasks work with.
pub struct Listed {
    /// The TS serving them.
    pub ts: Arc<TableServer>,
    /// Its secondary zones (the listed ones, the catalog's members).
    pub secondaries: Arc<Secondaries>,
    /// How each zone is driven.
    pub driving: Driving,
    /// Told of each zone's new version.
    pub changed: Changed,
}

/// One listed zone's task.
struct Running {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

/// The key of a zone in the running map.
fn key_of(name: &Name) -> Name {
    let mut k = name.to_lowercase();
    k.set_fqdn(true);
    k
}

/// Drives `zones` (the listed secondary zones at start, already in the
/// TS's [`Secondaries`]), then applies each [`ListedChanges`] told on `changes`,
/// until `stop`: then every zone's task is stopped and waited for.
pub async fn run(
    l: Listed,
    zones: Vec<Arc<SecondaryZone>>,
    mut changes: mpsc::UnboundedReceiver<ListedChanges>,
    stop: CancellationToken,
) {
    let mut running: HashMap<Name, Running> = HashMap::new();
    for zone in zones {
        running.insert(key_of(&zone.name), start(&l, zone, &stop));
    }
    loop {
        let c = tokio::select! {
            () = stop.cancelled() => break,
            c = changes.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        apply(&l, &mut running, c, &stop).await;
    }
    for (_, r) in running {
        r.stop.cancel();
        let _ = r.task.await;
    }
}

/// Applies `c`: the zones gone first (one rebuild), then those started
/// again, then the new ones.
async fn apply(
    l: &Listed,
    running: &mut HashMap<Name, Running>,
    c: ListedChanges,
    stop: &CancellationToken,
) {
    let name = &l.ts.settings().name;
    let mut gone = Vec::with_capacity(c.remove.len());
    for zone in c.remove {
        if let Some(r) = running.remove(&key_of(&zone)) {
            r.stop.cancel();
            let _ = r.task.await;
        }
        l.secondaries.remove(&zone);
        gone.push(zone);
    }
    if !gone.is_empty() {
        // After whatever the tasks handed the writer: nothing brings the
        // files back.
        if let Some(w) = &l.driving.writer {
            w.delete(&gone).await;
        }
        for zone in &gone {
            info!(ts = %name, zone = %zone, "secondary zone removed: no longer served");
        }
        let changes = gone.into_iter().map(SecondaryChange::Remove);
        l.driving.installer.apply(changes.collect::<Vec<_>>()).await;
    }
    for zone in c.restart {
        if let Some(r) = running.remove(&key_of(&zone.name)) {
            r.stop.cancel();
            let _ = r.task.await;
        }
        info!(ts = %name, zone = %zone.name, primary = %zone.primary, "secondary zone started again: its primary or key changed");
        let zone = l.secondaries.add(zone);
        running.insert(key_of(&zone.name), start(l, zone, stop));
    }
    for zone in c.start {
        info!(ts = %name, zone = %zone.name, primary = %zone.primary, "secondary zone added");
        let zone = l.secondaries.add(zone);
        running.insert(key_of(&zone.name), start(l, zone, stop));
    }
}

/// Makes `secondaries` answer the NOTIFYs `ts` gets (from the first
/// secondary zone on; a TS with none answers them REFUSED, as a primary).
pub fn answer_notifies(ts: &Arc<TableServer>, secondaries: &Arc<Secondaries>) {
    let hook = {
        let (ts, secondaries) = (Arc::downgrade(ts), secondaries.clone());
        move |raw: &[u8], from: std::net::IpAddr| {
            let ts = ts.upgrade()?;
            secondaries.answer_notify(raw, from, &ts.metrics().secondary)
        }
    };
    ts.set_notify_hook(Box::new(hook));
}

/// Starts `zone`'s task, stopped by its own token (a child of `stop`).
fn start(l: &Listed, zone: Arc<SecondaryZone>, stop: &CancellationToken) -> Running {
    let token = stop.child_token();
    let changed = l.changed.clone();
    let task = tokio::spawn(run_zone(
        l.ts.clone(),
        zone,
        l.driving.clone(),
        move |n| changed(n),
        token.clone(),
    ));
    answer_notifies(&l.ts, &l.secondaries);
    Running { task, stop: token }
}
