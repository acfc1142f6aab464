//! Task names of threads as a binary trace goes, from the scheduler events that name them.

use hashbrown::HashMap;

use super::decode::{field_bytes, field_text, int};
use super::format::EventFormat;

/// Task names as the trace goes: scheduler events name threads; saved_cmdlines fills gaps.
pub(super) struct Comms<'a> {
    saved: &'a HashMap<i32, String>,
    seen: HashMap<i32, String>,
    /// Per format id, the `(pid field, comm field)` indices that name a thread, resolved on
    /// the first record of that format (empty for events that name none).
    plans: Vec<Option<Vec<(usize, usize)>>>,
}

impl<'a> Comms<'a> {
    pub(super) fn new(saved: &'a HashMap<i32, String>) -> Self {
        Self {
            saved,
            seen: HashMap::new(),
            plans: Vec::new(),
        }
    }

    pub(super) fn get(&self, tid: i32) -> &str {
        if tid == 0 {
            return "<idle>";
        }
        self.seen
            .get(&tid)
            .or_else(|| self.saved.get(&tid))
            .map_or("<...>", |s| s.as_str())
    }

    /// The `(pid field, comm field)` pairs of `f` that name a thread.
    pub(super) fn plan(&mut self, f: &EventFormat) -> &[(usize, usize)] {
        plan_of(&mut self.plans, f)
    }

    pub(super) fn learn(&mut self, f: &EventFormat, rec: &[u8]) {
        for &(pid_at, comm_at) in plan_of(&mut self.plans, f) {
            let Some(pid) = int(rec, &f.fields[pid_at]).and_then(|p| i32::try_from(p).ok()) else {
                continue;
            };
            if pid == 0 {
                continue;
            }
            // Most events name a thread by the name it already has: compare the raw bytes
            // before decoding them.
            let known = self.seen.get(&pid);
            if known.is_some_and(|c| field_bytes(rec, &f.fields[comm_at]) == Some(c.as_bytes())) {
                continue;
            }
            if let Some(comm) = field_text(rec, &f.fields[comm_at]) {
                if known.is_none_or(|c| c != comm) {
                    self.seen.insert(pid, comm.to_owned());
                }
            }
        }
    }
}

/// `f`'s plan in `plans` (by format id), resolved on first use.
fn plan_of<'p>(
    plans: &'p mut Vec<Option<Vec<(usize, usize)>>>,
    f: &EventFormat,
) -> &'p [(usize, usize)] {
    let at = usize::from(f.id);
    if plans.len() <= at {
        plans.resize(at + 1, None);
    }
    plans[at].get_or_insert_with(|| plan(f))
}

/// Which fields of event `f` pair a thread id with its name.
fn plan(f: &EventFormat) -> Vec<(usize, usize)> {
    let pairs: &[(&str, &str)] = match f.name.as_str() {
        "sched_switch" => &[("prev_pid", "prev_comm"), ("next_pid", "next_comm")],
        "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => &[("pid", "comm")],
        "sched_process_fork" => &[("child_pid", "child_comm")],
        "task_rename" => &[("pid", "newcomm")],
        _ => &[],
    };
    let at = |name: &str| f.fields.iter().position(|x| x.name == name);
    pairs
        .iter()
        .filter_map(|(p, c)| Some((at(p)?, at(c)?)))
        .collect()
}
