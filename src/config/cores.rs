//! How many CPUs this process may run on: the default number of workers.
//!
//! Not the machine's core count: a process pinned with `taskset`, or a
//! service given `CPUAffinity=`, may run on fewer CPUs (its affinity mask,
//! `sched_getaffinity`), and a container or a systemd unit with `CPUQuota=`
//! may use less CPU time than its CPUs offer (the cgroup v2 `cpu.max` quota of
//! its cgroup and of every cgroup above it; on a cgroup v1 host, or systemd's
//! hybrid layout, where the `cpu` controller is still v1, the
//! `cpu.cfs_quota_us` and `cpu.cfs_period_us` of the same cgroups, where
//! `CPUQuota=` and `docker run --cpus` write it there). The count is the
//! smaller of the two, the quota rounded up (a quota of 1.5 CPUs gets 2
//! workers: a worker short of its share would leave CPU time unused). What it
//! was found from is kept beside it ([`Cores`]), for the log line that says
//! why the LS runs the workers it runs. The parsing of `cpu.max`, the v1
//! files, `/proc/self/cgroup` and `/proc/self/mounts`, and where the quota is
//! looked for ([`quota_in`]), are pure functions; [`detect`] reads the files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The CPUs this process may use, and what they were found from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// The number: the affinity mask's CPUs, lowered to the quota rounded up;
    /// at least 1.
    pub count: usize,
    /// The CPUs of the affinity mask (`None`: it could not be read).
    pub affinity: Option<usize>,
    /// The CPUs the system has online (`std::thread::available_parallelism`'s
    /// view when the mask cannot be read).
    pub online: Option<usize>,
    /// The tightest cgroup CPU quota on the way up from this process's
    /// cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` and
    /// `cpu.cfs_period_us`), as (quota, period) in microseconds (`None`: no
    /// limit found).
    pub quota: Option<(u64, u64)>,
}

impl Cores {
    /// Puts the figures together: the mask's CPUs (else `fallback`), lowered to
    /// the quota rounded up, at least 1.
    pub fn from_parts(
        affinity: Option<usize>,
        online: Option<usize>,
        quota: Option<(u64, u64)>,
        fallback: usize,
    ) -> Cores {
        let mut count = affinity.unwrap_or(fallback).max(1);
        if let Some(q) = quota.map(|(quota, period)| quota_cpus(quota, period)) {
            count = count.min(q);
        }
        Cores {
            count: count.max(1),
            affinity,
            online,
            quota,
        }
    }
}

