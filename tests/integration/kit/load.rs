//! The suite's one load policy: a test that loads the machine never runs
//! beside a test that asserts a wall-clock upper bound.
//!
//! The integration tests share one binary and (on the 2-core machines this
//! project runs on) two test threads. A flood, a 400,000-query run or a
//! 200,000-name zone keeps both cores busy for seconds; a test beside it
//! that asserts "answered within 500 ms" then measures the flood, not the
//! code. So:
//!
//! * [`heavy`] (exclusive): held by a test that loads the machine on
//!   purpose: floods and storms, hundreds of thousands of queries, a
//!   thousand clients, zones or tables of 100,000 names and more. Heavy
//!   tests run one at a time, and never beside a timed one.
//! * [`timed`] (shared, [`timed_blocking`] in a test without a runtime):
//!   held by a test that asserts a wall-clock upper bound (`took < ...`,
//!   a window of a few seconds). Timed tests run beside each other and
//!   beside every test that holds neither.
//!
//! A test that holds neither may share the machine with a heavy one, so it
//! asserts no upper bound on time (deadlines of [`crate::kit::poll_until`]
//! are waits, not asserts, and are generous). The lock is a tokio `RwLock`
//! (fair, and not poisoned by a test that fails holding it); hold the guard
//! for the whole test: `let _load = kit::heavy().await;`.
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOAD: RwLock<()> = RwLock::const_new(());

/// Exclusive: a test that loads the machine (see the module header).
pub async fn heavy() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

/// Shared: a test that asserts a wall-clock upper bound.
pub async fn timed() -> RwLockReadGuard<'static, ()> {
    LOAD.read().await
}

/// [`timed`] for a test that runs outside a tokio runtime.
#[allow(dead_code)] // every timed test is async today
pub fn timed_blocking() -> RwLockReadGuard<'static, ()> {
    LOAD.blocking_read()
}

/// How many connections a flood opens, this process's soft open-file limit
/// raised to its hard one: 10,000 when it may open them with room to spare
/// for the other tests running now; else three quarters of its limit (the
/// LS, inheriting the same limit, then caps itself below half of it).
pub fn flood_size() -> usize {
    let limit = dnslb::server::fdlimit::raise_nofile().unwrap_or(u64::MAX);
    if limit >= 13_000 {
        10_000
    } else {
        usize::try_from(limit / 4 * 3).unwrap_or(0)
    }
}
