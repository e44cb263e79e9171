//! The process metrics every Prometheus exporter has (`process_*`, the names of the
//! client libraries' process collector), read from `/proc/self` through the
//! `procfs` crate, and the build's version and commit.
//!
//! Each value is read on its own: one that cannot be read (no `/proc`, a
//! restricted sandbox) is left out of the exposition rather than made up.

use procfs::process::{LimitValue, Process};

/// The crate version, as in `Cargo.toml`.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from (`git rev-parse --short HEAD` at build
/// time, `DNSLB_COMMIT` if set then, else `unknown`; see `build.rs`).
pub const BUILD_COMMIT: &str = env!("DNSLB_COMMIT");

/// This process's resource use at one moment; `None` where it could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` also when unlimited).
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the current process's figures from `/proc/self`.
    pub fn read() -> Self {
        let Ok(me) = Process::myself() else {
            return Self::default();
        };
        let mut out = Self::default();
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            if ticks > 0.0 {
                out.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
                out.start_time_seconds = procfs::boot_time_secs()
                    .ok()
                    .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
            }
            out.resident_memory_bytes = stat.rss.checked_mul(procfs::page_size());
            out.virtual_memory_bytes = Some(stat.vsize);
        }
        out.open_fds = me.fd_count().ok().and_then(|n| u64::try_from(n).ok());
        out.max_fds = me
            .limits()
            .ok()
            .and_then(|l| max_fds(l.max_open_files.soft_limit));
        out
    }
}

/// `process_max_fds` from the soft limit: none when unlimited (METRICS.md).
fn max_fds(soft_limit: LimitValue) -> Option<u64> {
    match soft_limit {
        LimitValue::Value(v) => Some(v),
        LimitValue::Unlimited => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.expect("a start time");
        // Started before now (boot time is whole seconds), and not long ago.
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        assert!(s.cpu_seconds.expect("cpu time") >= 0.0);
        assert!(s.resident_memory_bytes.expect("rss") > 0);
        assert!(s.virtual_memory_bytes.expect("vsize") >= s.resident_memory_bytes.unwrap());
        // Other tests open and close files meanwhile: only bounds hold.
        let fds = s.open_fds.expect("open fds");
        assert!(fds > 0);
        if let Some(max) = s.max_fds {
            assert!(max >= fds);
        }
    }

    #[test]
    fn an_unlimited_fd_limit_has_no_max_fds() {
        assert_eq!(max_fds(LimitValue::Unlimited), None);
        assert_eq!(max_fds(LimitValue::Value(1024)), Some(1024));
    }

    #[test]
    fn build_info_is_set() {
        assert!(!BUILD_VERSION.is_empty());
        assert!(
            BUILD_COMMIT == "unknown" || !BUILD_COMMIT.trim().is_empty(),
            "{BUILD_COMMIT:?}"
        );
    }
}