impl Cores {
    /// The LS's start-up line: how many workers, and why that many.
    pub fn workers_line(&self, workers: usize) -> String {
        if workers == self.count {
            format!(
                "{workers} worker{}: the CPUs this process may run on ({self})",
                plural(workers)
            )
        } else {
            format!(
                "{workers} worker{}, as `workers` sets (this process may run on {} CPU{}: {self})",
                plural(workers),
                self.count,
                plural(self.count)
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Cores {
    /// "2 of 4 CPUs in the affinity mask, cgroup CPU quota 150000/100000 (1.50 CPUs, rounded up to 2)"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.affinity, self.online) {
            (Some(a), Some(o)) => write!(f, "{a} of {o} CPUs in the affinity mask")?,
            (Some(a), None) => write!(f, "{a} CPUs in the affinity mask")?,
            (None, _) => write!(f, "affinity mask unreadable, {} CPUs", self.count)?,
        }
        match self.quota {
            Some((quota, period)) => write!(
                f,
                ", cgroup CPU quota {quota}/{period} ({:.2} CPUs, rounded up to {})",
                quota as f64 / period as f64,
                quota_cpus(quota, period)
            ),
            None => write!(f, ", no cgroup CPU quota"),
        }
    }
}

/// The CPUs a quota of `quota` µs every `period` µs allows, rounded up, at
/// least 1.
pub fn quota_cpus(quota: u64, period: u64) -> usize {
    if period == 0 {
        return 1;
    }
    usize::try_from(quota.div_ceil(period))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// A cgroup v2 `cpu.max` file's content: `"150000 100000"` is
/// `Some((150000, 100000))`; `"max 100000"` (no limit), an empty file or
/// anything unreadable is `None`. The period may be left out (100000, the
/// kernel's default).
pub fn parse_cpu_max(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    if quota == "max" {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    let period: u64 = match fields.next() {
        Some(p) => p.parse().ok()?,
        None => 100_000,
    };
    if quota == 0 || period == 0 || fields.next().is_some() {
        return None;
    }
    Some((quota, period))
}

/// This process's cgroup v2 path from `/proc/self/cgroup` (its `0::PATH`
/// line), e.g. `"/system.slice/dnslb.service"`.
pub fn parse_proc_cgroup(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim_end)
        .filter(|p| p.starts_with('/'))
}

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mounts`.
pub fn parse_cgroup2_mount(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then_some(dir)
    })
}

/// The tightest of several `(quota, period)` limits: the fewest CPUs.
pub fn tightest(limits: impl IntoIterator<Item = (u64, u64)>) -> Option<(u64, u64)> {
    limits.into_iter().min_by(|a, b| {
        // a.0 / a.1 < b.0 / b.1 without floating point.
        (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1)))
    })
}

/// The `cpu.max` files from the cgroup `rel` (a path as in `/proc/self/cgroup`)
/// up to the hierarchy's root, under `mount`.
pub fn cpu_max_paths(mount: &Path, rel: &str) -> Vec<PathBuf> {
    let dirs = cgroup_dirs(mount, rel).into_iter();
    dirs.map(|d| d.join("cpu.max")).collect()
}

/// The folders of the cgroup `rel` (a path as in `/proc/self/cgroup`) and
/// of every cgroup above it, root first, under `mount`. (A container whose
/// hierarchy is mounted at its own cgroup has no folder of the deeper ones:
/// their files read as absent, its root's are its own.)
pub fn cgroup_dirs(mount: &Path, rel: &str) -> Vec<PathBuf> {
    let mut dir = mount.to_path_buf();
    let mut out = vec![dir.clone()];
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        out.push(dir.clone());
    }
    out
}

/// Reads the affinity mask and the cgroup quota (once; later calls return the
/// first answer).
pub fn detect() -> Cores {
    static CORES: OnceLock<Cores> = OnceLock::new();
    *CORES.get_or_init(|| {
        let fallback = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let affinity = rustix::thread::sched_getaffinity(None)
            .ok()
            .and_then(|set| usize::try_from(set.count()).ok())
            .filter(|&n| n > 0);
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|t| count_cpu_list(&t));
        Cores::from_parts(affinity, online, read_quota(), fallback)
    })
}

/// The tightest CPU quota on the way up from this process's cgroup.
fn read_quota() -> Option<(u64, u64)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    quota_in(&mounts, &cgroup, |p| std::fs::read_to_string(p).ok())
}

/// The tightest CPU quota of the cgroup `cgroup` (`/proc/self/cgroup`'s
/// text) names, and of every cgroup above it, under the hierarchies `mounts`
/// (`/proc/self/mounts`' text) lists, each file's text given by `read`
/// (`None`: no such file): cgroup v2's `cpu.max`, and cgroup v1's
/// `cpu.cfs_quota_us` over `cpu.cfs_period_us` where the `cpu` controller is
/// a v1 hierarchy (a v1 host, or systemd's hybrid layout: a v2 hierarchy
/// mounted beside it holds no `cpu.max` then). `None`: no quota anywhere.
pub fn quota_in(
    mounts: &str,
    cgroup: &str,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<(u64, u64)> {
    let mut limits = Vec::new();
    if let (Some(mount), Some(rel)) = (parse_cgroup2_mount(mounts), parse_proc_cgroup(cgroup)) {
        let found = cpu_max_paths(Path::new(mount), rel).into_iter();
        limits.extend(found.filter_map(|p| parse_cpu_max(&read(&p)?)));
    }
    if let (Some(mount), Some(rel)) = (
        parse_cgroup1_cpu_mount(mounts),
        parse_proc_cgroup1_cpu(cgroup),
    ) {
        for dir in cgroup_dirs(Path::new(mount), rel) {
            let quota = read(&dir.join("cpu.cfs_quota_us"));
            let period = read(&dir.join("cpu.cfs_period_us"));
            if let (Some(q), Some(p)) = (quota, period) {
                limits.extend(parse_cfs(&q, &p));
            }
        }
    }
    tightest(limits)
}

/// Where the cgroup v1 hierarchy of the `cpu` controller is mounted, from
/// `/proc/self/mounts` (a `cgroup` line whose options name `cpu`, alone or
/// with `cpuacct`).
pub fn parse_cgroup1_cpu_mount(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_, dir, fstype, opts) = (f.next()?, f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup" && opts.split(',').any(|o| o == "cpu")).then_some(dir)
    })
}

/// This process's cgroup v1 path in the `cpu` controller's hierarchy, from
/// `/proc/self/cgroup` (its `N:cpu,cpuacct:PATH` line).
pub fn parse_proc_cgroup1_cpu(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_end();
        (controllers.split(',').any(|c| c == "cpu") && path.starts_with('/')).then_some(path)
    })
}

/// A cgroup v1 quota from the texts of `cpu.cfs_quota_us` and
/// `cpu.cfs_period_us`: `-1` (no limit), 0 or anything unreadable is `None`.
pub fn parse_cfs(quota: &str, period: &str) -> Option<(u64, u64)> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    let quota = u64::try_from(quota).ok().filter(|&q| q > 0)?;
    (period > 0).then_some((quota, period))
}

/// The CPUs of a kernel CPU list such as `"0-3,6"` (5).
pub fn count_cpu_list(text: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_parsed() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some((150_000, 100_000)));
        assert_eq!(parse_cpu_max("200000 100000"), Some((200_000, 100_000)));
        assert_eq!(parse_cpu_max("50000"), Some((50_000, 100_000)));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("max"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("lots 100000"), None);
        assert_eq!(parse_cpu_max("100000 0"), None);
        assert_eq!(parse_cpu_max("0 100000"), None);
        assert_eq!(parse_cpu_max("1 2 3"), None);
    }

    #[test]
    fn quota_is_rounded_up() {
        assert_eq!(quota_cpus(150_000, 100_000), 2);
        assert_eq!(quota_cpus(200_000, 100_000), 2);
        assert_eq!(quota_cpus(200_001, 100_000), 3);
        assert_eq!(quota_cpus(10_000, 100_000), 1);
        assert_eq!(quota_cpus(1, 0), 1);
    }

    #[test]
    fn the_count_is_the_mask_lowered_to_the_quota() {
        // 4 CPUs in the mask, a quota of 1.5: 2 workers.
        let c = Cores::from_parts(Some(4), Some(8), Some((150_000, 100_000)), 8);
        assert_eq!(c.count, 2);
        assert_eq!(
            c.to_string(),
            "4 of 8 CPUs in the affinity mask, cgroup CPU quota 150000/100000 (1.50 CPUs, rounded up to 2)"
        );
        // A quota above the mask: the mask.
        assert_eq!(
            Cores::from_parts(Some(1), Some(2), Some((400_000, 100_000)), 2).count,
            1
        );
        // No quota: the mask.
        let c = Cores::from_parts(Some(3), Some(4), None, 4);
        assert_eq!(c.count, 3);
        assert_eq!(
            c.to_string(),
            "3 of 4 CPUs in the affinity mask, no cgroup CPU quota"
        );
        // No mask: the fallback, still lowered to the quota.
        assert_eq!(
            Cores::from_parts(None, None, Some((100_000, 100_000)), 16).count,
            1
        );
        assert_eq!(Cores::from_parts(None, None, None, 0).count, 1);
    }

    #[test]
    fn the_start_line_says_why() {
        let c = Cores::from_parts(Some(1), Some(2), None, 2);
        assert_eq!(
            c.workers_line(1),
            "1 worker: the CPUs this process may run on (1 of 2 CPUs in the affinity mask, no cgroup CPU quota)"
        );
        assert_eq!(
            c.workers_line(4),
            "4 workers, as `workers` sets (this process may run on 1 CPU: 1 of 2 CPUs in the affinity mask, no cgroup CPU quota)"
        );
    }

    #[test]
    fn the_tightest_limit_on_the_way_up_wins() {
        assert_eq!(
            tightest([(400_000, 100_000), (150_000, 100_000), (100_000, 50_000)]),
            Some((150_000, 100_000))
        );
        assert_eq!(
            tightest([(100_000, 50_000), (300_000, 100_000)]),
            Some((100_000, 50_000))
        );
        assert_eq!(tightest([]), None);
    }

    #[test]
    fn cgroup_files_are_read() {
        let cgroup = "12:cpu,cpuacct:/x\n0::/system.slice/dnslb.service\n";
        assert_eq!(
            parse_proc_cgroup(cgroup),
            Some("/system.slice/dnslb.service")
        );
        assert_eq!(parse_proc_cgroup("4:memory:/a\n1:cpu:/\n"), None);
        let mounts = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        assert_eq!(parse_cgroup2_mount(mounts), Some("/sys/fs/cgroup"));
        assert_eq!(
            parse_cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"),
            None
        );
        assert_eq!(
            cpu_max_paths(Path::new("/sys/fs/cgroup"), "/system.slice/dnslb.service"),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu.max"),
                PathBuf::from("/sys/fs/cgroup/system.slice/cpu.max"),
                PathBuf::from("/sys/fs/cgroup/system.slice/dnslb.service/cpu.max"),
            ]
        );
        assert_eq!(
            cpu_max_paths(Path::new("/c"), "/"),
            vec![PathBuf::from("/c/cpu.max")]
        );
    }

    /// A machine whose files are `these` (path and text); any other is
    /// absent.
    fn machine(
        these: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&Path) -> Option<String> + Copy {
        move |p: &Path| {
            these
                .iter()
                .find(|(path, _)| p.to_str() == Some(*path))
                .map(|(_, text)| (*text).to_owned())
        }
    }

    /// systemd's hybrid layout (the default of several distributions, and
    /// of the machine this was found on): the `cpu` controller is a cgroup
    /// v1 hierarchy, a v2 one without it mounted beside. `CPUQuota=` (or
    /// `docker run --cpus`) is written to the v1 files of the process's
    /// cgroup: it lowers the count as a `cpu.max` does; the v2 hierarchy
    /// holds no `cpu.max`.
    #[test]
    fn a_cgroup_v1_quota_is_found_beside_an_empty_v2_hierarchy() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
            cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let cgroup =
            "4:memory:/x\n1:cpu:/system.slice/dnslb.service\n0::/system.slice/dnslb.service\n";
        let files = machine(&[
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
            (
                "/sys/fs/cgroup/cpu/system.slice/dnslb.service/cpu.cfs_quota_us",
                "50000\n",
            ),
            (
                "/sys/fs/cgroup/cpu/system.slice/dnslb.service/cpu.cfs_period_us",
                "100000\n",
            ),
        ]);
        assert_eq!(quota_in(mounts, cgroup, files), Some((50_000, 100_000)));
        let c = Cores::from_parts(Some(2), Some(2), quota_in(mounts, cgroup, files), 2);
        assert_eq!(c.count, 1, "half a CPU: one worker");
        // The root cgroup, no quota on it: none.
        assert_eq!(quota_in(mounts, "1:cpu:/\n0::/\n", files), None);
        // A v1 container whose hierarchy is mounted at its own cgroup: the
        // path /proc/self/cgroup names has no folder there, the root's files
        // are the container's.
        let docker =
            "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup ro,nosuid,relatime,cpu,cpuacct 0 0\n";
        let own = machine(&[
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000"),
        ]);
        let inside = "3:cpu,cpuacct:/docker/0123abcd\n";
        assert_eq!(quota_in(docker, inside, own), Some((150_000, 100_000)));
        // cgroup v2 alone, as before: the tightest `cpu.max` on the way up.
        let v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        let max = machine(&[
            ("/sys/fs/cgroup/a/cpu.max", "300000 100000"),
            ("/sys/fs/cgroup/a/b/cpu.max", "max 100000"),
        ]);
        assert_eq!(quota_in(v2, "0::/a/b\n", max), Some((300_000, 100_000)));
    }

    #[test]
    fn cgroup_v1_files_are_parsed() {
        assert_eq!(parse_cfs("50000\n", "100000\n"), Some((50_000, 100_000)));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("0", "100000"), None);
        assert_eq!(parse_cfs("50000", "0"), None);
        assert_eq!(parse_cfs("lots", "100000"), None);
        assert_eq!(
            parse_proc_cgroup1_cpu("5:cpuacct,cpu:/a\n0::/b\n"),
            Some("/a")
        );
        assert_eq!(
            parse_proc_cgroup1_cpu("5:cpuacct:/a\n1:cpuset:/c\n0::/b\n"),
            None
        );
        assert_eq!(
            parse_cgroup1_cpu_mount("cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n"),
            None
        );
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0-3,6\n"), Some(5));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }
}
