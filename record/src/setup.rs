//! Setting up a recording's tracefs instance: scope, filters and events; its format files.

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::options::RecordOptions;
use crate::profile::EventSpec;
use kreq_ingest::binary::format::{parse_event_format, FormatRegistry};
use kreq_schemas::dataset;

/// Save the format files of the recorded events next to the data (`formats.json`).
pub(super) fn write_formats(
    out: &std::path::Path,
    inst: &Instance,
    formats: &FormatRegistry,
) -> Result<()> {
    let mut map = serde_json::Map::new();
    for f in formats.iter() {
        let rel = format!("events/{}/{}/format", f.system, f.name);
        map.insert(format!("{}/{}", f.system, f.name), inst.read(&rel)?.into());
    }
    let path = out.join(dataset::FORMATS);
    let text = serde_json::to_string_pretty(&map).map_err(|e| Error::io(&path, e.into()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}

/// Give this thread (the decoder and Parquet writer) the lowest CPU priority, so encoding
/// takes only spare CPU and does not slow the traced workload; the readers keep theirs.
pub(super) fn lower_priority() {
    let tid = current_tid();
    let _ = std::process::Command::new("renice")
        .args(["-n", "19", "-p", &tid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

pub(super) fn current_tid() -> i32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

pub(super) fn online_cpus(inst: &Instance) -> Result<Vec<u16>> {
    let dir = inst.dir().join("per_cpu");
    let mut cpus: Vec<u16> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    Ok(cpus)
}

/// Scope to pids, set filters and enable the events; returns formats.
///
/// The recorder's own threads are left out when decoding, not here: `set_event_notrace_pid`
/// and per-event filters cost every traced event (on the testbed the two together cost the
/// workload about as much as the whole recorder), while the recorder's own events are a few
/// reads per wakeup.
pub(super) fn configure(inst: &Instance, opts: &RecordOptions) -> Result<FormatRegistry> {
    let list = |v: &[i32]| {
        v.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !opts.pids.is_empty() || !opts.cgroups.is_empty() {
        // Every thread the scope covers now; later ones are followed through their forks.
        let mut scope = crate::scope::scope_tids(&opts.pids, &opts.cgroups)?;
        // Follow children of scoped processes too.
        inst.write("options/event-fork", "1")?;
        // An empty cgroup still scopes: pid 0 matches only the idle task.
        if scope.is_empty() {
            scope.push(0);
        }
        inst.write("set_event_pid", &list(&scope))?;
        // A thread forked between the scan and that write is in neither: scan again, and add
        // what is new (tasks the kernel added since, through event-fork, stay listed).
        let again = crate::scope::scope_tids(&opts.pids, &opts.cgroups)?;
        let new: Vec<i32> = again
            .into_iter()
            .filter(|t| scope.binary_search(t).is_err())
            .collect();
        if !new.is_empty() {
            inst.add("set_event_pid", &list(&new))?;
        }
    }
    let mut formats = FormatRegistry::default();
    for ev in &expand(inst, &opts.events)? {
        let rel = format!("events/{}/{}", ev.group, ev.name);
        if !inst.dir().join(&rel).is_dir() {
            return Err(Error::Tracefs(format!(
                "no such event {}:{} in tracefs",
                ev.group, ev.name
            )));
        }
        if let Some(f) = &ev.filter {
            inst.write(&format!("{rel}/filter"), f)?;
        }
        let text = inst.read(&format!("{rel}/format"))?;
        formats.insert(
            parse_event_format(&text, &ev.group).map_err(|e| Error::Tracefs(e.to_string()))?,
        );
        // `ftrace` events (`print`, `bprint`, `bputs`) have no switch: the kernel records them
        // whenever their source fires (a `trace_marker` write, `trace_printk`), and refuses a
        // write to their `enable`. Their format is still needed to decode them.
        if ev.group != "ftrace" {
            inst.write(&format!("{rel}/enable"), "1")?;
        }
    }
    Ok(formats)
}

/// Replace `GROUP:*` by every event of the group.
pub(super) fn expand(inst: &Instance, specs: &[EventSpec]) -> Result<Vec<EventSpec>> {
    let mut out = Vec::new();
    for s in specs {
        if s.name != "*" {
            out.push(s.clone());
            continue;
        }
        let dir = inst.dir().join("events").join(&s.group);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Tracefs(format!("no event group {}: {e}", s.group)))?
            .flatten()
            .filter(|e| e.path().join("format").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|name| EventSpec {
            group: s.group.clone(),
            name,
            filter: s.filter.clone(),
        }));
    }
    Ok(out)
}
