//! Promotion of the fields correlation needs into typed columns.
//!
//! Mirrors [`kreq_schemas::events::PROMOTED_FIELDS`]. A value that does not parse is not
//! promoted and stays in the `fields` map.

/// What an event name is, for deciding which fields to promote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    SysEnter,
    SysExit,
    SchedSwitch,
    Wakeup,
    Fork,
    SockLength,
    TcpProbe,
    Net,
    Other,
}

impl EventKind {
    pub(crate) fn of(name: &str) -> Self {
        match name {
            n if n.starts_with("sys_enter_") => EventKind::SysEnter,
            n if n.starts_with("sys_exit_") => EventKind::SysExit,
            "sched_switch" => EventKind::SchedSwitch,
            "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => EventKind::Wakeup,
            "sched_process_fork" => EventKind::Fork,
            "sock_send_length" | "sock_recv_length" => EventKind::SockLength,
            "tcp_probe" => EventKind::TcpProbe,
            n if n.starts_with("net_") || n.starts_with("netif_") => EventKind::Net,
            _ => EventKind::Other,
        }
    }
}

/// Typed values of one event; `None` where the event has no such field.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Typed {
    pub fd: Option<i64>,
    pub count: Option<i64>,
    pub ret: Option<i64>,
    pub prev_tid: Option<i32>,
    pub prev_state: Option<InlineStr>,
    pub next_tid: Option<i32>,
    pub wake_tid: Option<i32>,
    pub wake_cpu: Option<i32>,
    pub parent_tid: Option<i32>,
    pub child_tid: Option<i32>,
    pub sk_addr: Option<u64>,
    pub skb_addr: Option<u64>,
    pub sock_cookie: Option<u64>,
    pub length: Option<i64>,
    pub saddr: Option<InlineStr>,
    pub sport: Option<u16>,
    pub daddr: Option<InlineStr>,
    pub dport: Option<u16>,
    pub op: Option<i64>,
    pub utime: Option<u64>,
}

/// Where a field goes: a typed column, or the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Fd,
    Count,
    Ret,
    PrevTid,
    PrevState,
    NextTid,
    WakeTid,
    WakeCpu,
    ParentTid,
    ChildTid,
    SkAddr,
    SkbAddr,
    SockCookie,
    Length,
    Saddr,
    Daddr,
    Sport,
    Dport,
    Src,
    Dest,
    Op,
    Utime,
    Map,
}

/// The slot of field `key` of an event of `kind`.
pub(crate) fn slot_for(kind: EventKind, key: &str) -> Slot {
    use EventKind as K;
    match (kind, key) {
        (_, "sk" | "skaddr") => Slot::SkAddr,
        (_, "skbaddr") => Slot::SkbAddr,
        (_, "sock_cookie") => Slot::SockCookie,
        (_, "saddr") => Slot::Saddr,
        (_, "daddr") => Slot::Daddr,
        (_, "sport") => Slot::Sport,
        (_, "dport") => Slot::Dport,
        (_, "src") => Slot::Src,
        (_, "dest") => Slot::Dest,
        (K::SysEnter, "fd") => Slot::Fd,
        (K::SysEnter, "count" | "len" | "size") => Slot::Count,
        (K::SysEnter, "op") => Slot::Op,
        (K::SysEnter, "utime") => Slot::Utime,
        (K::SysExit, "ret") => Slot::Ret,
        (K::SchedSwitch, "prev_pid") => Slot::PrevTid,
        (K::SchedSwitch, "prev_state") => Slot::PrevState,
        (K::SchedSwitch, "next_pid") => Slot::NextTid,
        (K::Wakeup, "pid") => Slot::WakeTid,
        (K::Wakeup, "target_cpu") => Slot::WakeCpu,
        (K::Fork, "pid" | "parent_pid") => Slot::ParentTid,
        (K::Fork, "child_pid") => Slot::ChildTid,
        (K::SockLength, "length") | (K::TcpProbe, "data_len") | (K::Net, "len") => Slot::Length,
        _ => Slot::Map,
    }
}

