//! The view of one event that correlation needs, decoded from the `events` columns.

/// An interned address string (see [`crate::Interner`]).
pub type AddrId = u32;
/// An interned task name.
pub type CommId = u32;

/// A socket endpoint: interned address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Interned address text.
    pub addr: AddrId,
    /// Port.
    pub port: u16,
}

/// A connection seen from one side: the local and the remote endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// This side.
    pub local: Endpoint,
    /// The other side.
    pub remote: Endpoint,
}

impl Tuple {
    /// The same connection seen from the other side.
    pub fn mirrored(self) -> Tuple {
        Tuple {
            local: self.remote,
            remote: self.local,
        }
    }
}

#[cfg(test)]
impl Tuple {
    /// A connection on address 0 between two ports, for tests.
    pub(crate) fn ports(local: u16, remote: u16) -> Tuple {
        let e = |port| Endpoint { addr: 0, port };
        Tuple {
            local: e(local),
            remote: e(remote),
        }
    }
}

/// Syscalls correlation understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    /// read, readv, recvfrom, recvmsg, recv.
    Recv,
    /// write, writev, sendto, sendmsg, send.
    Send,
    /// accept, accept4.
    Accept,
    /// connect.
    Connect,
    /// close.
    Close,
    /// epoll_wait, epoll_pwait, poll, ppoll, select, pselect6: an event loop waiting.
    Wait,
    /// futex: a lock or condition wait.
    Futex,
    /// Any other syscall.
    Other,
}

impl Sys {
    /// Classifies a syscall by its tracefs name without the `sys_enter_`/`sys_exit_` prefix.
    pub fn classify(name: &str) -> Sys {
        match name {
            "read" | "readv" | "recvfrom" | "recvmsg" | "recv" | "recvmmsg" => Sys::Recv,
            "write" | "writev" | "sendto" | "sendmsg" | "send" | "sendmmsg" => Sys::Send,
            "accept" | "accept4" => Sys::Accept,
            "connect" => Sys::Connect,
            "close" => Sys::Close,
            "epoll_wait" | "epoll_pwait" | "epoll_pwait2" | "poll" | "ppoll" | "select"
            | "pselect6" => Sys::Wait,
            "futex" | "futex_wait" => Sys::Futex,
            _ => Sys::Other,
        }
    }
}

/// What an event means to correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sys_enter_*`.
    Enter(Sys),
    /// `sys_exit_*`.
    Exit(Sys),
    /// `sock_send_length`: socket and bytes of a send.
    SockSend,
    /// `sock_recv_length`: socket and bytes of a receive.
    SockRecv,
    /// `tcp_rcv_space_adjust`: the 4-tuple of the socket being read.
    RcvSpace,
    /// `tcp_probe`: a segment arrived at a socket (its 4-tuple, data length).
    Probe,
    /// `tcp_destroy_sock`: a socket is gone.
    Destroy,
    /// `inet_sock_set_state`: a socket changed TCP state (its address and 4-tuple).
    SetState,
    /// `sched_switch`.
    Switch,
    /// `sched_waking`, `sched_wakeup`, `sched_wakeup_new`.
    Wakeup,
    /// `sched_process_fork`.
    Fork,
    /// `sched_process_exit`.
    ExitTask,
    /// Anything else.
    Other,
}

impl Kind {
    /// Classifies an event by its name.
    pub fn classify(name: &str) -> Kind {
        if let Some(s) = name.strip_prefix("sys_enter_") {
            return Kind::Enter(Sys::classify(s));
        }
        if let Some(s) = name.strip_prefix("sys_exit_") {
            return Kind::Exit(Sys::classify(s));
        }
        match name {
            "sock_send_length" => Kind::SockSend,
            "sock_recv_length" => Kind::SockRecv,
            "tcp_rcv_space_adjust" => Kind::RcvSpace,
            "tcp_probe" => Kind::Probe,
            "tcp_destroy_sock" => Kind::Destroy,
            "inet_sock_set_state" => Kind::SetState,
            "sched_switch" => Kind::Switch,
            "sched_waking" | "sched_wakeup" | "sched_wakeup_new" => Kind::Wakeup,
            "sched_process_fork" => Kind::Fork,
            "sched_process_exit" => Kind::ExitTask,
            _ => Kind::Other,
        }
    }
}

