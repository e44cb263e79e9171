//! The secondary zones' changes put into service in batches: each zone's
//! task hands its change (a new version, the same one expired or not, a
//! member gone) to the [`Installer`] and waits until it is served. Whoever's
//! turn it is first lets the others hand theirs in, for about as long as
//! the last rebuild took (at most [`MAX_GATHER`]), then installs everything
//! handed in with one new catalog ([`TableServer::apply_secondaries`],
//! linear in the zones served): so at most about half the time goes to
//! rebuilds however many zones are served, and 50,000 copies read from
//! `state_dir` at start, or a catalog's members transferred at once, cost
//! a rebuild per batch, not one each (which made them quadratic).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ts::table_server::{SecondaryChange, TableServer};

/// The longest a turn waits for others' changes before installing.
pub const MAX_GATHER: Duration = Duration::from_millis(250);

/// Where the secondary zones' changes wait for their batch.
pub struct Installer {
    ts: Arc<TableServer>,
    /// The changes not yet served, in the order they came.
    pending: Mutex<Vec<SecondaryChange>>,
    /// Whose turn it is to install what is pending (FIFO).
    turn: tokio::sync::Mutex<()>,
    /// Batches installed.
    batches: AtomicU64,
    /// How long the last batch took to install, in microseconds.
    last_us: AtomicU64,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer")
            .field("batches", &self.batches.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Installer {
    /// The installer of `ts`'s secondary zones.
    pub fn new(ts: Arc<TableServer>) -> Self {
        Installer {
            ts,
            pending: Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
            batches: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
        }
    }

    /// Applies `changes` (in order, after every change handed in before
    /// them) and returns once they are served. A caller cancelled while it
    /// waits leaves its changes to the next batch, still in order: a zone
    /// removed after it stays removed.
    pub async fn apply(&self, changes: impl IntoIterator<Item = SecondaryChange>) {
        self.lock_pending().extend(changes);
        let _turn = self.turn.lock().await;
        if self.lock_pending().is_empty() {
            // Ours were handed in before we waited: whoever held the turn
            // since took them.
            return;
        }
        // The others' turn to hand theirs in (those ready now, and those
        // that come while a rebuild's time passes).
        tokio::task::yield_now().await;
        let last = Duration::from_micros(self.last_us.load(Relaxed));
        if last >= Duration::from_millis(1) {
            tokio::time::sleep(last.min(MAX_GATHER)).await;
        }
        let batch = std::mem::take(&mut *self.lock_pending());
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            self.batches.fetch_add(1, Relaxed);
            self.ts.apply_secondaries(batch);
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.last_us.store(took, Relaxed);
        }
    }

    /// Batches installed so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Relaxed)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<SecondaryChange>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::TsSettings;
    use crate::ts::secondary::compiled::compile;
    use crate::ts::secondary::records::ZoneCopy;
    use crate::ts::zone::Zone;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record};

    fn zone(i: usize) -> Zone {
        let origin = Name::from_ascii(format!("m{i}.test.")).unwrap();
        let soa = SOA::new(origin.clone(), origin.clone(), 1, 60, 10, 600, 30);
        let soa = Record::from_rdata(origin.clone(), 300, RData::SOA(soa));
        let www = Name::from_ascii("www").unwrap().append_domain(&origin);
        let a = Record::from_rdata(www.unwrap(), 60, RData::A(A::new(192, 0, 2, 1)));
        let primary = "127.0.0.1:53".parse().unwrap();
        compile(&ZoneCopy::new(soa, [a]), primary).unwrap()
    }

    /// 20,000 zones handed in at once (the copies of a catalog's members
    /// read at start) are served after a few rebuilds of the zone set, not
    /// one each: one each costs 20,000 rebuilds of up to 20,000 zones (the
    /// quadratic that took minutes at 50,000). Then half of them removed
    /// in one batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn many_zones_handed_in_at_once_are_installed_in_a_few_batches() {
        const N: usize = 20_000;
        let settings = TsSettings::serving("t".into(), Vec::new(), Name::root(), 60);
        let ts = Arc::new(TableServer::load(settings).unwrap());
        let installer = Arc::new(Installer::new(ts.clone()));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let installer = installer.clone();
                tokio::spawn(async move {
                    installer
                        .apply([SecondaryChange::Install(Box::new(zone(i)))])
                        .await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(ts.catalog().zones().len(), N);
        let batches = installer.batches();
        assert!(batches <= 200, "{batches} batches for {N} zones");
        let gone = (0..N / 2)
            .map(|i| SecondaryChange::Remove(Name::from_ascii(format!("M{i}.test.")).unwrap()));
        installer.apply(gone).await;
        assert_eq!(installer.batches(), batches + 1);
        let left = ts.catalog();
        assert_eq!(left.zones().len(), N / 2);
        let key = |i: usize| {
            crate::ts::service::compiled::lower_wire(
                &Name::from_ascii(format!("m{i}.test.")).unwrap(),
            )
        };
        assert!(left.with_origin(&key(N - 1)).is_some());
        assert!(left.with_origin(&key(0)).is_none());
    }

    /// Whether the thread `tid` of this process sleeps (state `S`: here,
    /// waiting for a lock).
    fn sleeping(tid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('S')))
            .unwrap_or(false)
    }

    /// A reload that starts while a secondary install holds the zone set
    /// keeps what the install put in. It used to read the zones served
    /// before it waited for that lock, and put the older set back: the
    /// secondary's new copy was lost, though its driver believed it served.
    #[test]
    fn a_reload_waiting_for_an_install_keeps_what_the_install_put_in() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t.txt");
        std::fs::write(&table, "www.a.test 192.0.2.1 A\n").unwrap();
        let settings = TsSettings::serving(
            "t".into(),
            vec![table.clone()],
            "a.test.".parse().unwrap(),
            60,
        );
        let ts = Arc::new(TableServer::load(settings).unwrap());
        std::fs::write(&table, "www.a.test 192.0.2.2 A\n").unwrap();
        // The install's swap, held open: the reload starts meanwhile.
        let held = ts.sources.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reload = {
            let ts = ts.clone();
            std::thread::spawn(move || {
                let me = std::fs::read_link("/proc/thread-self").unwrap();
                tx.send(me.file_name().unwrap().to_string_lossy().into_owned())
                    .unwrap();
                ts.reload()
            })
        };
        let tid = rx.recv().unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !sleeping(&tid) {
            assert!(std::time::Instant::now() < until, "the reload never waited");
            std::thread::yield_now();
        }
        ts.apply_secondaries_locked(vec![SecondaryChange::Install(Box::new(zone(7)))]);
        drop(held);
        reload.join().unwrap().unwrap();
        let key = crate::ts::service::compiled::lower_wire(&Name::from_ascii("m7.test.").unwrap());
        assert!(
            ts.catalog().with_origin(&key).is_some(),
            "the zone installed while the reload waited is gone"
        );
    }
}
