//! The one writer of a TS's `state_dir`: the zones' tasks hand it their
//! copies, contact times and deletions ([`StateWriter`], never blocking:
//! the runtime's threads do no disk work), and a thread of its own writes
//! them in batches ([`WriteQueue`], pure, and [`write_batch`] over a [`Sink`]).
//!
//! Coalescing: at most one entry waits per zone, holding the latest copy
//! handed in (an `Arc` the zone's task shares, so a pending write costs a
//! map entry, not a copy), the latest contact time, and whether its files
//! are to be deleted first; a zone transferred twice before its turn is
//! written once. Bounded: the queue holds at most one entry per zone. A
//! deletion drops what was pending for that zone, goes before the copies
//! waiting (so a catalog member reset waits for one batch at most), and no
//! write handed in before it can bring the file back: one thread does
//! both, in the order handed in.
//!
//! Each file is written to a temporary file, synced and renamed over the
//! old one (a crash leaves the old copy or the new), and the folder is
//! synced once per batch. At stop the writer goes on until the queue is
//! empty or its grace is over, then exits: what is left is abandoned
//! (counted and logged once: those zones are transferred again at the
//! next start).
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::records::ZoneCopy;
use super::state;

/// The most zones written in one batch (between two syncs of the folder).
pub const BATCH: usize = 64;

/// How long the writer goes on after a stop before it abandons the rest
/// (within the TS's whole stop, `SHUTDOWN_GRACE`).
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// What waits to be written for one zone.
#[derive(Debug, Default)]
pub struct ZoneWrites {
    /// Its files deleted first.
    pub delete: bool,
    /// The latest copy handed in.
    pub copy: Option<Arc<ZoneCopy>>,
    /// The latest contact time handed in (seconds since the epoch).
    pub contact: Option<u64>,
    /// Told once this entry is done (or dropped: abandoned).
    pub done: Vec<oneshot::Sender<()>>,
}

/// The zones waiting for the writer, at most one entry each: the
/// coalescing and the order, without I/O.
#[derive(Debug, Default)]
pub struct WriteQueue {
    pending: HashMap<Name, ZoneWrites>,
    /// Zones with a deletion, first served.
    urgent: VecDeque<Name>,
    /// Zones in the order their entry was made (a name no longer pending
    /// is skipped).
    order: VecDeque<Name>,
}

/// The key of `zone` in a [`WriteQueue`].
fn key_of(zone: &Name) -> Name {
    let mut k = zone.to_lowercase();
    k.set_fqdn(true);
    k
}

impl WriteQueue {
    /// The entry of `zone`, made (and queued) when there is none.
    fn entry(&mut self, zone: &Name) -> &mut ZoneWrites {
        let key = key_of(zone);
        if !self.pending.contains_key(&key) {
            self.order.push_back(key.clone());
        }
        self.pending.entry(key).or_default()
    }

    /// `copy` to be written (in place of any copy of its zone waiting).
    pub fn copy(&mut self, copy: Arc<ZoneCopy>) {
        let zone = copy.origin().clone();
        self.entry(&zone).copy = Some(copy);
    }

    /// The contact time `at` of `zone` to be written.
    pub fn contact(&mut self, zone: &Name, at: u64) {
        self.entry(zone).contact = Some(at);
    }

    /// `zone`'s files to be deleted: what waited for it is dropped;
    /// `done` is told once they are.
    pub fn delete(&mut self, zone: &Name, done: Option<oneshot::Sender<()>>) {
        let key = key_of(zone);
        self.urgent.push_back(key.clone());
        let e = self.entry(&key);
        e.delete = true;
        e.copy = None;
        e.contact = None;
        e.done.extend(done);
    }

    /// Zones waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Up to `max` entries out of the queue: deletions first, then in the
    /// order they were made.
    pub fn take(&mut self, max: usize) -> Vec<(Name, ZoneWrites)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(key) = self.urgent.pop_front().or_else(|| self.order.pop_front()) else {
                break;
            };
            if let Some(p) = self.pending.remove(&key) {
                out.push((key, p));
            }
        }
        out
    }
}

