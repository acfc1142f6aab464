//! Which events a recording enables: the default correlation profile and user additions.

use crate::error::{Error, Result};

/// One tracefs event to enable, with an optional tracefs filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Event system (`sched`, `syscalls`, `tcp`, ...).
    pub group: String,
    /// Event name.
    pub name: String,
    /// tracefs filter (`events/GROUP/NAME/filter` syntax), if any.
    pub filter: Option<String>,
}

/// Socket syscalls traced on enter and exit by the default profile.
pub const PROFILE_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "accept",
    "accept4",
    "connect",
    "close",
    "epoll_wait",
];

/// Non-syscall events of the default profile: scheduler (switches, wakeups, fork, exit) and
/// the socket and TCP events that tie a syscall to a socket and a 4-tuple. Per-packet device
/// events (`net:net_dev_xmit`, `net:netif_receive_skb`) are left out: correlation does not use
/// them and on the testbed they were 15% of all events (add them with `-e` when wanted).
pub const PROFILE_EVENTS: &[&str] = &[
    "sched:sched_switch",
    "sched:sched_wakeup",
    "sched:sched_wakeup_new",
    "sched:sched_process_fork",
    "sched:sched_process_exit",
    "sock:sock_send_length",
    "sock:sock_recv_length",
    "sock:inet_sock_set_state",
    "tcp:tcp_rcv_space_adjust",
    "tcp:tcp_probe",
    "tcp:tcp_destroy_sock",
];

/// The default profile: what request correlation needs.
pub fn default_profile() -> Vec<EventSpec> {
    let mut v: Vec<EventSpec> = PROFILE_EVENTS
        .iter()
        .filter_map(|s| parse_event(s).ok())
        .collect();
    for sc in PROFILE_SYSCALLS {
        for dir in ["enter", "exit"] {
            v.push(EventSpec {
                group: "syscalls".into(),
                name: format!("sys_{dir}_{sc}"),
                filter: None,
            });
        }
    }
    v
}

/// `GROUP:NAME` (as `sched:sched_migrate_task`). `GROUP:*` is expanded by the caller.
pub fn parse_event(s: &str) -> Result<EventSpec> {
    match s.split_once(':') {
        Some((g, n)) if !g.is_empty() && !n.is_empty() && !n.contains('/') && !g.contains('/') => {
            Ok(EventSpec {
                group: g.to_owned(),
                name: n.to_owned(),
                filter: None,
            })
        }
        _ => Err(Error::Tracefs(format!("event {s:?} is not GROUP:NAME"))),
    }
}

/// A filter that drops scheduler events naming one of `own` threads, so the recorder does
/// not record its own wakeups (each of which would wake it again).
pub fn exclude_filter(event: &str, own: &[i32]) -> Option<String> {
    let fields: &[&str] = match event {
        "sched_switch" => &["prev_pid", "next_pid"],
        "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => &["pid"],
        _ => return None,
    };
    let terms: Vec<String> = fields
        .iter()
        .flat_map(|f| own.iter().map(move |p| format!("{f} != {p}")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" && "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_has_scheduler_socket_and_syscall_events() {
        let p = default_profile();
        let has = |g: &str, n: &str| p.iter().any(|e| e.group == g && e.name == n);
        assert!(has("sched", "sched_switch") && has("tcp", "tcp_probe"));
        assert!(has("syscalls", "sys_enter_recvfrom") && has("syscalls", "sys_exit_sendto"));
        assert_eq!(p.len(), PROFILE_EVENTS.len() + 2 * PROFILE_SYSCALLS.len());
    }

    #[test]
    fn own_threads_are_filtered_from_scheduler_events() {
        assert_eq!(
            exclude_filter("sched_switch", &[7, 9]).as_deref(),
            Some("prev_pid != 7 && prev_pid != 9 && next_pid != 7 && next_pid != 9")
        );
        assert_eq!(
            exclude_filter("sched_wakeup", &[7]).as_deref(),
            Some("pid != 7")
        );
        assert_eq!(exclude_filter("tcp_probe", &[7]), None);
        assert!(parse_event("sched").is_err() && parse_event("a:b").is_ok());
    }
}
