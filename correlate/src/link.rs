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

mod handoff;
mod multiplexed;
mod recv;
mod send;
mod spans;
mod turns;
mod unix;

#[cfg(test)]
pub(crate) use turns::{RESUMED_RETURN_NS, STEP_RETURN_NS};

use crate::engine::{Bracket, Engine, LabelSink, Sock};
use crate::event::{Event, Sys, Tuple};
use crate::socket::{role_from_ports, Role};
use crate::stream::Tag;

/// `-EAGAIN`: a non-blocking read found nothing to read.
const EAGAIN: i64 = -11;

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
        if sys == Sys::Futex && ev.signal_wait {
            self.untimed_wait(ev.tid, ev.ts);
            self.await_call(ev.tid, ev.ts);
        }
        if sys == Sys::Wait {
            self.await_call(ev.tid, ev.ts);
            // An event loop's turn on a request lasts until it waits again.
            self.end_turn(ev.tid, ev.ts);
            let t = self.thread(ev);
            t.event_loop = true;
            t.current = None;
            t.unknown = false;
            t.passed = None;
            // Replies it read and handed to nobody: their callers may take them when they
            // answer, else their stretches fall back.
            let replies = std::mem::take(&mut t.replies);
            t.batch.clear();
            t.handed.clear();
            self.leave_over(replies);
        }
        let t = self.thread(ev);
        t.resched_exit = false;
        // A reader's futex calls between two reads of the channel (CPython's GIL, waking
        // threads) leave its drain open.
        if !matches!(sys, Sys::Recv | Sys::Futex) {
            t.draining = None;
        }
        if sys != Sys::Send {
            t.yielded = false;
        }
        let passing = t.passed.is_some_and(|p| p.next.is_none());
        t.bracket = Some(Bracket {
            sys: Some(sys),
            fd: ev.fd,
            start: ev.ts,
            rows: vec![ev.row],
            signal_wait: sys == Sys::Futex && ev.signal_wait,
            ..Default::default()
        });
        if passing {
            self.after_pass(ev.tid, ev.ts);
        }
        if let Some(b) = stale {
            self.stats.unmatched_brackets += 1;
            self.emit_rows(b.rows, self.current(ev.tid), sink);
        }
    }

    pub(crate) fn on_sock_length(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        self.sock_lengths = true;
        self.implicit_bracket(ev);
        let t = self.thread(ev);
        if let Some(b) = t.bracket.as_mut() {
            if ev.irq {
                b.rows.push(ev.row);
                return;
            }
            b.sock = true;
            if ev.sk.is_some() {
                b.sk = ev.sk;
            }
            let release = ev.sk.is_some() && !b.held.is_empty();
            if let (Some(end), Some(peer)) = (ev.src, ev.dst) {
                b.unix = Some((end, peer));
            }
            if let Some(n) = ev.length.filter(|&n| n > 0) {
                b.len += n;
                b.data_ts.get_or_insert(ev.ts);
            }
            b.rows.push(ev.row);
            if release {
                self.release_probes(ev.tid, ev.sk);
            }
            return;
        }
        self.label_in_context(ev, sink);
    }

    /// A socket event of a thread not known to be in a syscall: the syscall began before the
    /// recording did (a thread blocked in `recvfrom` since then) or its enter was lost. Open a
    /// bracket without a syscall; the exit says which it was.
    pub(crate) fn implicit_bracket(&mut self, ev: &Event) {
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
            if let Some(b) = self.thread(ev).bracket.as_mut() {
                if b.sys.is_none_or(|s| s == Sys::Recv) {
                    b.rcv_tuple = Some(tuple);
                }
            }
        }
        self.label_in_context(ev, sink);
    }

    /// `inet_sock_set_state` names a socket's address with its 4-tuple as soon as the
    /// connection is set up (both ports known). A first send on a fresh connection may carry
    /// only `sock_send_length`, its address: the segment can reach the peer later, in another
    /// thread's context (a receiver that holds the socket lock queues it to its backlog).
    pub(crate) fn on_set_state(&mut self, ev: &Event) {
        if !ev.irq {
            if let Some(b) = self
                .threads
                .get_mut(&ev.tid)
                .and_then(|t| t.bracket.as_mut())
            {
                b.tcp_state = true;
            }
        }
        if let Some(t) = ev
            .tuple()
            .filter(|t| t.local.port != 0 && t.remote.port != 0)
        {
            self.learn_socket(ev);
            self.born.insert(t);
        }
    }

    /// Remembers which 4-tuple the socket address of `ev` has (`tcp_probe`,
    /// `tcp_rcv_space_adjust` and `inet_sock_set_state` name both, in any context).
    pub(crate) fn learn_socket(&mut self, ev: &Event) {
        if let (Some(sk), Some(tuple)) = (ev.sk, ev.tuple()) {
            self.sks.learn(sk, tuple);
        }
    }

    /// `tcp_probe` fires when a segment reaches the receiving socket. Inside a send it marks
    /// the moment the bytes became readable, which can be before the sender's syscall returns:
    /// the bytes are queued then, so the reader always finds them.
    pub(crate) fn on_probe(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        if !self.hold_probe(ev) {
            self.deliver(ev);
        }
        self.label_in_context(ev, sink);
    }

    /// Holds `ev`, a `tcp_probe` inside a send on an fd whose socket is not known yet, in the
    /// send's bracket (see [`Bracket::held`]).
    fn hold_probe(&mut self, ev: &Event) -> bool {
        if !self.sock_lengths || ev.tuple().is_none() {
            return false;
        }
        let tgid = self.thread(ev).tgid.unwrap_or(ev.tid);
        let fds = &self.fds;
        let Some(b) = self
            .threads
            .get_mut(&ev.tid)
            .and_then(|t| t.bracket.as_mut())
        else {
            return false;
        };
        let fresh = b.fd.is_some_and(|fd| !fds.contains_key(&(tgid, fd)));
        if b.sys != Some(Sys::Send) || b.sk.is_some() || b.send_tuple.is_some() || !fresh {
            return false;
        }
        b.held.push(*ev);
        if let Some(receiver) = ev.tuple() {
            self.held.insert((receiver.remote, receiver.local), ev.tid);
        }
        true
    }

    /// A read of the direction `(from, to)` of a connection: a probe held for it was a
    /// delivery (the reader found the bytes before the send named its socket), and is one now.
    pub(crate) fn release_held_for(
        &mut self,
        from: crate::event::Endpoint,
        to: crate::event::Endpoint,
    ) {
        if let Some(sender) = self.held.remove(&(from, to)) {
            self.release_probes(sender, None);
        }
    }

    /// The held probes of `tid`'s send, now that its socket `sk` is known (or the send ended
    /// without naming it): each probe of another socket is the send's delivery.
    fn release_probes(&mut self, tid: i32, sk: Option<u64>) {
        let held = self
            .threads
            .get_mut(&tid)
            .and_then(|t| t.bracket.as_mut())
            .map(|b| std::mem::take(&mut b.held))
            .unwrap_or_default();
        for p in &held {
            if let Some(r) = p.tuple() {
                self.held.remove(&(r.remote, r.local));
            }
        }
        for p in held {
            if sk.is_none() || p.sk != sk {
                self.deliver(&p);
            }
        }
    }

    /// A `tcp_probe` inside a send: the bytes it delivered are the send's.
    fn deliver(&mut self, ev: &Event) {
        let Some(receiver) = ev.tuple() else {
            return;
        };
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
            let (fd, started) = self
                .threads
                .get(&ev.tid)
                .and_then(|t| t.bracket.as_ref())
                .map_or((None, ev.ts), |b| (b.fd, b.start));
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
            self.enqueue(sender, len, tag, ev.tid, started);
        }
    }

    pub(crate) fn on_exit(&mut self, ev: &Event, sys: Sys, sink: &mut impl LabelSink) {
        // Every held probe is in `held`: a syscall exit looks at its bracket only then.
        if !self.held.is_empty() {
            self.release_probes(ev.tid, None);
        }
        let t = self.thread(ev);
        t.resched_exit = ev.need_resched;
        t.exited = ev.ts;
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
        if sys == Sys::Recv {
            self.due_steps_before_read(ev.tid, b.start);
            if ret <= 0 {
                if let Some(t) = self.threads.get_mut(&ev.tid) {
                    t.draining = None;
                }
            }
            if ret == EAGAIN {
                self.found_own_empty(ev.tid, tgid, b.fd);
            }
        }
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
                    if sys == Sys::Accept {
                        self.unix_accepted(tgid, ev.tid, b.fd, fd);
                    } else if !b.tcp_state && (ret == 0 || ret == -115) {
                        // 0, or EINPROGRESS: a connect with no TCP state change may be a
                        // unix socket's.
                        let comm = self.threads.get(&ev.tid).map_or(0, |t| t.comm);
                        self.unix_connected(tgid, fd, b.woke, comm);
                    }
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
            Sys::Wait => {
                self.waited(ev.tid, ev.ts, ev.ret);
                None
            }
            _ => self.current(ev.tid),
        };
        // An answer's turn ends where its bytes were delivered: a loop preempted on its way
        // out of the write (nginx in `s1-c1`, 0.9 ms) has answered, and the client has the
        // response, before the syscall returns.
        let answering = || self.threads.get(&ev.tid).is_some_and(|t| t.answering);
        let end = match sys {
            Sys::Send if answering() => b.delivered(ret, ev.ts),
            _ => ev.ts,
        };
        // A close or a syscall on no socket (a file a callback reads) names no request: it
        // neither starts nor extends a turn, and its rows go with the thread's request. Node.js
        // reads a module it requires lazily in the first response's callback; the close had
        // extended the previous callback's turn over it. Over 222 recordings of the loop
        // models (the CI-sized eventloop, asyncio, handoff, go and grpcnode sets of runs 1-43,
        // the larger and variant ones) and the four bundled captures: 45,769 -> 45,772 exact,
        // none lower. Nor does a futex call of a loop that runs a read's callbacks at once
        // (libuv): it wakes V8's helper threads in whichever callback runs. On a CPython loop
        // a futex call hands the GIL around the loop's own syscalls and stays with the turn.
        // Over 247 loop recordings (runs 1-48): 50,668 -> 50,705 with the bundled captures,
        // two grpcnode sets 1-2 lower, twenty higher.
        let names_none = match sys {
            Sys::Close | Sys::Other => true,
            Sys::Futex => self
                .threads
                .get(&ev.tid)
                .is_some_and(|t| t.runs_callbacks_at_once()),
            _ => false,
        };
        if let Some(tag) = tag.filter(|_| !names_none) {
            self.take_turn(ev.tid, tag, b.start, end);
            if b.woke_worker {
                self.pass_on(ev.tid, tag);
            }
        }
        self.lock_call(ev.tid, sys == Sys::Futex && !b.woke_worker, b.start, ev.ts);
        self.emit_rows(b.rows, tag, sink);
    }

    pub(crate) fn forget_fd(&mut self, tgid: i32, fd: i64) {
        self.role_hints.remove(&(tgid, fd));
        self.conn_owner.remove(&(tgid, fd));
        if let Some(tuple) = self.fds.remove(&(tgid, fd)) {
            self.socks.remove(&tuple);
            self.unix_closed(tuple);
        }
        self.unix_forget_fd(tgid, fd);
    }

    /// The request `tid` works on, followed through placed stretches. Work handed on by a
    /// stretch that was then dropped is no request's: the `grpc` model's front end connects
    /// its channel from an `event_engine` thread woken by another's unplaced stretch, and every
    /// later call of that thread went to the dropped stretch (34 of 200 requests exact in one
    /// recording).
    pub(crate) fn current(&self, tid: i32) -> Option<Tag> {
        self.threads
            .get(&tid)
            .and_then(|t| t.current)
            .map(|c| self.canon(c))
            .filter(|c| c.request != crate::engine::DROPPED)
    }

    /// `tid` stops working on its current request at `at` (it waits, or turns to another
    /// request): the request's span on this thread lasts until then. A stretch not yet placed
    /// ends too.
    pub(crate) fn end_turn(&mut self, tid: i32, at: i64) {
        if let Some(turn) = self
            .threads
            .get(&tid)
            .filter(|t| t.event_loop)
            .and_then(|t| t.turn)
        {
            return self.extend_span(turn, at, 0, 0);
        }
        let Some(cur) = self.current(tid) else {
            return;
        };
        if self.owns_stretch(tid) {
            return self.end_stretch(tid);
        }
        if self.spans.get(&cur.span).is_some_and(|s| s.tid == tid) {
            self.extend_span(cur, at, 0, 0);
        }
    }

    /// The socket a send or receive touched, and remembers it for the `(process, fd)`.
    pub(crate) fn bracket_socket(
        &mut self,
        b: &Bracket,
        tgid: i32,
        from_bracket: Option<Tuple>,
    ) -> Option<Tuple> {
        // A read or write that fired no `sock_*_length`, in a recording that has them, is not
        // on a socket, whatever TCP events a softirq delivered in its context. The Java model:
        // pool threads wake the selector by writing 8 bytes to an eventfd; a segment of
        // another connection delivered during that write named its tuple, the eventfd's fd
        // took that tuple, and the selector's reads of it then opened requests on that
        // connection (41 of 200 requests lost in one recording).
        if self.sock_lengths && !b.sock {
            return None;
        }
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

    pub(crate) fn sock(&mut self, tuple: Tuple, tgid: i32, fd: Option<i64>) -> &mut Sock {
        let hint = fd.and_then(|fd| self.role_hints.get(&(tgid, fd)).copied());
        let ingress = &self.cfg.ingress;
        self.socks.entry(tuple).or_insert_with(|| {
            let role = hint.unwrap_or_else(|| role_from_ports(&tuple));
            Sock {
                role,
                ingress: role == Role::Server && ingress.iter().any(|i| i.matches(tuple.local)),
                rx: None,
                responded: false,
                calls: Default::default(),
                answered: Vec::new(),
                called: false,
                queued: Vec::new(),
                multiplexed: false,
                callers: Vec::new(),
                leftover: Default::default(),
                answers: Vec::new(),
                unclaimed: Vec::new(),
            }
        })
    }
}