/// Where a batch goes: the folder, or a test's record.
pub trait Sink {
    /// Deletes `zone`'s files.
    ///
    /// # Errors
    /// The OS error.
    fn delete(&mut self, zone: &Name) -> std::io::Result<()>;
    /// Writes `copy` (temporary file, synced, renamed).
    ///
    /// # Errors
    /// The OS error.
    fn copy(&mut self, copy: &ZoneCopy) -> std::io::Result<()>;
    /// Writes `zone`'s contact time `at` (the same way).
    ///
    /// # Errors
    /// The OS error.
    fn contact(&mut self, zone: &Name, at: u64) -> std::io::Result<()>;
    /// Ends a batch: the folder synced.
    ///
    /// # Errors
    /// The OS error.
    fn commit(&mut self) -> std::io::Result<()>;
}

/// `state_dir` itself.
#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    /// The sink of `dir`.
    pub fn new(dir: PathBuf) -> Self {
        DirSink { dir }
    }
}

impl Sink for DirSink {
    fn delete(&mut self, zone: &Name) -> std::io::Result<()> {
        state::delete(&self.dir, zone)
    }
    fn copy(&mut self, copy: &ZoneCopy) -> std::io::Result<()> {
        state::write(&self.dir, copy)
    }
    fn contact(&mut self, zone: &Name, at: u64) -> std::io::Result<()> {
        state::write_contact(&self.dir, zone, at)
    }
    fn commit(&mut self) -> std::io::Result<()> {
        match std::fs::File::open(&self.dir) {
            Ok(d) => d.sync_all(),
            // Nothing was written there yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What a batch left undone: entries not reached before `deadline`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Copies not written.
    pub copies: usize,
    /// Contact times not written (their copy written or not).
    pub contacts: usize,
    /// Deletions not done.
    pub deletes: usize,
}

impl Left {
    fn add(&mut self, p: &ZoneWrites) {
        self.copies += usize::from(p.copy.is_some());
        self.contacts += usize::from(p.contact.is_some());
        self.deletes += usize::from(p.delete);
    }
}

/// Writes `batch` to `sink` (per zone: delete, copy, contact), its errors
/// logged, then commits; an entry reached once `past()` says the time is
/// over is not written but counted in what is returned.
pub fn write_batch(
    sink: &mut dyn Sink,
    batch: Vec<(Name, ZoneWrites)>,
    past: impl Fn() -> bool,
) -> Left {
    let mut left = Left::default();
    let mut wrote = false;
    for (zone, p) in batch {
        if past() {
            left.add(&p);
            continue;
        }
        wrote = true;
        if p.delete
            && let Err(err) = sink.delete(&zone)
        {
            warn!(zone = %zone, %err, "cannot delete the zone's files in state_dir");
        }
        if let Some(c) = &p.copy
            && let Err(err) = sink.copy(c)
        {
            warn!(zone = %zone, %err, "cannot keep the zone's copy in state_dir");
        }
        if let Some(at) = p.contact
            && let Err(err) = sink.contact(&zone, at)
        {
            warn!(zone = %zone, %err, "cannot note the contact in state_dir");
        }
        for tx in p.done {
            let _ = tx.send(());
        }
    }
    if wrote && let Err(err) = sink.commit() {
        warn!(%err, "cannot sync state_dir");
    }
    left
}

/// The queue and the writer's state, shared with its thread.
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<(WriteQueue, Option<Instant>)>,
    wake: Condvar,
}

/// The writer of one TS's `state_dir` (cheap to clone): see the module's
/// text.
#[derive(Debug, Clone)]
pub struct StateWriter {
    shared: Arc<Shared>,
}

impl StateWriter {
    /// Starts the writer of `dir` on a thread of its own, and the task
    /// that stops it: once `stop` is cancelled it writes for
    /// [`STOP_GRACE`] at most, and the task ends when its thread has.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start(
        dir: PathBuf,
        stop: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        Self::start_with(Box::new(DirSink::new(dir.clone())), dir, stop, STOP_GRACE)
    }

