//! Receives: which request the bytes read belong to; new requests at the ingress.

use crate::engine::{Bracket, Call, Engine};
use crate::event::{Event, Tuple};
use crate::model::{Rule, SpanKind};
use crate::socket::Role;
use crate::stream::{Tag, Taken};

impl Engine {
    pub(crate) fn resolve_recv(
        &mut self,
        ev: &Event,
        b: &Bracket,
        tgid: i32,
        ret: i64,
    ) -> Option<Tag> {
        let n = b.length(ret);
        self.unix_socket(b, ev.tid, tgid, false, n);
        let tuple = self.bracket_socket(b, tgid, b.rcv_tuple)?;
        let at = b.data_ts.unwrap_or(ev.ts);
        if !self.held.is_empty() {
            self.release_held_for(tuple.remote, tuple.local);
        }
        let taken = self
            .streams
            .entry((tuple.remote, tuple.local))
            .or_default()
            .recv(n, ev.ts);
        let mut taken = crate::stream::Taken {
            tag: taken.tag.map(|t| self.canon(t)),
            rest: taken.rest.iter().map(|&t| self.canon(t)).collect(),
            ..taken
        };
        if taken.tag.is_none() && taken.unseen > 0 && b.unix.is_some() {
            taken.tag = self.unix_send_in_flight(ev, tuple);
        }
        self.stats.unseen_bytes += taken.unseen;
        self.stats.mixed_reads += u64::from(taken.mixed);
        let sock = self.sock(tuple, tgid, b.fd);
        let tag = match sock.role {
            Role::Server => {
                let open = sock.rx.filter(|_| !sock.responded);
                let ingress = sock.ingress;
                let open = open.map(|o| self.canon(o));
                self.serving.insert(tgid);
                // Bytes from a stretch not yet placed reach an ingress: its sender is a client
                // outside the traced services, and the request starts here.
                let taken = match taken.tag {
                    Some(t) if ingress && self.is_pending(t) => {
                        crate::stream::Taken { tag: None, ..taken }
                    }
                    _ => taken,
                };
                let tag = match (taken.tag, open) {
                    (Some(t), Some(o)) if o.request == t.request => Some(o),
                    (Some(t), _) => {
                        // The call's bytes were on their way from its first send to this
                        // read: what this thread did meanwhile is the call's wire time.
                        let sent = self.spans.get(&t.span).map(|s| s.start);
                        if let Some(sent) = sent {
                            self.wire(t, ev.tid, sent, at);
                        }
                        Some(self.new_span(
                            t,
                            SpanKind::Server,
                            ev.tid,
                            at,
                            Some(tuple),
                            Rule::ByteStream,
                        ))
                    }
                    (None, Some(o)) => Some(o),
                    (None, None) if ingress => {
                        let tag = self.new_request(ev, tuple, at, taken.sender);
                        self.start_at_wait(ev.tid, tag, taken.sent);
                        Some(tag)
                    }
                    (None, None) => None,
                };
                if let (Some(tag), Some(_)) = (tag, taken.tag) {
                    self.note_multiplexed(tuple, open, tag);
                    self.note_streams(tuple, &taken);
                }
                if let Some(tag) = tag {
                    if let Some(s) = self.socks.get_mut(&tuple) {
                        if s.rx.map(|r| r.span) != Some(tag.span) {
                            s.rx = Some(tag);
                            s.responded = false;
                        }
                    }
                    self.woke(ev.tid, [tag], None);
                    // Pipelined requests read along with it: each is served here too, and
                    // answered after it.
                    let more: Vec<Tag> = taken
                        .rest
                        .iter()
                        .copied()
                        .filter(|t| t.request != tag.request && !self.is_pending(*t))
                        .collect();
                    let mut batch = std::collections::VecDeque::from([tag]);
                    for t in more {
                        let span = self.new_span(
                            t,
                            SpanKind::Server,
                            ev.tid,
                            at,
                            Some(tuple),
                            Rule::ByteStream,
                        );
                        if let Some(s) = self.socks.get_mut(&tuple) {
                            s.queued.push(span);
                        }
                        self.extend_span(span, ev.ts, 0, 0);
                        self.woke(ev.tid, [span], None);
                        batch.push_back(span);
                    }
                    if let Some(t) = self.threads.get_mut(&ev.tid) {
                        t.batch = if batch.len() > 1 {
                            batch
                        } else {
                            Default::default()
                        };
                    }
                }
                // The thread turns to this request: its work on another one ended as this read
                // began, and a stretch it had not placed ends unplaced.
                match self.current(ev.tid) {
                    Some(_) if self.owns_stretch(ev.tid) => self.end_stretch(ev.tid),
                    Some(c) if tag.is_none_or(|t| t.request != c.request) => {
                        self.end_turn(ev.tid, b.start)
                    }
                    _ => {}
                }
                self.awaiting.retain(|&(w, ..)| w != ev.tid);
                if let Some(t) = self.threads.get_mut(&ev.tid) {
                    // A thread that reads a request it cannot place (a recording that began
                    // mid-request) serves that unknown request, not one a wakeup hands it.
                    t.current = tag;
                    t.served |= tag.is_some();
                    t.passed = None;
                    t.handoff = None;
                    t.unknown = tag.is_none();
                }
                tag
            }
            Role::Client => {
                // Answers of pool workers on a multiplexed connection go to the callers this
                // thread wakes next ([`crate::link`]'s multiplexed connections).
                let replied = if self.holds_deferred(&taken) {
                    match self.take_deferred(ev.tid, tuple, std::mem::take(&mut taken)) {
                        Some(rest) => {
                            taken = rest;
                            self.replied_calls(tuple, &taken)
                        }
                        None => Vec::new(),
                    }
                } else {
                    self.replied_calls(tuple, &taken)
                };
                // The reply was on its way from the callee's last write (its server span's
                // end) to this read: what this thread did meanwhile is the call's wire time.
                // A later read of the same reply counts from the previous one (the call's
                // end), so no stretch of time counts twice.
                let answered_at = taken
                    .tag
                    .and_then(|t| self.spans.get(&t.span))
                    .filter(|s| s.kind == SpanKind::Server)
                    .map(|s| s.end);
                if let (Some(c), Some(from)) = (replied.first(), answered_at) {
                    let read_before = self.spans.get(&c.tag.span).map_or(from, |s| s.end);
                    self.wire(c.tag, ev.tid, from.max(read_before), at);
                }
                if let Some(c) = replied.first() {
                    // The first call on a connection opened for a request is over; from now
                    // on the connection serves whichever request the thread sends for.
                    if let Some(fd) = b.fd {
                        self.conn_owner.remove(&(tgid, fd));
                    }
                    let parent = self.canon(c.parent);
                    if let Some(t) = self.threads.get_mut(&ev.tid) {
                        t.current = Some(parent);
                    }
                    self.woke(ev.tid, replied.iter().map(|c| c.parent), Some(tuple));
                    // The other calls the read answered end here too (a multiplexed
                    // connection's one write of several streams' answers, pipelined replies).
                    for c in replied.iter().skip(1) {
                        let call = self.canon(c.tag);
                        self.read_for(call, ev.tid, ev.ts, 0);
                    }
                } else if let Some(t) = self.threads.get_mut(&ev.tid) {
                    // A reply to a call nobody saw made, on a thread with no request: it was
                    // blocked in that call when the recording began, for an unknown request.
                    if t.current.is_none() && !t.event_loop {
                        t.unknown = true;
                        t.handoff = None;
                    }
                }
                replied.first().map(|c| self.canon(c.tag))
            }
        };
        if let Some(tag) = tag {
            self.read_for(tag, ev.tid, ev.ts, n);
        }
        tag
    }

