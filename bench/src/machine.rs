//! What else the machine is doing: its description, load average, and the CPU time that
//! processes other than the harness's own used (steal included) while it ran.

use std::time::Duration;

use crate::child::Server;

/// Machine-wide busy CPU time and this process tree's own, to tell how much else ran.
pub struct CpuUse {
    at: std::time::Instant,
    machine_busy: f64,
    steal: f64,
    ours: f64,
}

/// What other processes did between two [`CpuUse`] readings.
pub struct Others {
    /// CPUs' worth of busy time that was not ours (steal included).
    pub others: f64,
    /// CPUs' worth of time the hypervisor gave to other machines.
    pub steal: f64,
    /// Seconds between the readings.
    pub seconds: f64,
}

impl CpuUse {
    /// A reading. `live`: servers still running (their CPU time is not yet in this process's
    /// children's usage, which counts only reaped children).
    pub fn now(live: &[&Server]) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let busy = cpu.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, v)| v).sum::<f64>();
        let steal = cpu.get(7).copied().unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let rusage = |who| {
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `ru` is a valid, writable rusage.
            if unsafe { libc::getrusage(who, &mut ru) } != 0 {
                return 0.0;
            }
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            tv(ru.ru_utime) + tv(ru.ru_stime)
        };
        // Children count once reaped: h2load and servers are all waited for.
        let servers: f64 = live.iter().filter_map(|s| s.cpu_time().ok()).map(|d: Duration| d.as_secs_f64()).sum();
        let ours = rusage(libc::RUSAGE_SELF) + rusage(libc::RUSAGE_CHILDREN) + servers;
        Some(Self { at: std::time::Instant::now(), machine_busy: busy / ticks, steal: steal / ticks, ours })
    }

    /// What other processes did since `before`.
    pub fn others_since(&self, before: &CpuUse) -> Others {
        let seconds = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let others = (self.machine_busy - before.machine_busy) - (self.ours - before.ours);
        Others { others: others.max(0.0) / seconds, steal: (self.steal - before.steal).max(0.0) / seconds, seconds }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model, core count, memory, kernel, rustc and h2load versions.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1048576.0))
        .unwrap_or_else(|| "? GiB".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "Machine: {model}, {cpus} CPU(s) available, {mem} RAM, Linux {}; {}; {}",
        kernel.trim(),
        version("rustc"),
        version("h2load")
    )
}