/// Scheduler state of a thread switched out, reduced to what the time split needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrevState {
    /// Still runnable (preempted): `R`, `R+`.
    Runnable,
    /// Interruptible sleep: `S`.
    Sleeping,
    /// Uninterruptible sleep: `D`.
    DiskSleep,
    /// Anything else (`T`, `X`, `Z`, `I`, ...).
    Other,
}

impl PrevState {
    /// Reads the state text of `sched_switch`.
    pub fn parse(s: &str) -> PrevState {
        match s.as_bytes().first() {
            Some(b'R') => PrevState::Runnable,
            Some(b'S') => PrevState::Sleeping,
            Some(b'D') => PrevState::DiskSleep,
            _ => PrevState::Other,
        }
    }
}

/// One event as correlation sees it. Optional fields are `None` when the column was null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Position of the event in the dataset (part-major, row order), used for labels.
    pub row: u64,
    /// Time in ns.
    pub ts: i64,
    /// CPU it was recorded on.
    pub cpu: u16,
    /// Thread id.
    pub tid: i32,
    /// Thread group id.
    pub tgid: Option<i32>,
    /// Interned task name.
    pub comm: CommId,
    /// Recorded in interrupt context (softirq, hardirq, nmi): not the thread's own work.
    pub irq: bool,
    /// What the event is.
    pub kind: Kind,
    /// Syscall fd argument.
    pub fd: Option<i64>,
    /// Syscall return value.
    pub ret: Option<i64>,
    /// `sched_switch` previous and next thread, previous state.
    pub prev_tid: Option<i32>,
    /// See `prev_tid`.
    pub next_tid: Option<i32>,
    /// See `prev_tid`.
    pub prev_state: Option<PrevState>,
    /// Woken thread.
    pub wake_tid: Option<i32>,
    /// Forked child thread.
    pub child_tid: Option<i32>,
    /// Socket address (hashed in text, raw in binary).
    pub sk: Option<u64>,
    /// Byte length (`sock_*_length`, `tcp_probe` data).
    pub length: Option<i64>,
    /// Source endpoint (the socket's local side for tcp events).
    pub src: Option<Endpoint>,
    /// Destination endpoint (the socket's remote side for tcp events).
    pub dst: Option<Endpoint>,
    /// `sys_enter_futex` of a wait with no timeout for another thread's signal
    /// (`FUTEX_WAIT_BITSET` with `FUTEX_CLOCK_REALTIME` and no `utime`: glibc's `sem_wait` and
    /// `pthread_cond_wait`, which CPython's `Lock.acquire()` and so a pool worker's
    /// `queue.get()` block in; CPython's GIL waits are timed, mutexes use `FUTEX_WAIT`).
    pub signal_wait: bool,
    /// `sys_exit_*` with the need-resched flag set: the thread is preempted on its way back
    /// to user space, before any of its code runs.
    pub need_resched: bool,
}

impl Event {
    /// The socket a tcp/sock event describes, seen from its side: `src` is local.
    pub fn tuple(&self) -> Option<Tuple> {
        Some(Tuple {
            local: self.src?,
            remote: self.dst?,
        })
    }

    /// An event with only the always-present columns set, for tests and builders.
    pub fn new(row: u64, ts: i64, tid: i32, kind: Kind) -> Event {
        Event {
            row,
            ts,
            cpu: 0,
            tid,
            tgid: Some(tid),
            comm: 0,
            irq: false,
            kind,
            fd: None,
            ret: None,
            prev_tid: None,
            next_tid: None,
            prev_state: None,
            wake_tid: None,
            child_tid: None,
            sk: None,
            length: None,
            src: None,
            dst: None,
            signal_wait: false,
            need_resched: false,
        }
    }
}
