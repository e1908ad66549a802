//! The relay's (and the generator's own) CPU and memory from /proc: process and per-thread CPU
//! time, resident memory; and finding the relay's pid from the TCP port it listens on.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) from a /proc `stat` line.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name in parentheses (which may contain spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS)
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A process's CPU seconds so far.
pub fn process_cpu(pid: u32) -> Option<f64> {
    cpu_seconds(&read(format!("/proc/{pid}/stat"))?)
}

/// This process's CPU seconds so far.
pub fn own_cpu() -> Option<f64> {
    cpu_seconds(&read("/proc/self/stat")?)
}

/// Resident memory, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = read(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Per thread: (name, CPU seconds).
pub fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|task| {
            let path = task.path();
            let name = read(path.join("comm"))?.trim().to_owned();
            Some((name, cpu_seconds(&read(path.join("stat"))?)?))
        })
        .collect()
}

/// The pid of the process listening on TCP `port` (loopback or any address), if this user can
/// see it.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Some(text) = read(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is "HEXIP:HEXPORT", st "0A" is LISTEN, inode is field 9.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else { continue };
            let listening_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && listening_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.filter_map(Result::ok) {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.to_str() == Some(i))
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Samples a process once a second: CPU share over each interval, RSS, per-thread totals.
pub struct Monitor {
    pid: Option<u32>,
    last: Option<(Instant, f64)>,
    own_last: Option<(Instant, f64)>,
    start_threads: HashMap<String, f64>,
    started: Instant,
    pub rss_start: Option<f64>,
    pub rss_peak: f64,
    cpu_start: Option<f64>,
}

/// One sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub relay_cpu_percent: Option<f64>,
    pub relay_rss_mib: Option<f64>,
    pub generator_cpu_percent: f64,
}

impl Monitor {
    pub fn new(pid: Option<u32>) -> Self {
        let now = Instant::now();
        let mut start_threads = HashMap::new();
        if let Some(pid) = pid {
            for (name, cpu) in thread_cpu(pid) {
                *start_threads.entry(name).or_insert(0.0) += cpu;
            }
        }
        let rss = pid.and_then(rss_mib);
        Self {
            pid,
            last: pid.and_then(process_cpu).map(|c| (now, c)),
            own_last: own_cpu().map(|c| (now, c)),
            start_threads,
            started: now,
            rss_start: rss,
            rss_peak: rss.unwrap_or(0.0),
            cpu_start: pid.and_then(process_cpu),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Take a reading (the shares are over the time since the last one).
    pub fn sample(&mut self) -> Reading {
        let now = Instant::now();
        let share = |last: &mut Option<(Instant, f64)>, cpu: Option<f64>| -> Option<f64> {
            let cpu = cpu?;
            let (t, c) = last.replace((now, cpu))?;
            let wall = now.duration_since(t).as_secs_f64();
            (wall > 0.0).then(|| (cpu - c) / wall * 100.0)
        };
        let relay_cpu_percent = share(&mut self.last, self.pid.and_then(process_cpu));
        let generator_cpu_percent = share(&mut self.own_last, own_cpu()).unwrap_or(0.0);
        let relay_rss_mib = self.pid.and_then(rss_mib);
        if let Some(rss) = relay_rss_mib {
            self.rss_peak = self.rss_peak.max(rss);
        }
        Reading { relay_cpu_percent, relay_rss_mib, generator_cpu_percent }
    }

    /// Mean CPU of the process since the monitor started, and per thread (busiest first).
    pub fn totals(&self) -> Option<(f64, Vec<(String, f64)>)> {
        let pid = self.pid?;
        let wall = self.started.elapsed().as_secs_f64().max(1e-6);
        let total = (process_cpu(pid)? - self.cpu_start?) / wall * 100.0;
        let mut by_name: HashMap<String, f64> = HashMap::new();
        for (name, cpu) in thread_cpu(pid) {
            *by_name.entry(name).or_insert(0.0) += cpu;
        }
        let mut threads: Vec<(String, f64)> = by_name
            .into_iter()
            .map(|(name, cpu)| {
                let before = self.start_threads.get(&name).copied().unwrap_or(0.0);
                (name, (cpu - before).max(0.0) / wall * 100.0)
            })
            .filter(|(_, pct)| *pct >= 0.05)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some((total, threads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_spaces_in_the_name() {
        let line = "1234 (tolk shard (1)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_seconds(line), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(process_cpu(me).is_some());
        assert!(rss_mib(me).is_some_and(|r| r > 0.0));
        assert!(!thread_cpu(me).is_empty());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(me));
    }
}