    /// Thread `tid` read `n` bytes for span `tag` in a read that ended at `at`: the span lasts
    /// until then. A reply read by another thread than the one that called (a goroutine
    /// resumed on another OS thread) ends the call there.
    fn read_for(&mut self, tag: Tag, tid: i32, at: i64, n: i64) {
        self.extend_span(tag, at, n, 0);
        if let Some(s) = self
            .spans
            .get_mut(&tag.span)
            .filter(|s| s.kind == SpanKind::Client)
        {
            s.end_tid = (s.tid != tid).then_some(tid);
        }
    }

    /// Adds what thread `tid` did from `from` to `to` (its clock's split) to the wire time of
    /// `call`, when that is a client span: the thread waited for the bytes (blocked), waited
    /// for a CPU once they came (runnable), or ran other work before reading them (on-CPU).
    fn wire(&mut self, call: Tag, tid: i32, from: i64, to: i64) {
        if to <= from {
            return;
        }
        let Some(clock) = self.threads.get(&tid).map(|t| &t.clock) else {
            return;
        };
        let part = clock.at(to).since(&clock.at(from)).fitted(to - from);
        if let Some(s) = self
            .spans
            .get_mut(&call.span)
            .filter(|s| s.kind == SpanKind::Client)
        {
            s.wire.add(&part);
        }
    }

