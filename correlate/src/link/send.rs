//! Sends: which request a send carries, outgoing calls, and queueing the bytes sent.

use crate::engine::{Bracket, Call, Engine};
use crate::event::{Event, Sys, Tuple};
use crate::model::{Rule, SpanKind};
use crate::socket::Role;
use crate::stream::Tag;

impl Engine {
    /// Queues `len` bytes that `tid` sent on `sender` for `tag`, in a syscall begun at `started`.
    pub(crate) fn enqueue(
        &mut self,
        sender: Tuple,
        len: i64,
        tag: Option<Tag>,
        tid: i32,
        started: i64,
    ) {
        // Requests read along with the one answered are answered after it, in order; not on a
        // multiplexed connection, whose answers come in any order and name their own stretch.
        let also = self
            .socks
            .get_mut(&sender)
            .map(|s| {
                let answers = std::mem::take(&mut s.answers);
                let queued = std::mem::take(&mut s.queued);
                if s.multiplexed {
                    answers
                } else {
                    queued
                }
            })
            .unwrap_or_default();
        let also: Vec<Tag> = also.into_iter().map(|t| self.canon(t)).collect();
        let s = self
            .streams
            .entry((sender.local, sender.remote))
            .or_default();
        self.stats.dropped_segments += s.send(len, tag, tid, started) as u64;
        if !also.is_empty() {
            s.also(also);
        }
    }

    pub(crate) fn resolve_send(
        &mut self,
        ev: &Event,
        b: &Bracket,
        tgid: i32,
        ret: i64,
    ) -> Option<Tag> {
        let n = b.length(ret);
        self.unix_socket(b, ev.tid, tgid, true, n);
        let tuple = self.bracket_socket(b, tgid, b.send_tuple)?;
        let (tag, own) = match b.send_tag {
            Some(t) => t,
            // The bracket is no longer the thread's: its fd is passed along.
            None => self.send_tags(ev.tid, tuple, b.start, b.fd),
        };
        let tag = tag.map(|t| self.canon(t));
        if let Some(t) = tag.filter(|_| self.any_deferred()) {
            if self
                .socks
                .get(&tuple)
                .is_some_and(|s| s.role == Role::Server)
            {
                self.claim_leftover(ev.tid, t, b.start);
            }
        }
        // An answer while a call of the request is unanswered: a worker's answer another
        // thread wrote may still turn out to be the call's (see `Engine::answered_by_empty_write`).
        if let Some(t) = tag {
            if self
                .socks
                .get(&tuple)
                .is_some_and(|s| s.role == Role::Server)
            {
                self.note_unclaimed(ev.tid, t, b.start);
            }
        }
        if n > b.probed {
            self.enqueue(tuple, n - b.probed, tag, ev.tid, b.start);
        }
        let sent = b.delivered(ret, ev.ts);
        // A send with no span of its own writes answers another thread queued (gRPC): the
        // worker's span ended at its queue, not here (over the `grpc` recordings of runs 1–53
        // and six larger ones, 3 more requests exact of 12400, none fewer).
        let writes_for_another = own.is_none();
        let own = own.map(|o| self.canon(o)).or(tag);
        if let (Some(tag), Some(own)) = (tag, own) {
            if !writes_for_another {
                self.extend_span(own, sent, 0, n);
            }
            if let Some(r) = self.requests.get_mut(&tag.request) {
                if r.root == tag.span {
                    r.end = r.end.max(sent);
                    r.responded = true;
                }
            }
            let read_by = self.spans.get(&tag.span).map(|s| s.tid);
            if read_by.is_some_and(|r| r != ev.tid) {
                if let Some(t) = self.threads.get_mut(&ev.tid) {
                    t.worker = true;
                }
            }
        }
        // The send's events are the sending thread's work (a pool worker's reply included).
        own.filter(|_| tag.is_some())
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
        self.send_tags(tid, tuple, ts, fd).0
    }

