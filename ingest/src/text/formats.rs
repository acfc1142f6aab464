//! Print formats of the events kreq knows, as literal separators between fields.
//!
//! Taken from the `print fmt` lines of `events/*/format` on kernel 6.18. A template is a list of
//! `(literal, field)`: the first literal starts the payload and each field's value runs to the
//! next literal. When a payload does not fit (another kernel version), the generic splitter
//! takes over, so nothing is dropped.

/// Literal separators and field names of one print format.
#[derive(Debug, PartialEq, Eq)]
pub struct Template(pub &'static [(&'static str, &'static str)]);

static SCHED_SWITCH: Template = Template(&[
    ("prev_comm=", "prev_comm"),
    (" prev_pid=", "prev_pid"),
    (" prev_prio=", "prev_prio"),
    (" prev_state=", "prev_state"),
    (" ==> next_comm=", "next_comm"),
    (" next_pid=", "next_pid"),
    (" next_prio=", "next_prio"),
]);
static WAKEUP: Template = Template(&[
    ("comm=", "comm"),
    (" pid=", "pid"),
    (" prio=", "prio"),
    (" target_cpu=", "target_cpu"),
]);
// Labels renamed to the format's field names, as binary records name them.
static FORK: Template = Template(&[
    ("comm=", "parent_comm"),
    (" pid=", "parent_pid"),
    (" child_comm=", "child_comm"),
    (" child_pid=", "child_pid"),
]);
static EXIT: Template = Template(&[
    ("comm=", "comm"),
    (" pid=", "pid"),
    (" prio=", "prio"),
    (" group_dead=", "group_dead"),
]);
static PROCESS: Template = Template(&[("comm=", "comm"), (" pid=", "pid"), (" prio=", "prio")]);
static MIGRATE: Template = Template(&[
    ("comm=", "comm"),
    (" pid=", "pid"),
    (" prio=", "prio"),
    (" orig_cpu=", "orig_cpu"),
    (" dest_cpu=", "dest_cpu"),
]);
static EXEC: Template = Template(&[
    ("filename=", "filename"),
    (" pid=", "pid"),
    (" old_pid=", "old_pid"),
]);
static RENAME: Template = Template(&[
    ("pid=", "pid"),
    (" oldcomm=", "oldcomm"),
    (" newcomm=", "newcomm"),
    (" oom_score_adj=", "oom_score_adj"),
]);
static NEWTASK: Template = Template(&[
    ("pid=", "pid"),
    (" comm=", "comm"),
    (" clone_flags=", "clone_flags"),
    (" oom_score_adj=", "oom_score_adj"),
]);
static SOCK_LENGTH: Template = Template(&[
    ("sk address = ", "sk"),
    (", family = ", "family"),
    (" protocol = ", "protocol"),
    (", length = ", "length"),
    (", error = ", "error"),
    (", flags = ", "flags"),
]);
static MARKER: Template = Template(&[("", "buf")]);

/// The template for an event name, if kreq knows its format.
pub fn template(name: &str) -> Option<&'static Template> {
    Some(match name {
        "sched_switch" => &SCHED_SWITCH,
        "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => &WAKEUP,
        "sched_process_fork" => &FORK,
        "sched_process_exit" => &EXIT,
        "sched_process_free" | "sched_process_wait" | "sched_wait_task" => &PROCESS,
        "sched_migrate_task" => &MIGRATE,
        "sched_process_exec" => &EXEC,
        "task_rename" => &RENAME,
        "task_newtask" => &NEWTASK,
        "sock_send_length" | "sock_recv_length" => &SOCK_LENGTH,
        "tracing_mark_write" | "print" => &MARKER,
        _ => return None,
    })
}

/// True when a scheduler payload is in trace-cmd's plugin form rather than the kernel's.
pub fn is_plugin_form(name: &str, payload: &str) -> bool {
    match name {
        "sched_switch" => !payload.starts_with("prev_comm=") && payload.contains(" ==> "),
        "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => {
            !payload.starts_with("comm=") && payload.contains(" CPU:")
        }
        _ => false,
    }
}

/// Split `p` by template `t`; false (with partial output) when it does not fit.
pub fn split_template<'a>(p: &'a str, t: &Template, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    let parts = t.0;
    let Some(rest) = p.strip_prefix(parts[0].0) else {
        return false;
    };
    let mut vstart = p.len() - rest.len();
    for w in parts.windows(2) {
        let (key, (lit, _)) = (w[0].1, w[1]);
        let Some(i) = find(&p.as_bytes()[vstart..], lit.as_bytes()) else {
            return false;
        };
        if !push_field(key, &p[vstart..vstart + i], out) {
            return false;
        }
        vstart += i + lit.len();
    }
    push_field(parts[parts.len() - 1].1, &p[vstart..], out)
}

/// Fields whose values are free text (task names, paths, messages): they may hold spaces and
/// `=`, so only the template's literals end them.
fn free_text(field: &str) -> bool {
    field.ends_with("comm") || matches!(field, "filename" | "buf")
}

/// Push `key`'s value. Another kernel's format may print fields this template lacks between
/// two it has: `sched_wakeup: comm=sh pid=1 prio=120 success=1 target_cpu=002` (kernels before
/// 4.x; captures `tcinc_trace-android-sched.txt`, `lisa_trace_txt_trace.txt`). A value of a
/// field that is not free text never holds a space, so ` name=` inside one starts such a
/// field; each becomes a field of its own. False when the rest is not `name=value` tokens.
fn push_field<'a>(key: &'a str, v: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    let extra = if free_text(key) { None } else { v.find(' ') };
    let Some(cut) = extra else {
        out.push((key, v));
        return true;
    };
    out.push((key, &v[..cut]));
    for token in v[cut..].split(' ').filter(|t| !t.is_empty()) {
        match token.split_once('=') {
            Some((k, val))
                if !k.is_empty() && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') =>
            {
                out.push((k, val));
            }
            _ => return false,
        }
    }
    true
}

/// `comm:pid [prio]`, comm may hold `:` and spaces.
fn task(s: &str) -> Option<(&str, &str, &str)> {
    let (who, prio) = s.trim().rsplit_once(" [")?;
    let prio = prio.strip_suffix(']')?;
    let (comm, pid) = who.rsplit_once(':')?;
    Some((comm, pid, prio))
}

/// trace-cmd's `prev:pid [prio] S ==> next:pid [prio]`.
pub fn split_switch_plugin<'a>(p: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    let Some((left, right)) = p.split_once(" ==> ") else {
        return false;
    };
    let Some(close) = left.rfind("] ") else {
        return false;
    };
    let state = left[close + 2..].trim();
    let (Some((pc, pp, ppr)), Some((nc, np, npr))) = (task(&left[..=close]), task(right)) else {
        return false;
    };
    out.extend([
        ("prev_comm", pc),
        ("prev_pid", pp),
        ("prev_prio", ppr),
        ("prev_state", state),
        ("next_comm", nc),
        ("next_pid", np),
        ("next_prio", npr),
    ]);
    true
}

/// trace-cmd's `comm:pid [prio] CPU:001`.
pub fn split_wakeup_plugin<'a>(p: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    let Some((left, cpu)) = p.rsplit_once(" CPU:") else {
        return false;
    };
    let Some((comm, pid, prio)) = task(left) else {
        return false;
    };
    out.extend([
        ("comm", comm),
        ("pid", pid),
        ("prio", prio),
        ("target_cpu", cpu.trim()),
    ]);
    true
}

/// Position of a short `needle` in `hay` (memchr on its first byte, then a compare): cheaper
/// than building a substring searcher for each of the few-byte separators used here.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
