//! Work spread over the cores the process may use: [`threads`] (the CPUs
//! its affinity and cgroup allow, as `std::thread::available_parallelism`
//! counts them: one under `taskset -c 0`) and [`in_parallel`], which maps a
//! list on that many scoped threads and keeps the list's order, so what
//! comes out (the first error in file order included) is what one thread
//! would give.

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
    if threads <= 1 || items.len() < 2 {
        return items.into_iter().map(f).collect();
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
            .map(|run| s.spawn(move || run.into_iter().map(f).collect::<Vec<R>>()))
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
}
