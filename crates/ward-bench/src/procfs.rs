//! What `/proc` tells about a process (Linux): resident memory, CPU time, open files.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// Clock ticks per second of `/proc/PID/stat`'s times: `USER_HZ`, fixed at 100 in Linux's
/// user-space ABI whatever the kernel's own tick rate.
const USER_HZ: u64 = 100;

/// A process's `/proc` entries.
#[derive(Debug, Clone)]
pub struct ProcStatus {
    dir: PathBuf,
}

impl ProcStatus {
    pub fn new(pid: u32) -> Self {
        Self {
            dir: PathBuf::from(format!("/proc/{pid}")),
        }
    }

    /// This process.
    pub fn current() -> Self {
        Self {
            dir: PathBuf::from("/proc/self"),
        }
    }

    fn read(&self, name: &str) -> anyhow::Result<String> {
        let path = self.dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// `VmRSS` in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        parse_vm_rss(&self.read("status")?).context("no VmRSS in /proc/PID/status")
    }

    /// User plus system CPU time of all the process's threads so far (10 ms resolution).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let ticks = parse_cpu_ticks(&self.read("stat")?).context("unreadable /proc/PID/stat")?;
        Ok(Duration::from_millis(ticks.saturating_mul(1000 / USER_HZ)))
    }

    /// The soft limit on open files (`Max open files`).
    pub fn open_files_limit(&self) -> anyhow::Result<u64> {
        parse_open_files_limit(&self.read("limits")?).context("no Max open files in limits")
    }

    /// Open file descriptors, when readable.
    pub fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(self.dir.join("fd"))
            .ok()
            .map(Iterator::count)
    }

    /// The command name (`comm`), or nothing.
    pub fn name(&self) -> String {
        self.read("comm")
            .map(|c| c.trim().to_owned())
            .unwrap_or_default()
    }
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `utime + stime` (fields 14 and 15) of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let soft = rest.split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let status = "Name:\tward\nVmPeak:\t  100 kB\nVmRSS:\t   52340 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(52_340));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), Some(u64::MAX));
        let stat = "7636 (ward (x) y) S 1 7636 7636 0 -1 4194560 9383 0 0 0 1234 567 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("7636 (ward) S 1"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let me = ProcStatus::current();
        assert!(me.rss_kib().unwrap() > 0);
        assert!(me.open_files_limit().unwrap() > 0);
        assert!(me.open_fds().unwrap() > 0);
        assert!(!me.name().is_empty());
        let spent = me.cpu_time().unwrap();
        assert!(spent < Duration::from_hours(1));
    }
}
