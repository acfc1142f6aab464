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

/// Syscalls traced on enter and exit by the default profile: the socket calls, and the waits
/// that tell when a thread is idle: `epoll_wait` (nginx, redis, CPython's selectors),
/// `epoll_pwait` (libuv/Node.js, Go's netpoller, Java NIO) and `futex` (a worker waiting on a
/// queue or lock, and the wake that hands it work).
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
    "epoll_pwait",
    "futex",
];

/// Non-syscall events of the default profile: scheduler (switches, wakeups, fork, exit),
/// `task_rename` (an `exec` or `prctl(PR_SET_NAME)` renames the task; without it the new name
/// shows only from the task's next switch on), and
/// `sched_waking`, which fires in the waker's context (a `sched_wakeup` of a thread woken onto
/// an idle CPU fires there, in the idle task, and loses the waker), and
/// the socket and TCP events that tie a syscall to a socket and a 4-tuple. Per-packet device
/// events (`net:net_dev_xmit`, `net:netif_receive_skb`) are left out: correlation does not use
/// them and on the testbed they were 15% of all events (add them with `-e` when wanted).
pub const PROFILE_EVENTS: &[&str] = &[
    "sched:sched_switch",
    "sched:sched_waking",
    "sched:sched_wakeup",
    "sched:sched_wakeup_new",
    "sched:sched_process_fork",
    "sched:sched_process_exit",
    "task:task_rename",
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
    fn events_parse_as_group_and_name() {
        assert!(parse_event("sched").is_err() && parse_event("a:b").is_ok());
    }
}
