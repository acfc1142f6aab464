//! The linking rules: per syscall, which socket it touched and which request it served.
//!
//! - A send or receive resolves its socket from the events inside its syscall bracket
//!   (`sock_*_length` socket and bytes, `tcp_rcv_space_adjust` and `tcp_probe` 4-tuples), or
//!   from what the same `(process, fd)` resolved to before.
//! - Bytes are matched to the request that sent them by stream position ([`crate::stream`]).
//! - A reply on a server socket belongs to the request last read on that socket (event loops
//!   such as redis read several connections, then write all the replies).
//! - A send on a client socket belongs to the thread's current request: the one it last read
//!   on a server socket (thread-per-request servers and event loops alike), or else one handed
//!   to it by a wakeup or fork.

use crate::engine::{Bracket, Call, Engine, LabelSink, Sock};
use crate::event::{Event, Sys, Tuple};
use crate::model::{Edge, Request, Rule, Span, SpanKind};
use crate::socket::{role_from_ports, Role};
use crate::stream::Tag;

impl Engine {
    pub(crate) fn on_enter(&mut self, ev: &Event, sys: Sys, sink: &mut impl LabelSink) {
        let t = self.thread(ev);
        let stale = t.bracket.take();
        let tgid = t.tgid.unwrap_or(ev.tid);
        if let (Sys::Close, Some(fd)) = (sys, ev.fd) {
            // The fd number is free as soon as close begins (the socket teardown follows), and
            // another thread may get it from open() before this close returns.
            self.forget_fd(tgid, fd);
        }
        let t = self.thread(ev);
        if sys == Sys::Wait {
            t.event_loop = true;
            t.current = None;
        }
        t.bracket = Some(Bracket {
            sys: Some(sys),
            fd: ev.fd,
            start: ev.ts,
            rows: vec![ev.row],
            ..Default::default()
        });
        if let Some(b) = stale {
            self.stats.unmatched_brackets += 1;
            self.emit_rows(b.rows, self.current(ev.tid), sink);
        }
    }

    pub(crate) fn on_sock_length(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        self.implicit_bracket(ev);
        let t = self.thread(ev);
        if let Some(b) = t.bracket.as_mut() {
            if ev.irq {
                b.rows.push(ev.row);
                return;
            }
            if ev.sk.is_some() {
                b.sk = ev.sk;
            }
            if let Some(n) = ev.length.filter(|&n| n > 0) {
                b.len += n;
                b.data_ts.get_or_insert(ev.ts);
            }
            b.rows.push(ev.row);
            return;
        }
        self.label_in_context(ev, sink);
    }

    /// A socket event of a thread not known to be in a syscall: the syscall began before the
    /// recording did (a thread blocked in `recvfrom` since then) or its enter was lost. Open a
    /// bracket without a syscall; the exit says which it was.
    fn implicit_bracket(&mut self, ev: &Event) {
        let t = self.thread(ev);
        if t.bracket.is_none() && !ev.irq {
            t.bracket = Some(Bracket {
                start: ev.ts,
                ..Default::default()
            });
        }
    }

    pub(crate) fn on_rcv_space(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        self.implicit_bracket(ev);
        if let Some(tuple) = ev.tuple() {
            if let Some(sk) = ev.sk {
                self.sks.learn(sk, tuple);
            }
            if let Some(b) = self.thread(ev).bracket.as_mut() {
                if b.sys.is_none_or(|s| s == Sys::Recv) {
                    b.rcv_tuple = Some(tuple);
                }
            }
        }
        self.label_in_context(ev, sink);
    }

    /// `tcp_probe` fires when a segment reaches the receiving socket. Inside a send it marks
    /// the moment the bytes became readable, which can be before the sender's syscall returns:
    /// the bytes are queued then, so the reader always finds them.
    /// `inet_sock_set_state` names a socket's address with its 4-tuple as soon as the
    /// connection is set up (both ports known). A first send on a fresh connection may carry
    /// only `sock_send_length`, its address: the segment can reach the peer later, in another
    /// thread's context (a receiver that holds the socket lock queues it to its backlog).
    pub(crate) fn on_set_state(&mut self, ev: &Event) {
        if ev
            .tuple()
            .is_some_and(|t| t.local.port != 0 && t.remote.port != 0)
        {
            self.learn_socket(ev);
        }
    }

    /// Remembers which 4-tuple the socket address of `ev` has.
    pub(crate) fn learn_socket(&mut self, ev: &Event) {
        if let (Some(sk), Some(tuple)) = (ev.sk, ev.tuple()) {
            self.sks.learn(sk, tuple);
        }
    }