    /// [`StateWriter::start`] writing to `sink`, with `grace`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start_with(
        mut sink: Box<dyn Sink + Send>,
        dir: PathBuf,
        stop: tokio_util::sync::CancellationToken,
        grace: Duration,
    ) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let shared = Arc::new(Shared::default());
        let (exited, gone) = oneshot::channel::<()>();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("dnslb-state".into())
            .spawn(move || {
                write_until_stopped(&s, sink.as_mut(), &dir);
                let _ = exited.send(());
            })?;
        let writer = StateWriter { shared };
        let w = writer.clone();
        let task = tokio::spawn(async move {
            stop.cancelled().await;
            w.stop(grace);
            let _ = gone.await;
        });
        Ok((writer, task))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (WriteQueue, Option<Instant>)> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn with(&self, f: impl FnOnce(&mut WriteQueue)) {
        f(&mut self.lock().0);
        self.shared.wake.notify_one();
    }

    /// Hands in `copy`, to be written.
    pub fn copy(&self, copy: Arc<ZoneCopy>) {
        self.with(|q| q.copy(copy));
    }

    /// Hands in the contact time `at` of `zone`, to be written.
    pub fn contact(&self, zone: &Name, at: u64) {
        self.with(|q| q.contact(zone, at));
    }

    /// Deletes the files of `zones` (what waited for them dropped);
    /// returns once done, or once the writer has given up at stop.
    pub async fn delete(&self, zones: &[Name]) {
        let mut done = Vec::with_capacity(zones.len());
        self.with(|q| {
            for zone in zones {
                let (tx, rx) = oneshot::channel();
                q.delete(zone, Some(tx));
                done.push(rx);
            }
        });
        for rx in done {
            let _ = rx.await;
        }
    }

    /// Tells the writer to stop within `grace`.
    fn stop(&self, grace: Duration) {
        let mut g = self.lock();
        g.1.get_or_insert(Instant::now() + grace);
        drop(g);
        self.shared.wake.notify_one();
    }
}

