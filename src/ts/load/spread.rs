//! Work spread over the cores the process may use: [`threads`] (the CPUs
//! its affinity and cgroup allow, as `std::thread::available_parallelism`
//! counts them: one under `taskset -c 0`) and [`in_parallel`], which maps a
//! list on that many scoped threads and keeps the list's order, so what
//! comes out (the first error in file order included) is what one thread
//! would give; [`in_parallel_later`] also lets an item wait (a file the disk
//! must read) until its thread has done the rest of its run.

/// The threads a load spreads its work over: the CPUs the process may use.
pub(super) fn threads() -> usize {
    #[cfg(test)]
    if let Some(n) = FORCED.with(std::cell::Cell::get) {
        return n;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
thread_local! {
    /// [`threads`] on this thread, set by a test (the machine running the
    /// tests may have one core, or be pinned to one).
    static FORCED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`threads`] returning `n` on this thread.
#[cfg(test)]
pub(super) fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    FORCED.with(|c| c.set(Some(n)));
    let r = f();
    FORCED.with(|c| c.set(None));
    r
}

/// `f` of each of `items`, in their order, computed on up to `threads`
/// threads (the items cut in as many runs, one a thread); on this thread
/// alone when `threads` is 1 or there is one item. A panic in `f` is
/// raised again here.
pub(super) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    in_parallel_later(
        items,
        threads,
        |t| Ok::<R, std::convert::Infallible>(f(t)),
        |never| match never {},
    )
}

/// [`in_parallel`] of `first`, where an item `first` cannot finish yet
/// (`Err`, what it started: a read the disk must serve) is finished by
/// `later` once its thread has done the others of its run, in the items'
/// order all the same.
pub(super) fn in_parallel_later<T: Send, R: Send, L>(
    items: Vec<T>,
    threads: usize,
    first: impl Fn(T) -> Result<R, L> + Sync,
    later: impl Fn(L) -> R + Sync,
) -> Vec<R> {
    let f = |run: Vec<T>| -> Vec<R> {
        let started: Vec<Result<R, L>> = run.into_iter().map(&first).collect();
        started
            .into_iter()
            .map(|r| r.unwrap_or_else(&later))
            .collect()
    };
    if threads <= 1 || items.len() < 2 {
        return f(items);
    }
    let total = items.len();
    let per = total.div_ceil(threads);
    let mut items = items.into_iter();
    let mut runs = Vec::with_capacity(threads);
    loop {
        let run: Vec<T> = items.by_ref().take(per).collect();
        if run.is_empty() {
            break;
        }
        runs.push(run);
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| s.spawn(move || f(run)))
            .collect();
        let mut out = Vec::with_capacity(total);
        for h in handles {
            match h.join() {
                Ok(done) => out.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_results_keep_the_order_of_the_items_whatever_the_threads() {
        let items: Vec<usize> = (0..1001).collect();
        let want: Vec<usize> = items.iter().map(|i| i * 3).collect();
        for threads in [1, 2, 3, 7, 2000] {
            assert_eq!(in_parallel(items.clone(), threads, |i| i * 3), want);
        }
        assert!(in_parallel(Vec::<u8>::new(), 4, |i| i).is_empty());
        assert!(threads() >= 1);
    }

    #[test]
    fn what_waits_is_finished_after_its_run_and_kept_in_order() {
        let items: Vec<usize> = (0..1001).collect();
        let want: Vec<usize> = items.iter().map(|i| i * 3).collect();
        for threads in [1, 2, 3, 7, 2000] {
            let finished = std::sync::Mutex::new(Vec::new());
            let firsts_after_a_later = std::sync::atomic::AtomicUsize::new(0);
            let got = in_parallel_later(
                items.clone(),
                threads,
                |i| {
                    if !finished.lock().unwrap().is_empty() {
                        firsts_after_a_later.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if i % 5 == 0 { Err(i) } else { Ok(i * 3) }
                },
                |i| {
                    finished.lock().unwrap().push(i);
                    i * 3
                },
            );
            assert_eq!(got, want, "{threads} threads");
            if threads == 1 {
                // One run: every item was started before the first waiting one was finished.
                assert_eq!(firsts_after_a_later.into_inner(), 0);
            }
            let mut finished = finished.into_inner().unwrap();
            finished.sort_unstable();
            let waited: Vec<usize> = items.iter().copied().filter(|i| i % 5 == 0).collect();
            assert_eq!(finished, waited, "each waiting item finished once");
        }
    }
}