    pub(crate) fn on_probe(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        let Some(receiver) = ev.tuple() else {
            return self.label_in_context(ev, sink);
        };
        if let Some(sk) = ev.sk {
            self.sks.learn(sk, receiver);
        }
        let len = ev.length.unwrap_or(0);
        let sender = receiver.mirrored();
        let tgid = self.thread(ev).tgid.unwrap_or(ev.tid);
        let fits = {
            let t = self.threads.get(&ev.tid);
            t.and_then(|t| t.bracket.as_ref()).is_some_and(|b| {
                b.sys == Some(Sys::Send)
                    && b.send_tuple.is_none_or(|s| s == sender)
                    && b.fd
                        .and_then(|fd| self.fds.get(&(tgid, fd)))
                        .is_none_or(|&k| k == sender)
            })
        };
        if fits && len > 0 {
            let fd = self
                .threads
                .get(&ev.tid)
                .and_then(|t| t.bracket.as_ref())
                .and_then(|b| b.fd);
            let tag = self.send_tag(ev.tid, sender, ev.ts, fd);
            if let Some(b) = self
                .threads
                .get_mut(&ev.tid)
                .and_then(|t| t.bracket.as_mut())
            {
                b.send_tuple = Some(sender);
                b.probed += len;
                b.last_probe = Some(ev.ts);
            }
            self.enqueue(sender, len, tag, ev.tid);
        }
        self.label_in_context(ev, sink);
    }

    pub(crate) fn on_exit(&mut self, ev: &Event, sys: Sys, sink: &mut impl LabelSink) {
        let t = self.thread(ev);
        let Some(mut b) = t.bracket.take() else {
            self.stats.unmatched_brackets += 1;
            return self.label_in_context(ev, sink);
        };
        if b.sys.is_none() {
            b.sys = Some(sys);
        }
        if b.sys != Some(sys) {
            self.stats.unmatched_brackets += 1;
            b.rows.push(ev.row);
            return self.emit_rows(b.rows, self.current(ev.tid), sink);
        }
        b.rows.push(ev.row);
        let tgid = t.tgid.unwrap_or(ev.tid);
        let ret = ev.ret.unwrap_or(-1);
        let tag = match sys {
            Sys::Recv if ret > 0 => self.resolve_recv(ev, &b, tgid, ret),
            Sys::Send if ret > 0 => self.resolve_send(ev, &b, tgid, ret),
            Sys::Accept | Sys::Connect => {
                let fd = if sys == Sys::Accept { ev.ret } else { b.fd };
                if let Some(fd) = fd.filter(|&fd| fd >= 0) {
                    let role = if sys == Sys::Accept {
                        Role::Server
                    } else {
                        Role::Client
                    };
                    self.role_hints.insert((tgid, fd), role);
                    self.fds.remove(&(tgid, fd));
                    match self.current(ev.tid) {
                        Some(cur) if sys == Sys::Connect => {
                            self.conn_owner.insert((tgid, fd), cur);
                        }
                        _ => {
                            self.conn_owner.remove(&(tgid, fd));
                        }
                    }
                }
                self.current(ev.tid)
            }
            Sys::Wait => None,
            _ => self.current(ev.tid),
        };
        self.emit_rows(b.rows, tag, sink);
    }

    fn forget_fd(&mut self, tgid: i32, fd: i64) {
        self.role_hints.remove(&(tgid, fd));
        self.conn_owner.remove(&(tgid, fd));
        if let Some(tuple) = self.fds.remove(&(tgid, fd)) {
            self.socks.remove(&tuple);
        }
    }

    fn current(&self, tid: i32) -> Option<Tag> {
        self.threads.get(&tid).and_then(|t| t.current)
    }

    /// The socket a send or receive touched, and remembers it for the `(process, fd)`.
    fn bracket_socket(
        &mut self,
        b: &Bracket,
        tgid: i32,
        from_bracket: Option<Tuple>,
    ) -> Option<Tuple> {
        let tuple = from_bracket
            .or_else(|| b.sk.and_then(|sk| self.sks.tuple(sk)))
            .or_else(|| b.fd.and_then(|fd| self.fds.get(&(tgid, fd)).copied()))?;
        if let Some(sk) = b.sk {
            self.sks.learn(sk, tuple);
        }
        if let Some(fd) = b.fd {
            self.fds.insert((tgid, fd), tuple);
        }
        Some(tuple)
    }

    fn sock(&mut self, tuple: Tuple, tgid: i32, fd: Option<i64>) -> &mut Sock {
        let hint = fd.and_then(|fd| self.role_hints.get(&(tgid, fd)).copied());
        let ingress = &self.cfg.ingress;
        self.socks.entry(tuple).or_insert_with(|| {
            let role = hint.unwrap_or_else(|| role_from_ports(&tuple));
            Sock {
                role,
                ingress: role == Role::Server && ingress.iter().any(|i| i.matches(tuple.local)),
                rx: None,
                responded: false,
                call: None,
            }
        })
    }