/// The writer's thread: batches from the queue until it is stopped and
/// empty, or stopped and past its deadline (the rest abandoned, logged).
fn write_until_stopped(shared: &Shared, sink: &mut dyn Sink, dir: &Path) {
    let lock = || shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
    let mut left = Left::default();
    let mut written = 0usize;
    loop {
        let (batch, deadline) = {
            let mut g = lock();
            while g.0.is_empty() && g.1.is_none() {
                g = shared.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            let deadline = g.1;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                for (_, p) in g.0.take(usize::MAX) {
                    left.add(&p);
                }
                break;
            }
            if g.0.is_empty() {
                break;
            }
            (g.0.take(BATCH), deadline)
        };
        written += batch.len();
        let l = write_batch(sink, batch, || {
            deadline.is_some_and(|d| Instant::now() >= d)
        });
        left.copies += l.copies;
        left.contacts += l.contacts;
        left.deletes += l.deletes;
    }
    if left == Left::default() {
        info!(dir = %dir.display(), zones = written, "state_dir writer stopped: everything handed in was written");
    } else {
        warn!(dir = %dir.display(), abandoned_copies = left.copies, abandoned_contacts = left.contacts, abandoned_deletes = left.deletes, "state_dir writes abandoned at stop: those zones are transferred again at the next start");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{RData, Record};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn copy(zone: &str, serial: u32) -> Arc<ZoneCopy> {
        let soa = SOA::new(name("ns.test."), name("h.test."), serial, 60, 10, 600, 30);
        Arc::new(ZoneCopy::new(
            Record::from_rdata(name(zone), 300, RData::SOA(soa)),
            [],
        ))
    }

    /// What a batch did, in order.
    #[derive(Default)]
    struct Ops {
        ops: Vec<String>,
    }

    impl Sink for Ops {
        fn delete(&mut self, zone: &Name) -> std::io::Result<()> {
            self.ops.push(format!("delete {zone}"));
            Ok(())
        }
        fn copy(&mut self, c: &ZoneCopy) -> std::io::Result<()> {
            self.ops.push(format!("copy {} {}", c.origin(), c.serial()));
            Ok(())
        }
        fn contact(&mut self, zone: &Name, at: u64) -> std::io::Result<()> {
            self.ops.push(format!("contact {zone} {at}"));
            Ok(())
        }
        fn commit(&mut self) -> std::io::Result<()> {
            self.ops.push("commit".into());
            Ok(())
        }
    }

    #[test]
    fn the_latest_copy_of_a_zone_wins_and_a_deletion_drops_what_waited_and_goes_first() {
        let mut q = WriteQueue::default();
        q.copy(copy("a.test.", 1));
        q.contact(&name("a.test."), 10);
        q.copy(copy("b.test.", 1));
        q.copy(copy("A.test.", 2));
        q.contact(&name("a.test."), 11);
        q.copy(copy("c.test.", 5));
        q.delete(&name("c.test."), None);
        assert_eq!(q.len(), 3, "one entry per zone");
        let mut sink = Ops::default();
        let left = write_batch(&mut sink, q.take(BATCH), || false);
        assert_eq!(left, Left::default());
        assert_eq!(
            sink.ops,
            [
                "delete c.test.",
                "copy A.test. 2",
                "contact a.test. 11",
                "copy b.test. 1",
                "commit"
            ]
        );
        assert!(q.is_empty());

        // A copy handed in after a deletion is written after it; one
        // handed in before it never is.
        q.copy(copy("d.test.", 1));
        q.delete(&name("d.test."), None);
        q.copy(copy("d.test.", 2));
        let mut sink = Ops::default();
        write_batch(&mut sink, q.take(BATCH), || false);
        assert_eq!(sink.ops, ["delete d.test.", "copy d.test. 2", "commit"]);
    }

    #[test]
    fn a_batch_is_bounded_and_what_the_deadline_leaves_is_counted() {
        let mut q = WriteQueue::default();
        for i in 0..(BATCH + 3) {
            q.copy(copy(&format!("z{i}.test."), 1));
        }
        q.contact(&name("z0.test."), 7);
        let first = q.take(BATCH);
        assert_eq!((first.len(), q.len()), (BATCH, 3));
        assert_eq!(first[0].0, name("z0.test."), "in the order handed in");
        let mut sink = Ops::default();
        let n = std::cell::Cell::new(0);
        // Past the deadline after two zones.
        let left = write_batch(&mut sink, first, || {
            n.set(n.get() + 1);
            n.get() > 2
        });
        assert_eq!(
            left,
            Left {
                copies: BATCH - 2,
                contacts: 0,
                deletes: 0
            }
        );
        assert_eq!(sink.ops.len(), 2 + 1 + 1, "two copies, one contact, commit");
    }

    /// The thread writes what is handed in, a deletion returns once done,
    /// and a stop ends the task.
    #[tokio::test]
    async fn the_writer_thread_writes_deletes_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let (w, task) = StateWriter::start(dir.path().to_path_buf(), stop.clone()).unwrap();
        w.copy(copy("a.test.", 3));
        w.contact(&name("a.test."), 99);
        // A deletion returns once done: everything before it written too.
        w.copy(copy("gone.test.", 1));
        w.delete(&[name("gone.test."), name("none.test.")]).await;
        let a = state::path_of(dir.path(), &name("a.test."));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(a.exists() && state::contact_path_of(dir.path(), &name("a.test.")).exists()) {
            assert!(Instant::now() < deadline, "a.test. never written");
            std::thread::yield_now();
        }
        assert!(!state::path_of(dir.path(), &name("gone.test.")).exists());
        let (back, age) = state::read(dir.path(), &name("a.test."), 100)
            .unwrap()
            .unwrap();
        assert_eq!((back.serial(), age), (3, 1));
        stop.cancel();
        task.await.unwrap();
    }
}