    /// [`Engine::send_tag`], and the span of `tid` the send extends (a pool worker's reply
    /// carries the request's server tag but is the worker's work).
    pub(crate) fn send_tags(
        &mut self,
        tid: i32,
        tuple: Tuple,
        ts: i64,
        fd: Option<i64>,
    ) -> (Option<Tag>, Option<Tag>) {
        let tgid = self.threads.get(&tid).and_then(|t| t.tgid).unwrap_or(tid);
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            if let Some(t) = b.send_tag {
                return t;
            }
        }
        let suspended = self
            .threads
            .get(&tid)
            .is_some_and(|t| t.suspended.is_some());
        if suspended && self.sock(tuple, tgid, fd).role == Role::Server {
            self.resume_suspended(tid);
        }
        let sock = self.sock(tuple, tgid, fd);
        let tags = match sock.role {
            Role::Server => {
                let rx = sock.rx;
                let queued = sock.queued.clone();
                if rx.is_some() {
                    sock.responded = true;
                }
                match rx {
                    None => {
                        // Its unknown request answered: work since it read it was for that.
                        if let Some(t) = self.threads.get_mut(&tid) {
                            t.unknown = false;
                        }
                        self.close_stretch(tid, false);
                        (None, None)
                    }
                    Some(rx) => {
                        let rx = self.canon(rx);
                        match self.defer_answer(tid, tuple, ts) {
                            Some(tags) => tags,
                            None => {
                                self.answered(tid, rx.request);
                                for q in queued {
                                    self.answered(tid, q.request);
                                    self.extend_span(q, ts, 0, 0);
                                }
                                (Some(rx), Some(self.answer(tid, rx, ts)))
                            }
                        }
                    }
                }
            }
            Role::Client => {
                let t = self.client_call(tid, tuple, ts, fd);
                (t, t)
            }
        };
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            b.send_tag = Some(tags);
        }
        tags
    }

    /// `tid` begins to wait at `at`, in `epoll_wait` or an untimed signal wait (gRPC's callers
    /// poll their completion queue, or wait on its condition variable; CPython's GIL waits
    /// are timed and do not count): a thread that read a request and has made no call for it
    /// may be waiting for a call another thread sends for it.
    pub(crate) fn await_call(&mut self, tid: i32, at: i64) {
        let Some(cur) = self.current(tid) else {
            return;
        };
        if !self.read_by(cur.request, tid) || self.calls_from(tid, cur.request) > 0 {
            return;
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.awaited = Some(cur);
        }
        let tgid = self.threads.get(&tid).and_then(|t| t.tgid).unwrap_or(tid);
        if !self.awaiting.iter().any(|&(w, ..)| w == tid) {
            self.awaiting.push((tid, tgid, cur, at));
        }
    }

    /// A thread that never read a request, serving one a wakeup handed it, sends on a client
    /// connection of process `tgid`: the call of the thread that has waited longest (see
    /// [`Engine::await_call`]) with a request it read and made no call for (gRPC: whichever
    /// thread holds the transport writes the calls other threads queued). In the `grpcnode`
    /// recording of run27 an `event_engine` thread's send of another caller's call went to
    /// the request it had been woken for, and the server's work on that stream with it:
    /// 136 of 200 exact, 177 with this (`epoll_wait` only), no other of 262 CI-sized
    /// recordings lower; untimed signal waits too raised six more `grpcnode` sets by 2-7 of
    /// 289. Counting every futex wait (CPython's GIL) lowered eight `grpcnode` sets by 4-59.
    ///
    /// With no such waiter, the caller blocked in a wait as the helper writes
    /// ([`Engine::blocked_caller`]).
    fn call_for_another(&mut self, tid: i32) -> Option<Tag> {
        let t = self.threads.get(&tid).filter(|t| !t.served)?;
        let tgid = t.tgid.unwrap_or(tid);
        // A helper thread that took a request by a wakeup (not a pool worker's stretch).
        if self.current(tid).is_none_or(|c| self.is_pending(c)) {
            return None;
        }
        self.take_waiter(tgid, None)
            .or_else(|| self.blocked_caller(tid, tgid))
    }

    /// The request of a thread of process `tgid` other than helper `tid`, blocked in a futex
    /// or `epoll_wait` call as `tid` writes, that it read and made no call for, the one read
    /// first; not the request `tid` serves. The `grpcnode` model's front end (run48,
    /// grpcnode-2-5): the caller queued its call and waited with a timeout (`FUTEX_WAIT`,
    /// which [`Engine::await_call`] does not count), and the `event_engine` thread that had
    /// just read another request's answer wrote the call. Over the `grpc` and `grpcnode`
    /// recordings of runs 1–67 and the larger ones (137 recordings), 28,908 → 29,033 exact:
    /// `grpcnode` 10,836 → 10,958 of 11,800, `n3` and `n4` +7, `grpc` 12,607 → 12,603 (three
    /// sets lower by 1–2: a caller blocked for CPython's GIL whose own call came later).
    fn blocked_caller(&self, tid: i32, tgid: i32) -> Option<Tag> {
        let own = self.current(tid).map(|c| self.canon(c).request);
        self.threads
            .iter()
            .filter(|(&w, t)| w != tid && t.tgid == Some(tgid))
            .filter(|(_, t)| {
                t.bracket
                    .as_ref()
                    .is_some_and(|b| matches!(b.sys, Some(Sys::Futex) | Some(Sys::Wait)))
            })
            .filter_map(|(&w, t)| Some((w, self.canon(t.current?))))
            .filter(|&(w, c)| {
                Some(c.request) != own
                    && !self.is_pending(c)
                    && self.read_by(c.request, w)
                    && self.calls_from(w, c.request) == 0
            })
            .filter_map(|(w, c)| Some((self.requests.get(&c.request)?.start, w, c)))
            .min_by_key(|&(start, w, _)| (start, w))
            .map(|(_, _, c)| c)
    }

    /// The request of process `tgid` whose thread has waited longest for its first call (see
    /// [`Engine::await_call`]), not answered yet, and not `skip`'s (a thread, its request);
    /// its wait ends.
    fn take_waiter(&mut self, tgid: i32, skip: Option<(i32, Option<u64>)>) -> Option<Tag> {
        let (waiter, tag) = self
            .awaiting
            .iter()
            .filter(|&&(w, g, tag, _)| {
                let request = self.canon(tag).request;
                g == tgid
                    && skip.is_none_or(|(tid, own)| w != tid && own != Some(request))
                    && self.requests.get(&request).is_some_and(|r| !r.responded)
            })
            .min_by_key(|&&(w, _, _, at)| (at, w))
            .map(|&(w, _, tag, _)| (w, tag))?;
        self.awaiting.retain(|&(w, ..)| w != waiter);
        Some(self.canon(tag))
    }

    /// `tid` read its request's connection and found it empty (`EAGAIN`, [`Thread::yielded`])
    /// at `fd`: the code serving that request waits for its next bytes.
    pub(crate) fn found_own_empty(&mut self, tid: i32, tgid: i32, fd: Option<i64>) {
        let Some(tuple) = fd.and_then(|fd| self.fds.get(&(tgid, fd)).copied()) else {
            return;
        };
        let own = self
            .socks
            .get(&tuple)
            .filter(|s| s.role == Role::Server)
            .and_then(|s| s.rx)
            .map(|r| self.canon(r).request);
        let current = self.current(tid).map(|c| c.request);
        if own.is_some() && own == current {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.yielded = true;
            }
        }
    }

    /// A thread whose request's code just waited (its connection read empty) sends on a
    /// client connection: the thread runs other code now, and the send is the call of the
    /// request of its process that has waited longest for a first call (see
    /// [`Engine::await_call`]). Go's `net/http`: a thread's goroutine parks, the connection's
    /// background read finds nothing, and the thread runs the next runnable goroutine, the
    /// handler of a request another thread read (each recording's first requests, when four
    /// arrive at once).
    fn call_after_yield(&mut self, tid: i32) -> Option<Tag> {
        let t = self.threads.get_mut(&tid)?;
        if !std::mem::take(&mut t.yielded) {
            return None;
        }
        let tgid = t.tgid.unwrap_or(tid);
        let own = self.current(tid).map(|c| c.request);
        let tag = self.take_waiter(tgid, Some((tid, own)))?;
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = Some(tag);
        }
        Some(tag)
    }

    pub(crate) fn client_call(
        &mut self,
        tid: i32,
        tuple: Tuple,
        ts: i64,
        fd: Option<i64>,
    ) -> Option<Tag> {
        let for_another = self.call_for_another(tid);
        let current = for_another
            .or_else(|| self.call_after_yield(tid))
            .or_else(|| self.current(tid));
        let t = self.threads.get_mut(&tid)?;
        let event_loop = t.event_loop;
        let tgid = t.tgid.unwrap_or(tid);
        let key = fd.map(|fd| (tgid, fd));
        let owner = key.and_then(|k| self.conn_owner.get(&k).copied());
        let open_call = self.socks.get(&tuple).and_then(|s| s.calls.back().copied());
        // A connection that came up during the recording, though no connect of it was seen,
        // was opened before the recording for a request the recording cannot name (nginx
        // writes such a request once the handshake completes, amid the current request's
        // work). Its first call is that unknown request's, not the current one's.
        let connect_seen = key.is_some_and(|k| self.role_hints.get(&k) == Some(&Role::Client));
        let first_call = self
            .socks
            .get_mut(&tuple)
            .is_some_and(|s| !std::mem::replace(&mut s.called, true));
        if event_loop
            && owner.is_none()
            && !connect_seen
            && first_call
            && self.born.contains(&tuple)
        {
            return None;
        }
        let owner = owner.map(|o| self.canon(o));
        let open_call = open_call.map(|c| Call {
            tag: self.canon(c.tag),
            parent: self.canon(c.parent),
        });
        let woken = if event_loop && owner.is_none() && for_another.is_none() {
            self.take_woken(tid, tuple, current)
        } else {
            None
        };
        let (parent, rule) = match (current, owner, open_call) {
            // A helper writes a waiting caller's call: the caller's, whatever requests the
            // helper's own reads made due (gRPC's `event_engine` thread polls with
            // `epoll_wait` and reads answers, so it counts as an event loop). Over the `grpc`
            // and `grpcnode` recordings of runs 1–67 and the larger ones, 28,798 → 28,908
            // exact (`grpcnode` 10,735 → 10,836, `n1`, `n3`, `n4` +9; none lower).
            (Some(cur), ..) if for_another.is_some() => (cur, Rule::ThreadRequest),
            // An event loop may open connections for several requests before writing to them.
            (_, Some(o), _) if event_loop => (o, Rule::EventLoop),
            _ if woken.is_some() => woken?,
            (Some(cur), ..) if event_loop => (cur, Rule::EventLoop),
            (Some(cur), ..) => (cur, Rule::ThreadRequest),
            (None, Some(o), _) => (o, Rule::EventLoop),
            (None, None, Some(c)) => return Some(c.tag),
            // A thread with no request starts work: a stretch, placed when it answers.
            (None, None, None) if !event_loop && self.serving.contains(&tgid) => {
                (self.open_stretch(tid)?, Rule::ThreadRequest)
            }
            (None, None, None) => {
                let t = self.threads.get_mut(&tid)?;
                let (tag, rule, at) = t.handoff.take()?;
                let cur = self.new_span(tag, SpanKind::Internal, tid, at, None, rule);
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.current = Some(cur);
                }
                (cur, Rule::ThreadRequest)
            }
        };
        let held = self
            .requests
            .get(&parent.request)
            .filter(|_| self.is_pending(parent))
            .map_or(0, |r| r.spans.len());
        if held >= super::handoff::MAX_STRETCH_SPANS {
            self.close_stretch(tid, false);
            return None;
        }
        if let Some(c) = open_call {
            if c.tag.request == parent.request {
                return Some(c.tag);
            }
        }
        self.socks.get(&tuple)?;
        // The call a thread waited with none for is made.
        if !self.awaiting.is_empty() {
            let request = self.canon(parent).request;
            let awaiting = std::mem::take(&mut self.awaiting);
            self.awaiting = awaiting
                .into_iter()
                .filter(|&(_, _, a, _)| self.canon(a).request != request)
                .collect();
        }
        let tag = self.new_span(parent, SpanKind::Client, tid, ts, Some(tuple), rule);
        if let Some(sock) = self.socks.get_mut(&tuple) {
            // A blocking client has one call in flight: an older one of this thread's had its
            // reply not seen. Other threads' calls may share the connection (HTTP/2).
            if !event_loop {
                let spans = &self.spans;
                let mine = |c: &Call| spans.get(&c.tag.span).is_some_and(|s| s.tid == tid);
                sock.calls.retain(|c| !mine(c));
                sock.answered.retain(|c| !mine(c));
            }
            sock.calls.push_back(Call { tag, parent });
            sock.callers.retain(|&c| c != tid);
            sock.callers.push(tid);
            if sock.callers.len() > crate::engine::MAX_CALLS {
                sock.callers.remove(0);
            }
            if sock.calls.len() > crate::engine::MAX_CALLS {
                sock.calls.pop_front();
            }
        }
        Some(tag)
    }
}