impl Typed {
    /// Store `v` in `slot`; false when it stays in the map (map slot, unparsable value, or
    /// the slot already filled).
    pub(crate) fn set(&mut self, slot: Slot, v: &str) -> bool {
        fn put<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
            match v {
                Some(x) if slot.is_none() => {
                    *slot = Some(x);
                    true
                }
                _ => false,
            }
        }
        match slot {
            Slot::Map => false,
            Slot::SkAddr => put(&mut self.sk_addr, parse_hex(v)),
            Slot::SkbAddr => put(&mut self.skb_addr, parse_hex(v)),
            Slot::SockCookie => put(&mut self.sock_cookie, parse_hex(v)),
            Slot::Saddr => put(&mut self.saddr, InlineStr::new(v)),
            Slot::Daddr => put(&mut self.daddr, InlineStr::new(v)),
            Slot::Sport => same_or_put(
                &mut self.sport,
                parse_int(v).and_then(|p| p.try_into().ok()),
            ),
            Slot::Dport => same_or_put(
                &mut self.dport,
                parse_int(v).and_then(|p| p.try_into().ok()),
            ),
            Slot::Src => self.endpoint(v, true),
            Slot::Dest => self.endpoint(v, false),
            Slot::Fd => put(&mut self.fd, parse_int(v)),
            Slot::Count => put(&mut self.count, parse_int(v)),
            Slot::Ret => put(&mut self.ret, parse_int(v)),
            Slot::PrevTid => put(&mut self.prev_tid, parse_i32(v)),
            Slot::PrevState => put(&mut self.prev_state, InlineStr::new(v)),
            Slot::NextTid => put(&mut self.next_tid, parse_i32(v)),
            Slot::WakeTid => put(&mut self.wake_tid, parse_i32(v)),
            Slot::WakeCpu => put(&mut self.wake_cpu, parse_i32(v)),
            Slot::ParentTid => put(&mut self.parent_tid, parse_i32(v)),
            Slot::ChildTid => put(&mut self.child_tid, parse_i32(v)),
            Slot::Length => put(&mut self.length, parse_int(v)),
            Slot::Op => put(&mut self.op, parse_int(v)),
            Slot::Utime => put(&mut self.utime, parse_hex(v)),
        }
    }

    /// Store a number decoded from a binary record; false when it stays in the map.
    pub(crate) fn set_num(&mut self, slot: Slot, v: i128) -> bool {
        fn put<T: TryFrom<i128>>(slot: &mut Option<T>, v: i128) -> bool {
            match T::try_from(v) {
                Ok(x) if slot.is_none() => {
                    *slot = Some(x);
                    true
                }
                _ => false,
            }
        }
        match slot {
            Slot::Fd => put(&mut self.fd, v),
            Slot::Count => put(&mut self.count, v),
            Slot::Ret => put(&mut self.ret, v),
            Slot::PrevTid => put(&mut self.prev_tid, v),
            Slot::NextTid => put(&mut self.next_tid, v),
            Slot::WakeTid => put(&mut self.wake_tid, v),
            Slot::WakeCpu => put(&mut self.wake_cpu, v),
            Slot::ParentTid => put(&mut self.parent_tid, v),
            Slot::ChildTid => put(&mut self.child_tid, v),
            Slot::SkAddr => put(&mut self.sk_addr, v),
            Slot::SkbAddr => put(&mut self.skb_addr, v),
            Slot::SockCookie => put(&mut self.sock_cookie, v),
            Slot::Length => put(&mut self.length, v),
            Slot::Op => put(&mut self.op, v),
            Slot::Utime => put(&mut self.utime, v),
            Slot::Sport => same_or_put(&mut self.sport, u16::try_from(v).ok()),
            Slot::Dport => same_or_put(&mut self.dport, u16::try_from(v).ok()),
            _ => false,
        }
    }

    /// An address (and port, for endpoints) already rendered: binary records skip the
    /// format-then-parse round trip of [`Typed::set`].
    pub(crate) fn set_addr(&mut self, slot: Slot, addr: InlineStr, port: Option<u16>) -> bool {
        match (slot, port) {
            (Slot::Saddr, None) => put_once(&mut self.saddr, addr),
            (Slot::Daddr, None) => put_once(&mut self.daddr, addr),
            (Slot::Src | Slot::Dest, Some(port)) => {
                let (a, p) = if slot == Slot::Src {
                    (&mut self.saddr, &mut self.sport)
                } else {
                    (&mut self.daddr, &mut self.dport)
                };
                if a.is_some() || p.is_some() {
                    return false;
                }
                *a = Some(addr);
                *p = Some(port);
                true
            }
            _ => false,
        }
    }

    /// `127.0.0.1:80` or `[::1]:80`.
    fn endpoint(&mut self, v: &str, source: bool) -> bool {
        let Some((addr, port)) = v.rsplit_once(':') else {
            return false;
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let (Some(port), Some(addr)) = (port.parse::<u16>().ok(), InlineStr::new(addr)) else {
            return false;
        };
        let slot = if source { Slot::Src } else { Slot::Dest };
        self.set_addr(slot, addr, Some(port))
    }
}

fn put_once(slot: &mut Option<InlineStr>, v: InlineStr) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(v);
    true
}

/// A port set twice (tcp_probe's `sport` after `src` in binary records) is promoted when it
/// agrees, so the duplicate does not land in the map.
fn same_or_put(slot: &mut Option<u16>, v: Option<u16>) -> bool {
    match (*slot, v) {
        (None, Some(x)) => {
            *slot = Some(x);
            true
        }
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A short string kept inline (addresses, task states), so typed values need no lifetime.
#[derive(Clone, Copy)]
pub(crate) struct InlineStr {
    len: u8,
    buf: [u8; 56],
}

impl InlineStr {
    /// The empty string (never stored in a column).
    pub(crate) const EMPTY: Self = Self {
        len: 0,
        buf: [0; 56],
    };

    /// None when empty or longer than 56 bytes (the value then stays in the map).
    pub(crate) fn new(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 56 {
            return None;
        }
        let mut buf = [0; 56];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            len: s.len() as u8,
            buf,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// Decimal (optionally negative) or `0x` hex; hex is read as u64 and reinterpreted, so a
/// syscall return of `0xfffffffffffffff5` is -11.
pub(crate) fn parse_int(v: &str) -> Option<i64> {
    if let Some(h) = v.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok().map(|u| u as i64);
    }
    v.parse::<i64>().ok()
}

fn parse_i32(v: &str) -> Option<i32> {
    v.parse().ok()
}

/// A pointer or cookie printed in hex, with or without `0x`.
pub(crate) fn parse_hex(v: &str) -> Option<u64> {
    let h = v.strip_prefix("0x").unwrap_or(v);
    if h.is_empty() || h.len() > 16 {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}
