//! Which threads a `--pid` or `--cgroup` scope covers when the recording starts.
//!
//! tracefs `set_event_pid` matches thread ids, and `options/event-fork` follows only tasks
//! created after it is set. A service's threads and worker processes that already run (nginx's
//! workers under its master, a thread pool) must therefore be listed one by one.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Error, Result};

/// Every thread of `pids`, of their descendant processes, and of the processes and threads in
/// `cgroups`, as they are now.
pub fn scope_tids(pids: &[i32], cgroups: &[impl AsRef<Path>]) -> Result<Vec<i32>> {
    let mut procs: Vec<i32> = pids.to_vec();
    let mut tids = BTreeSet::new();
    for cg in cgroups {
        let (p, t) = cgroup_members(cg.as_ref())?;
        procs.extend(p);
        tids.extend(t);
    }
    let children = children_by_parent();
    let mut seen = BTreeSet::new();
    while let Some(p) = procs.pop() {
        if !seen.insert(p) {
            continue;
        }
        tids.insert(p);
        tids.extend(threads_of(p));
        if let Some(kids) = children.get(&p) {
            procs.extend(kids);
        }
    }
    Ok(tids.into_iter().collect())
}

/// Thread ids of process `pid` (`/proc/PID/task`); none if it is gone.
fn threads_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process's children, from the parent pid in `/proc/PID/stat`.
fn children_by_parent() -> HashMap<i32, Vec<i32>> {
    let mut out: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            out.entry(ppid).or_default().push(pid);
        }
    }
    out
}

/// Processes and threads of a cgroup directory: v2 `cgroup.procs` and `cgroup.threads`, v1
/// `tasks` (threads).
fn cgroup_members(dir: &Path) -> Result<(Vec<i32>, Vec<i32>)> {
    let read = |f: &str| -> Option<Vec<i32>> {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
    };
    match (read("cgroup.procs"), read("cgroup.threads"), read("tasks")) {
        (Some(p), t, _) => Ok((p, t.unwrap_or_default())),
        (None, _, Some(t)) => Ok((Vec::new(), t)),
        _ => Err(Error::Tracefs(format!(
            "{}: not a cgroup directory (no cgroup.procs or tasks)",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::current_tid as tid;

    #[test]
    fn a_process_scope_covers_its_running_threads_and_child_processes() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(tid());
            let _ = done_rx.recv();
        });
        let worker_tid = rx.recv().expect("worker tid");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let me = std::process::id() as i32;
        let none: [&Path; 0] = [];
        let tids = scope_tids(&[me], &none).expect("scope");
        let _ = child.kill();
        let _ = child.wait();
        let _ = done_tx.send(());
        let _ = worker.join();
        assert!(tids.contains(&me));
        assert!(tids.contains(&worker_tid), "an existing thread");
        assert!(
            tids.contains(&(child.id() as i32)),
            "an existing child process"
        );
    }

    #[test]
    fn a_path_that_is_no_cgroup_is_an_error() {
        assert!(scope_tids(&[], &[Path::new("/nonexistent-cgroup")]).is_err());
    }
}