    fn enqueue(&mut self, sender: Tuple, len: i64, tag: Option<Tag>, tid: i32) {
        let s = self
            .streams
            .entry((sender.local, sender.remote))
            .or_default();
        self.stats.dropped_segments += s.send(len, tag, tid) as u64;
    }

    fn resolve_send(&mut self, ev: &Event, b: &Bracket, tgid: i32, ret: i64) -> Option<Tag> {
        let tuple = self.bracket_socket(b, tgid, b.send_tuple)?;
        let n = if b.len > 0 { b.len } else { ret };
        let tag = match b.send_tag {
            Some(t) => t,
            // The bracket is no longer the thread's: its fd is passed along.
            None => self.send_tag(ev.tid, tuple, b.start, b.fd),
        };
        if n > b.probed {
            self.enqueue(tuple, n - b.probed, tag, ev.tid);
        }
        // The bytes were readable at their last delivery, which can be well before the
        // sender's syscall returns (the sender may be preempted on its way out).
        let sent = match b.last_probe {
            Some(p) if n <= b.probed => p,
            _ => ev.ts,
        };
        if let Some(tag) = tag {
            self.extend_span(tag, ev.tid, sent, 0, n);
            if let Some(r) = self.requests.get_mut(&tag.request) {
                if r.root == tag.span {
                    r.end = r.end.max(sent);
                    r.responded = true;
                }
            }
        }
        tag
    }