    /// The calls on client connection `tuple` that a read taking `taken` answers, oldest
    /// first, removed from the connection's calls in progress. The reply bytes name their
    /// requests (their sender served them); bytes nobody was seen sending answer the oldest
    /// call. A read that answers no call in progress continues the reply of the calls the
    /// previous reply read answered, when it names their requests (or names none and no call
    /// is in progress). A read naming only other requests answers none.
    fn replied_calls(&mut self, tuple: Tuple, taken: &Taken) -> Vec<Call> {
        let out = self.new_replies(tuple, taken);
        let Some(sock) = self.socks.get_mut(&tuple) else {
            return out;
        };
        if !out.is_empty() {
            sock.answered.clone_from(&out);
            return out;
        }
        let answered = std::mem::take(&mut sock.answered);
        let no_calls = sock.calls.is_empty();
        let named: Vec<u64> = taken
            .tag
            .iter()
            .chain(&taken.rest)
            .map(|t| self.canon(*t).request)
            .collect();
        let unnamed_tail = named.is_empty() && no_calls;
        let cont: Vec<Call> = answered
            .iter()
            .copied()
            .filter(|c| unnamed_tail || named.contains(&self.canon(c.tag).request))
            .collect();
        if let Some(sock) = self.socks.get_mut(&tuple) {
            sock.answered = answered;
        }
        cont
    }

    /// The calls in progress on `tuple` a read taking `taken` answers, removed from them.
    fn new_replies(&mut self, tuple: Tuple, taken: &Taken) -> Vec<Call> {
        let Some(calls) = self.socks.get(&tuple).map(|s| &s.calls) else {
            return Vec::new();
        };
        let requests: Vec<u64> = calls.iter().map(|c| self.canon(c.tag).request).collect();
        let named: Vec<u64> = taken
            .tag
            .iter()
            .chain(&taken.rest)
            .map(|t| t.request)
            .collect();
        // Bytes nobody was seen sending answer the oldest call, unless calls of several
        // threads share the connection (multiplexed): then they answer none.
        let shared = || {
            let mut tids = calls
                .iter()
                .filter_map(|c| self.spans.get(&c.tag.span).map(|s| s.tid));
            tids.next().is_some_and(|first| tids.any(|t| t != first))
        };
        let picked: Vec<usize> = if named.is_empty() {
            (!requests.is_empty() && !shared())
                .then_some(0)
                .into_iter()
                .collect()
        } else {
            (0..requests.len())
                .filter(|&i| named.contains(&requests[i]))
                .collect()
        };
        let Some(sock) = self.socks.get_mut(&tuple) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(picked.len());
        for i in picked.into_iter().rev() {
            out.extend(sock.calls.remove(i));
        }
        out.reverse();
        out
    }
}
