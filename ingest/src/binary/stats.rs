//! `per_cpu/cpuN/stats`: counts of events the ring buffer lost.

use crate::rows::LostKind;
use crate::rows::LostReport;

/// Lost-event reports from the stats text of each CPU (index = CPU): non-zero `overrun`
/// (overwritten before being read) and `dropped events` (not written, buffer full).
pub fn lost_from_stats(stats: &[String]) -> Vec<LostReport> {
    let mut out = Vec::new();
    for (cpu, text) in stats.iter().enumerate() {
        let cpu = text
            .lines()
            .find_map(|l| l.strip_prefix("CPU:").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(cpu as u16);
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kind = match key.trim() {
                "overrun" => LostKind::Overrun,
                "dropped events" => LostKind::StatsDropped,
                _ => continue,
            };
            match value.trim().parse::<u64>() {
                Ok(0) | Err(_) => {}
                Ok(n) => out.push(LostReport {
                    ts_ns: None,
                    cpu,
                    count: Some(n),
                    kind,
                    line: None,
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_overrun_and_drops_become_reports() {
        let s = vec![
            "entries: 10\noverrun: 0\ndropped events: 0\n".to_owned(),
            "CPU: 1\nentries: 5\noverrun: 7\ndropped events: 3\n".to_owned(),
        ];
        let r = lost_from_stats(&s);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].cpu, r[0].count, r[0].kind),
            (1, Some(7), LostKind::Overrun)
        );
        assert_eq!((r[1].count, r[1].kind), (Some(3), LostKind::StatsDropped));
    }
}
