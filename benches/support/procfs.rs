//! What the benchmarks read about a process from /proc: CPU time and resident
//! memory, which on a shared machine say more than wall time does.

/// Linux's USER_HZ: /proc reports CPU time in these ticks.
pub const TICKS_PER_SECOND: u64 = 100;

/// utime + stime of a process (`self` or a pid), in ticks; 0 once it is gone.
pub fn cpu_ticks(process: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// A KiB line of /proc/PROCESS/status: `VmHWM` (peak resident memory), `VmRSS`; 0 once it is gone.
pub fn status_kb(process: &str, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