    /// Which request a send on `tuple` by `tid` carries; opens a client span when it starts
    /// an outgoing call. Called once per send syscall, on file descriptor `fd`.
    pub(crate) fn send_tag(
        &mut self,
        tid: i32,
        tuple: Tuple,
        ts: i64,
        fd: Option<i64>,
    ) -> Option<Tag> {
        let tgid = self.threads.get(&tid).and_then(|t| t.tgid).unwrap_or(tid);
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            if let Some(t) = b.send_tag {
                return t;
            }
        }
        let sock = self.sock(tuple, tgid, fd);
        let tag = match sock.role {
            Role::Server => {
                let rx = sock.rx;
                if rx.is_some() {
                    sock.responded = true;
                }
                if let (Some(rx), Some(t)) = (rx, self.threads.get_mut(&tid)) {
                    if t.current == Some(rx) {
                        t.current = None;
                    }
                }
                rx
            }
            Role::Client => self.client_call(tid, tuple, ts, fd),
        };
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            b.send_tag = Some(tag);
        }
        tag
    }

    fn client_call(&mut self, tid: i32, tuple: Tuple, ts: i64, fd: Option<i64>) -> Option<Tag> {
        let t = self.threads.get_mut(&tid)?;
        let (tgid, event_loop) = (t.tgid, t.event_loop);
        let owner = fd.and_then(|fd| self.conn_owner.get(&(tgid.unwrap_or(tid), fd)).copied());
        let open_call = self
            .socks
            .get(&tuple)
            .and_then(|s| s.call)
            .filter(|c| !c.replied);
        let t = self.threads.get_mut(&tid)?;
        let (parent, rule) = match (t.current, owner, open_call, t.handoff.take()) {
            // An event loop may open connections for several requests before writing to them.
            (_, Some(o), ..) if event_loop => (o, Rule::EventLoop),
            (Some(cur), ..) if event_loop => (cur, Rule::EventLoop),
            (Some(cur), ..) => (cur, Rule::ThreadRequest),
            (None, Some(o), ..) => (o, Rule::EventLoop),
            (None, None, Some(c), _) => return Some(c.tag),
            (None, None, None, Some((tag, rule, at))) => {
                let cur = self.new_span(tag, SpanKind::Internal, tid, at, None, rule);
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.current = Some(cur);
                }
                (cur, Rule::ThreadRequest)
            }
            (None, None, None, None) => return None,
        };
        if let Some(c) = open_call {
            if c.tag.request == parent.request {
                return Some(c.tag);
            }
        }
        self.socks.get(&tuple)?;
        let tag = self.new_span(parent, SpanKind::Client, tid, ts, Some(tuple), rule);
        if let Some(sock) = self.socks.get_mut(&tuple) {
            sock.call = Some(Call {
                tag,
                parent,
                replied: false,
            });
        }
        Some(tag)
    }

    fn resolve_recv(&mut self, ev: &Event, b: &Bracket, tgid: i32, ret: i64) -> Option<Tag> {
        let tuple = self.bracket_socket(b, tgid, b.rcv_tuple)?;
        let n = if b.len > 0 { b.len } else { ret };
        let at = b.data_ts.unwrap_or(ev.ts);
        let taken = self
            .streams
            .entry((tuple.remote, tuple.local))
            .or_default()
            .recv(n);
        self.stats.unseen_bytes += taken.unseen;
        self.stats.mixed_reads += u64::from(taken.mixed);
        let sock = self.sock(tuple, tgid, b.fd);
        let tag = match sock.role {
            Role::Server => {
                let open = sock.rx.filter(|_| !sock.responded);
                let ingress = sock.ingress;
                let tag = match (taken.tag, open) {
                    (Some(t), Some(o)) if o.request == t.request => Some(o),
                    (Some(t), _) => Some(self.new_span(
                        t,
                        SpanKind::Server,
                        ev.tid,
                        at,
                        Some(tuple),
                        Rule::ByteStream,
                    )),
                    (None, Some(o)) => Some(o),
                    (None, None) if ingress => Some(self.new_request(ev, tuple, at, taken.sender)),
                    (None, None) => None,
                };
                if let Some(tag) = tag {
                    if let Some(s) = self.socks.get_mut(&tuple) {
                        if s.rx != Some(tag) {
                            s.rx = Some(tag);
                            s.responded = false;
                        }
                    }
                    if let Some(t) = self.threads.get_mut(&ev.tid) {
                        t.current = Some(tag);
                        t.handoff = None;
                    }
                }
                tag
            }
            Role::Client => {
                let call = sock
                    .call
                    .as_mut()
                    .filter(|c| taken.tag.is_none_or(|t| t.request == c.tag.request));
                let call = call.map(|c| {
                    c.replied = true;
                    *c
                });
                if let Some(c) = call {
                    // The first call on a connection opened for a request is over; from now
                    // on the connection serves whichever request the thread sends for.
                    if let Some(fd) = b.fd {
                        self.conn_owner.remove(&(tgid, fd));
                    }
                    if let Some(t) = self.threads.get_mut(&ev.tid) {
                        t.current = Some(c.parent);
                    }
                }
                call.map(|c| c.tag)
            }
        };
        if let Some(tag) = tag {
            self.extend_span(tag, ev.tid, ev.ts, n, 0);
        }
        tag
    }

    /// A span's syscall moved `bytes_in`/`bytes_out` and ended at `at`: extend it.
    fn extend_span(&mut self, tag: Tag, tid: i32, at: i64, bytes_in: i64, bytes_out: i64) {
        if let Some(s) = self.spans.get_mut(&tag.span) {
            s.bytes_in += bytes_in;
            s.bytes_out += bytes_out;
            s.end = s.end.max(at);
            if let Some(t) = self.threads.get(&tid) {
                s.split_end = t.clock.at(s.end);
            }
        }
    }

    fn new_request(&mut self, ev: &Event, tuple: Tuple, at: i64, client: Option<i32>) -> Tag {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.requests += 1;
        self.requests.insert(
            id,
            Request {
                id,
                root: 0,
                ingress: tuple,
                client_tid: client,
                ingress_tid: ev.tid,
                start: at,
                end: at,
                responded: false,
                spans: Vec::new(),
                edges: Vec::new(),
            },
        );
        // The root span has no parent and no edge.
        let root = self.open_span(
            id,
            None,
            SpanKind::Server,
            ev.tid,
            at,
            Some(tuple),
            Rule::ByteStream,
        );
        if let Some(r) = self.requests.get_mut(&id) {
            r.root = root.span;
        }
        root
    }

    /// A span of `parent`'s request on thread `tid`, joined to `parent` by `rule`. When the
    /// request was already handed out, the late hop joins its parent span instead of creating
    /// a span no table will hold.
    fn new_span(
        &mut self,
        parent: Tag,
        kind: SpanKind,
        tid: i32,
        start: i64,
        tuple: Option<Tuple>,
        rule: Rule,
    ) -> Tag {
        if !self.requests.contains_key(&parent.request) {
            self.stats.late_hops += 1;
            return parent;
        }
        self.open_span(
            parent.request,
            Some(parent.span),
            kind,
            tid,
            start,
            tuple,
            rule,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn open_span(
        &mut self,
        request: u64,
        parent: Option<u64>,
        kind: SpanKind,
        tid: i32,
        start: i64,
        tuple: Option<Tuple>,
        rule: Rule,
    ) -> Tag {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.spans += 1;
        let (pid, comm, split) = self
            .threads
            .get(&tid)
            .map(|t| (t.tgid, t.comm, t.clock.at(start)))
            .unwrap_or_default();
        self.spans.insert(
            id,
            Span {
                request,
                id,
                parent,
                kind,
                tid,
                pid,
                comm,
                start,
                end: start,
                tuple,
                bytes_in: 0,
                bytes_out: 0,
                split_start: split,
                split_end: split,
                events: 0,
            },
        );
        if let Some(r) = self.requests.get_mut(&request) {
            r.spans.push(id);
            if let Some(from) = parent {
                self.stats.edges += 1;
                r.edges.push(Edge {
                    request,
                    from,
                    to: id,
                    rule,
                    ts: start,
                });
            }
        }
        Tag { request, span: id }
    }
}
