//! Memory and CPU time of the current process, read from `/proc/self` on Linux (`None`
//! elsewhere).

use crate::names;

/// Resident memory of this process in bytes (`/proc/self/statm`), `None` where unknown.
pub fn resident_memory_bytes() -> Option<u64> {
    imp::resident_memory_bytes("self")
}

/// Resident memory of process `pid` in bytes (`/proc/PID/statm`), `None` where unknown (no
/// such process, or not Linux): what a benchmark reads of a child it started.
pub fn resident_memory_bytes_of(pid: u32) -> Option<u64> {
    imp::resident_memory_bytes(&pid.to_string())
}

/// The most resident memory this process has used so far, in bytes (`VmHWM` in
/// `/proc/self/status`), `None` where unknown. For a run's profile report.
pub fn peak_resident_memory_bytes() -> Option<u64> {
    imp::peak_resident_memory_bytes()
}

/// User plus system CPU time this process has used, in seconds (`/proc/self/stat`), `None`
/// where unknown.
pub fn cpu_seconds() -> Option<f64> {
    imp::cpu_seconds()
}

/// Sets [`names::PROCESS_RESIDENT_MEMORY_BYTES`] and [`names::PROCESS_CPU_SECONDS_TOTAL`] from
/// the current figures; leaves either unset where it is unknown.
/// [`Exporter::render`](crate::Exporter::render) calls it before every scrape.
pub fn update_process_metrics() {
    if let Some(bytes) = resident_memory_bytes() {
        // Exact: memory sizes are far below 2^53 bytes.
        metrics::gauge!(names::PROCESS_RESIDENT_MEMORY_BYTES).set(bytes as f64);
    }
    if let Some(seconds) = cpu_seconds() {
        metrics::gauge!(names::PROCESS_CPU_SECONDS_TOTAL).set(seconds);
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;

    /// `process`: `self` or a pid.
    pub(super) fn resident_memory_bytes(process: &str) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{process}/statm")).ok()?;
        parse_statm_resident_pages(&statm)?.checked_mul(page_size()?)
    }

    pub(super) fn peak_resident_memory_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_status_kib(&status, "VmHWM:")?.checked_mul(1024)
    }

    pub(super) fn cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let ticks = parse_stat_cpu_ticks(&stat)?;
        // Tick counts and tick rates are far below 2^53: the conversions are exact.
        Some(ticks as f64 / clock_ticks_per_second()? as f64)
    }

    fn page_size() -> Option<u64> {
        static PAGE_SIZE: OnceLock<Option<u64>> = OnceLock::new();
        *PAGE_SIZE.get_or_init(|| sysconf(libc::_SC_PAGESIZE))
    }

    fn clock_ticks_per_second() -> Option<u64> {
        static CLK_TCK: OnceLock<Option<u64>> = OnceLock::new();
        *CLK_TCK.get_or_init(|| sysconf(libc::_SC_CLK_TCK))
    }

    /// A positive `sysconf` value, `None` when the system does not know it.
    #[allow(unsafe_code)]
    fn sysconf(name: libc::c_int) -> Option<u64> {
        // SAFETY: sysconf(3) takes an integer name and no pointers, reads a system constant and
        // has no preconditions; an unknown name returns -1, handled below.
        let value = unsafe { libc::sysconf(name) };
        u64::try_from(value).ok().filter(|&value| value > 0)
    }

    /// The second field of `/proc/self/statm`: resident pages.
    pub(super) fn parse_statm_resident_pages(statm: &str) -> Option<u64> {
        statm.split_ascii_whitespace().nth(1)?.parse().ok()
    }

    /// `utime + stime` (fields 14 and 15) of `/proc/self/stat`, in clock ticks. The command
    /// name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields
    /// are counted from the last `)`.
    pub(super) fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
        let (_, after_name) = stat.rsplit_once(')')?;
        // after_name starts at field 3 (state): utime is field 14, the 12th from here.
        let mut fields = after_name.split_ascii_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        utime.checked_add(stime)
    }

    /// The kibibytes of a `Key:   1234 kB` line of `/proc/self/status`.
    pub(super) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        let mut words = line[key.len()..].split_ascii_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn resident_memory_bytes(_process: &str) -> Option<u64> {
        None
    }

    pub(super) fn peak_resident_memory_bytes() -> Option<u64> {
        None
    }

    pub(super) fn cpu_seconds() -> Option<f64> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::imp::{parse_stat_cpu_ticks, parse_statm_resident_pages, parse_status_kib};
    use super::*;

    #[test]
    fn a_pid_reads_as_self_does() {
        let own = super::resident_memory_bytes_of(std::process::id()).unwrap_or(0);
        assert!(own > 0, "no resident memory read for our own pid");
        assert!(super::resident_memory_bytes_of(u32::MAX).is_none());
    }

    #[test]
    fn parses_statm() {
        assert_eq!(
            parse_statm_resident_pages("12345 678 90 1 0 2 0\n"),
            Some(678)
        );
        assert_eq!(parse_statm_resident_pages("12345"), None);
    }

    #[test]
    fn parses_stat_with_an_awkward_command_name() {
        let stat = "4242 (orc (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 \
                    0 0 20 0 8 0 123 4567 89";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("4242 (orc) S 1 2"), None);
    }

    #[test]
    fn parses_status() {
        let status = "Name:\torc\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_this_process() {
        let rss = resident_memory_bytes().unwrap_or(0);
        assert!(rss > 1024 * 1024, "resident memory {rss}");
        let peak = peak_resident_memory_bytes().unwrap_or(0);
        assert!(peak >= rss / 2, "peak {peak}, resident {rss}");
        let cpu = cpu_seconds().unwrap_or(-1.0);
        assert!(cpu >= 0.0, "cpu {cpu}");
    }
}
