//! Multiplexed connections: one connection carrying several requests at once, answered by
//! pool workers in whatever order they finish.
//!
//! The testbed's `grpc` model: front-end threads (one per request) each send their call on one
//! shared HTTP/2 connection; the gRPC server's `event_engine` threads read the streams, often
//! several in one read, and a poller thread hands them to four pool workers, which call redis
//! and send their answers on the shared connection themselves. The connection names no
//! request for an answer: the last request read on it is most often another one (7% of
//! requests exact in one recording). What the kernel does show is where the answer goes: the
//! caller's process reads it, and the reading thread then wakes the caller's thread that waits
//! for it, one wake per answer, in the order the answers were read (gRPC completes a read's
//! streams in frame order).
//!
//! So a pool worker's stretch that answers on a *multiplexed* server socket (a request was
//! read on it while an earlier one was unanswered, both sent by traced callers) is not placed
//! at its answer. Its bytes carry the stretch; the thread that reads them on the caller's side
//! queues them, and each thread it then wakes that has a call in progress on that connection
//! takes the oldest: the stretch joins that call's request (rule `reply_order`). gRPC writes
//! the queued frames of several callers in one send, by whichever thread holds the transport,
//! so a woken caller may have no call of its own on the connection: the answer is then for the
//! request it serves. A stretch no woken caller took joins the request last read on the
//! connection when it answered (rule `handoff`, the rule for a connection that carries one
//! request at a time) after half the linger time; the reader drops what it did not hand out
//! when it waits again or reads that connection again, so that one missed wake does not shift
//! every later pair.
//!
//! A caller may learn of its answer with no wake the kernel shows: gRPC's callers poll the
//! channel themselves, and one woken to take over polling before its answer came sees the
//! reader's notification while it runs. So a caller that answers its own request while its
//! call on such a connection is unanswered takes the answer sent first after its call, of
//! those read there and handed to no one (still queued on a reader, or left over from a read
//! whose reader waited or read again), whose worker did not call out before the callee read
//! the call. Over the `grpc` recordings of runs 1–55 and the seven larger ones, 904 of the
//! 1068 answers so taken were right (`reply_unseen`); 834 of 1089 taking the one sent last.
//!
//! An event loop serving such a connection (a Node.js gRPC server) has no stretches: one write
//! of it answers every request read there whose last step a reply on another connection made
//! due, in the order they were made due (grpc-js writes the frames of every finished stream
//! in one `writev`).
//!
//! Requests read together on such a connection are not answered in order with its next write,
//! as a pipelining server's are: their answers name their own stretches.

use crate::engine::Engine;
use crate::event::Tuple;
use crate::model::{Rule, SpanKind};
use crate::stream::{Tag, Taken};

impl Engine {
    /// A read on server socket `tuple` took the bytes of request `new` while `open` (read
    /// earlier, from a traced caller too) was not answered: the socket is multiplexed.
    pub(crate) fn note_multiplexed(&mut self, tuple: Tuple, open: Option<Tag>, new: Tag) {
        if let Some(s) = self.socks.get_mut(&tuple) {
            if !s.responded && open.is_some_and(|o| o.request != new.request) {
                s.multiplexed = true;
            }
        }
    }

    /// A read on server socket `tuple` took `taken`: requests that threads other than the
    /// first one's sent, read at once, share the connection as streams (a pipelining client
    /// is one thread), so the socket is multiplexed. In one CI-sized `grpc` recording the
    /// server's first read of the channel took four callers' calls at once: 176 of 200
    /// requests exact, 184 with this.
    pub(crate) fn note_streams(&mut self, tuple: Tuple, taken: &Taken) {
        let caller = |t: &Tag| self.spans.get(&t.span).map(|s| s.tid);
        let Some(first) = taken.tag else {
            return;
        };
        let by = caller(&first);
        let others = taken
            .rest
            .iter()
            .any(|t| t.request != first.request && caller(t).is_some_and(|c| Some(c) != by));
        if others {
            if let Some(s) = self.socks.get_mut(&tuple) {
                s.multiplexed = true;
            }
        }
    }

    /// `tid` answers on server socket `tuple` at `at`. On a multiplexed socket a pool
    /// worker's stretch is not placed: its answer's bytes carry it to the caller's side.
    /// Returns what the send carries and the span it extends, or `None` when the ordinary
    /// rules apply.
    pub(crate) fn defer_answer(
        &mut self,
        tid: i32,
        tuple: Tuple,
        at: i64,
    ) -> Option<(Option<Tag>, Option<Tag>)> {
        if !self.socks.get(&tuple).is_some_and(|s| s.multiplexed) {
            return None;
        }
        let last = self
            .threads
            .get(&tid)
            .and_then(|t| t.last)
            .map(|l| self.canon(l));
        let stretch = if self.owns_stretch(tid) {
            self.current(tid)
        } else {
            // A second send of the same answer.
            last.filter(|&l| self.is_deferred(l))
        };
        let (stretch, own) = match stretch {
            Some(s) => (s, true),
            None => {
                // An event loop's answers of the streams it finished.
                if let Some((first, own)) = self.loop_answers(tid, tuple) {
                    return Some((Some(first), Some(own)));
                }
                // Not a worker's own answer: the connection's own frames (HTTP/2 settings,
                // window updates, pings), or the answers it writes for workers that set their
                // stretches aside at their queue (gRPC queues a worker's answer when another
                // thread holds the transport, and that thread writes it): every stretch of its
                // process set aside and not answered yet, oldest first
                // ([`Engine::claim_unanswered`]); the others ride along in the same bytes.
                let mut claimed = self.claim_unanswered(tid).into_iter();
                let Some(first) = claimed.next() else {
                    let tgid = self.threads.get(&tid).and_then(|t| t.tgid).unwrap_or(tid);
                    self.empty_writes.insert(tuple, (tgid, at));
                    return Some((None, None));
                };
                let rest: Vec<Tag> = claimed.collect();
                for o in &rest {
                    if let Some(p) = self.pending.get_mut(&o.request) {
                        p.deferred.get_or_insert(at);
                    }
                }
                if let Some(s) = self.socks.get_mut(&tuple) {
                    s.answers = rest;
                }
                (first, false)
            }
        };
        let p = self.pending.get_mut(&stretch.request)?;
        p.deferred.get_or_insert(at);
        if !own {
            // The writer's send is not the worker's work: no span of the writer to extend.
            return Some((Some(stretch), None));
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = None;
            t.last = Some(stretch);
            t.stretch_start = at;
        }
        Some((Some(stretch), Some(stretch)))
    }

    /// Event loop `tid` writes on multiplexed server socket `tuple`: the answers of the requests
    /// read there whose work a reply on another connection made due and that have not called
    /// out since (their last step ran), in the order they were made due; the first is
    /// returned, the others ride along in the same bytes, with the request whose span the
    /// write extends. The `grpcnode` model: grpc-js writes the answers of every stream whose
    /// handler finished in one `writev`. Over 16 CI-sized `grpcnode` recordings and `n1`-`n4`,
    /// exact requests of 4100: 3421 with the write in the first request's span, 3443 with the
    /// callbacks woken by the latest read sharing the time before it (the last one's
    /// `CALLBACK_HEAD_NS` before the write), 3483 with even shares.
    fn loop_answers(&mut self, tid: i32, tuple: Tuple) -> Option<(Tag, Tag)> {
        let t = self.threads.get(&tid).filter(|t| t.event_loop)?;
        // Requests woken by the loop's latest read that got no callback time since: their
        // callbacks ran after the loop's last syscall, with none of their own.
        let silent: Vec<Tag> = t
            .woken
            .iter()
            .filter(|w| w.via.is_some() && w.read == t.reads && !t.stepped.contains(&w.tag.request))
            .map(|w| w.tag)
            .collect();
        let read_here = |e: &Engine, w: Tag| {
            e.requests.get(&e.canon(w).request).is_some_and(|r| {
                !r.responded
                    && r.spans.iter().any(|id| {
                        e.spans.get(id).is_some_and(|s| {
                            s.kind == SpanKind::Server && s.tid == tid && s.tuple == Some(tuple)
                        })
                    })
            })
        };
        let due: Vec<Tag> = t
            .woken
            .iter()
            .filter(|w| w.via.is_some() && read_here(self, w.tag))
            .map(|w| self.canon(w.tag))
            .collect();
        let (&first, rest) = due.split_first()?;
        let silent: Vec<Tag> = silent
            .into_iter()
            .map(|w| self.canon(w))
            .filter(|w| due.iter().any(|d| d.request == w.request))
            .collect();
        for d in &due {
            self.answered(tid, d.request);
        }
        if let Some(s) = self.socks.get_mut(&tuple) {
            s.answers = rest.to_vec();
        }
        // The flush comes after the last of them: the others' callbacks ran before its, and
        // each gets an even share of the time since the loop's last syscall.
        let own = match silent.split_last() {
            Some((&last, before)) => {
                if let Some(t) = self.threads.get_mut(&tid).filter(|_| !before.is_empty()) {
                    t.ran_silently = Some(crate::engine::Silent {
                        tags: before.to_vec(),
                        flush: true,
                    });
                }
                last
            }
            None => first,
        };
        Some((first, own))
    }

    /// Whether `tag` is a stretch deferred at its answer, not placed yet.
    fn is_deferred(&self, tag: Tag) -> bool {
        self.pending
            .get(&self.canon(tag).request)
            .is_some_and(|p| p.deferred.is_some())
    }

    /// The stretches of `tid`'s process set aside at an untimed signal wait with no answer of
    /// their own, oldest first, taken off their threads and the process's unanswered
    /// stretches. A worker queues its answer for the thread that holds the transport and goes
    /// back to its queue; that thread flushes every answer queued meanwhile in one write (in
    /// `run53`'s `grpc` recording, one 130-byte write carried the answers of two workers set
    /// aside 107 µs apart, and the front's reader woke both callers). Over the 53 CI-sized
    /// `grpc` recordings of runs 1–53 and six larger ones (12400 requests), exact: 11043
    /// taking the stretch set aside last, 11264 the last two, 11366 all of them.
    fn claim_unanswered(&mut self, tid: i32) -> Vec<Tag> {
        let Some(tgid) = self.threads.get(&tid).and_then(|t| t.tgid) else {
            return Vec::new();
        };
        let open = |e: &Engine, s: Tag| {
            e.pending
                .get(&e.canon(s).request)
                .is_some_and(|p| p.deferred.is_none())
        };
        let set_aside = self
            .threads
            .iter()
            .filter(|(_, t)| t.tgid == Some(tgid))
            .filter_map(|(&w, t)| t.suspended.map(|(s, at)| (at, Some(w), s)))
            .filter(|&(_, _, s)| open(self, s));
        let retired = self
            .unanswered
            .iter()
            .filter(|&&(g, s, _)| g == tgid && open(self, s))
            .map(|&(_, s, at)| (at, None, s));
        let mut all: Vec<(i64, Option<i32>, Tag)> = set_aside.chain(retired).collect();
        all.sort_by_key(|&(at, w, _)| (at, w));
        for &(_, thread, stretch) in &all {
            match thread {
                Some(w) => {
                    if let Some(t) = self.threads.get_mut(&w) {
                        t.suspended = None;
                    }
                }
                None => self
                    .unanswered
                    .retain(|&(_, s, _)| s.request != stretch.request),
            }
        }
        all.into_iter().map(|(_, _, s)| self.canon(s)).collect()
    }

    /// Whether some stretch is deferred at its answer (only then is there one to take).
    pub(crate) fn any_deferred(&self) -> bool {
        self.pending.values().any(|p| p.deferred.is_some())
    }

    /// Whether a read that took `taken` holds answers of stretches deferred at their answer.
    pub(crate) fn holds_deferred(&self, taken: &Taken) -> bool {
        !self.pending.is_empty()
            && taken
                .tag
                .iter()
                .chain(&taken.rest)
                .any(|&t| self.is_deferred(t))
    }

    /// Reader `tid` took `taken` from client connection `tuple`, which
    /// [holds](Engine::holds_deferred) answers of stretches not placed yet: they are queued on
    /// the reader for the callers it wakes next. Returns what is left for the ordinary rules,
    /// or `None` when the read held only such answers.
    pub(crate) fn take_deferred(&mut self, tid: i32, tuple: Tuple, taken: Taken) -> Option<Taken> {
        let tags: Vec<Tag> = taken.tag.iter().chain(&taken.rest).copied().collect();
        let (deferred, rest): (Vec<Tag>, Vec<Tag>) =
            tags.into_iter().partition(|&t| self.is_deferred(t));
        // Answers of an earlier read that no woken caller took are not handed to the callers
        // this read wakes (that would shift every pair), unless both reads are of one drain
        // of the socket ([`crate::engine::Thread::draining`]).
        let old = match self.threads.get_mut(&tid) {
            Some(t) if t.draining != Some(tuple) => {
                let (old, kept): (Vec<_>, Vec<_>) =
                    t.replies.drain(..).partition(|(_, c)| *c == tuple);
                t.replies = kept.into();
                t.handed.clear();
                old
            }
            // The callers woken since the drain's previous read took their answers; a caller
            // woken after this read takes one of this read's.
            Some(t) => {
                t.handed.clear();
                Vec::new()
            }
            None => Vec::new(),
        };
        self.leave_over(old.into());
        if let Some(t) = self.threads.get_mut(&tid) {
            t.draining = Some(tuple);
            for d in deferred {
                if !t.replies.iter().any(|(r, _)| r.request == d.request) {
                    t.replies.push_back((d, tuple));
                }
            }
            while t.replies.len() > crate::engine::MAX_CALLS {
                t.replies.pop_front();
            }
        }
        let mut rest = rest.into_iter();
        let tag = rest.next()?;
        Some(Taken {
            tag: Some(tag),
            rest: rest.collect(),
            ..taken
        })
    }

    /// Answers a reader read and woke no caller for: kept on their connection for the caller
    /// that answers its own request next.
    pub(crate) fn leave_over(&mut self, replies: std::collections::VecDeque<(Tag, Tuple)>) {
        for (stretch, tuple) in replies {
            if let Some(s) = self.socks.get_mut(&tuple) {
                s.leftover.push_back(stretch);
                while s.leftover.len() > crate::engine::MAX_CALLS {
                    s.leftover.pop_front();
                }
                if !self.leftover.contains(&tuple) {
                    self.leftover.push(tuple);
                }
            }
        }
    }

    /// `tid` answers its request `tag` at `at` while its call on a multiplexed connection is
    /// unanswered: its answer was read with no wake of `tid` the kernel shows (gRPC's caller
    /// polls the channel itself and may be woken by another caller before its answer comes).
    /// It takes the answer sent first after its call, among those read on that connection
    /// and handed to no caller (a reader's queue, or left over from an earlier read), whose
    /// worker did not call out before the callee read its call ([`Engine::could_answer`]).
    /// Over the `grpc` recordings of runs 1–55 and the seven larger ones, such answers were
    /// right 834 of 1089 times taking the one sent last, 904 of 1068 this way (the `grpc` and
    /// `grpcnode` recordings: 24111 → 24184 requests exact of 26100, 25 sets higher, 7 lower
    /// by 1–5).
    pub(crate) fn claim_leftover(&mut self, tid: i32, tag: Tag, at: i64) {
        let request = self.canon(tag).request;
        // Connections closed since keep nothing to take.
        let socks = &self.socks;
        self.leftover.retain(|t| socks.contains_key(t));
        let mut conns: Vec<Tuple> = self.leftover.clone();
        for t in self.threads.values() {
            for (_, c) in &t.replies {
                if !conns.contains(c) {
                    conns.push(*c);
                }
            }
        }
        for tuple in conns {
            let Some(s) = self.socks.get(&tuple) else {
                continue;
            };
            let mine = s.calls.iter().rposition(|c| {
                self.spans.get(&c.tag.span).is_some_and(|sp| sp.tid == tid)
                    && self.canon(c.tag).request == request
            });
            // Its own call, made at its start; or a call another thread wrote for it (gRPC
            // writes the queued frames of several callers in one send), made after its
            // request began, when it has called on this connection before and no other
            // process's work has joined its request yet.
            let called = match mine {
                Some(j) => s
                    .calls
                    .get(j)
                    .and_then(|c| self.spans.get(&c.tag.span))
                    .map(|sp| sp.start),
                None if self.called_on(tid, tuple) && !self.reached_out(request, tid) => {
                    self.requests.get(&request).map(|r| r.start)
                }
                None => None,
            };
            let Some(called) = called else {
                continue;
            };
            // When the callee read its call, looked up once for every candidate answer.
            let read = mine
                .and_then(|j| s.calls.get(j))
                .and_then(|c| self.callee_read(c.tag))
                .map(|sp| sp.start);
            let sent = |t: Tag| {
                if !self.called_after(t, read) {
                    return None;
                }
                self.pending
                    .get(&self.canon(t).request)
                    .and_then(|p| p.deferred)
                    .filter(|&at| at > called)
            };
            // (sent, reader holding it or None for the connection's leftovers, stretch)
            let left = s.leftover.iter().filter_map(|&t| Some((sent(t)?, None, t)));
            let queued = self.threads.iter().flat_map(|(&r, th)| {
                th.replies
                    .iter()
                    .filter(|(_, c)| *c == tuple)
                    .filter_map(move |&(t, _)| Some((sent(t)?, Some(r), t)))
            });
            let Some((_, reader, stretch)) = left.chain(queued).min_by_key(|&(at, r, _)| (at, r))
            else {
                continue;
            };
            match reader {
                Some(r) => {
                    if let Some(th) = self.threads.get_mut(&r) {
                        th.replies.retain(|(t, _)| t.request != stretch.request);
                    }
                }
                None => {
                    if let Some(s) = self.socks.get_mut(&tuple) {
                        s.leftover.retain(|t| t.request != stretch.request);
                    }
                }
            }
            match mine {
                Some(j) => self.answer_call(tuple, j, stretch, at, Rule::ReplyUnseen),
                None => {
                    let serving = self.canon(tag);
                    self.place(stretch, serving, Rule::ReplyUnseen, at);
                }
            }
            self.prune_leftover(tuple);
            return;
        }
    }

    /// Drops from `tuple`'s leftover answers those another rule placed.
    fn prune_leftover(&mut self, tuple: Tuple) {
        let keep: Vec<bool> = match self.socks.get(&tuple) {
            Some(s) => s.leftover.iter().map(|&t| self.is_deferred(t)).collect(),
            None => return,
        };
        if let Some(s) = self.socks.get_mut(&tuple) {
            let mut keep = keep.into_iter();
            s.leftover.retain(|_| keep.next().unwrap_or(false));
            if s.leftover.is_empty() {
                self.leftover.retain(|t| *t != tuple);
            }
        }
    }

    /// Whether `request` reached a process other than `tid`'s from it: a span of another
    /// process under one of `tid`'s process.
    fn reached_out(&self, request: u64, tid: i32) -> bool {
        let pid = self.threads.get(&tid).and_then(|t| t.tgid);
        let of = |id: u64| self.spans.get(&id).map(|s| s.pid);
        self.requests.get(&request).is_some_and(|r| {
            r.spans.iter().any(|&id| {
                self.spans.get(&id).is_some_and(|s| {
                    s.pid != pid && s.parent.and_then(of).is_some_and(|p| p == pid)
                })
            })
        })
    }

    /// Stretch `cur` of `tid` reaches its queue after another thread of its process wrote on a
    /// multiplexed server socket with nothing set aside, after the stretch's last reply: that
    /// write carried its answer (gRPC's worker queued it, then waited on a mutex or for
    /// CPython's GIL before its queue). The stretch is deferred at that write and left over on
    /// the caller's end of the connection, for the caller that answers with its call
    /// unanswered ([`Engine::claim_leftover`]). run60's `grpc` recording, grpc-2-25: the
    /// worker reached its queue 166 µs after the write, and its stretch was dropped. Over the
    /// `grpc` and `grpcnode` recordings of runs 1–68 and the larger ones (139), 29,401 →
    /// 29,449 exact, 29 higher, 2 lower by 1; the other 323 kept recordings the same but
    /// `models/model-grpc` (183 → 184).
    pub(crate) fn answered_by_empty_write(&mut self, tid: i32, cur: Tag) -> bool {
        let Some(tgid) = self.threads.get(&tid).and_then(|t| t.tgid) else {
            return false;
        };
        if self.empty_writes.is_empty() {
            return false;
        }
        let last_reply = self
            .calls_of(tid, cur.request)
            .map(|s| s.end)
            .max()
            .unwrap_or(i64::MIN);
        let found = self
            .empty_writes
            .iter()
            .filter(|&(_, &(g, f))| g == tgid && f > last_reply)
            .map(|(&t, &(_, f))| (f, t))
            .min_by_key(|&(f, _)| f);
        let Some((f, tuple)) = found else {
            return false;
        };
        let front = Tuple {
            local: tuple.remote,
            remote: tuple.local,
        };
        if !self.socks.contains_key(&front) {
            return false;
        }
        self.empty_writes.remove(&tuple);
        if let Some(p) = self.pending.get_mut(&cur.request) {
            p.deferred = Some(f);
        }
        // A caller that answered after the write with its call unanswered took this answer
        // (run60's `grpc` recording, grpc-3-35: the caller answered 275 µs before the worker
        // reached its queue). With ccc9250's rules over the 139 `grpc` and `grpcnode`
        // recordings, 29,449 → 29,466 exact, 13 higher, none lower.
        let taker = self.socks.get(&front).and_then(|s| {
            s.unclaimed
                .iter()
                .filter(|&&(c, answered)| {
                    answered >= f && self.spans.get(&c.span).is_some_and(|sp| sp.start < f)
                })
                .min_by_key(|&&(c, _)| self.spans.get(&c.span).map(|sp| sp.start))
                .map(|&(c, _)| c)
        });
        if let Some(c) = taker {
            let j = self
                .socks
                .get(&front)
                .and_then(|s| s.calls.iter().position(|x| x.tag.span == c.span));
            if let Some(s) = self.socks.get_mut(&front) {
                s.unclaimed.retain(|&(x, _)| x.span != c.span);
            }
            if let Some(j) = j {
                self.answer_call(front, j, cur, f, Rule::ReplyUnseen);
                return true;
            }
        }
        if let Some(s) = self.socks.get_mut(&front) {
            s.leftover.push_back(cur);
        }
        if !self.leftover.contains(&front) {
            self.leftover.push(front);
        }
        true
    }

    /// Thread `tid` answers its request `tag` at `at`: its calls on connections still
    /// unanswered are noted as unclaimed.
    pub(crate) fn note_unclaimed(&mut self, tid: i32, tag: Tag, at: i64) {
        // Only a write with nothing set aside, not taken yet, can turn out to be the answer.
        if self.empty_writes.is_empty() {
            return;
        }
        let request = self.canon(tag).request;
        let open: Vec<(Tag, Tuple)> = self
            .calls_of(tid, request)
            .filter(|s| s.bytes_in == 0)
            .filter_map(|s| {
                Some((
                    Tag {
                        request,
                        span: s.id,
                    },
                    s.tuple?,
                ))
            })
            .collect();
        for (c, tuple) in open {
            if let Some(s) = self.socks.get_mut(&tuple) {
                if s.calls.iter().any(|x| x.tag.span == c.span) {
                    s.unclaimed.push((c, at));
                    if s.unclaimed.len() > crate::engine::MAX_CALLS {
                        s.unclaimed.remove(0);
                    }
                }
            }
        }
    }

    /// Stretch `stretch` answered call `j` of client connection `tuple`: it joins the call's
    /// request under the callee's server span that read the call, when the recording has it.
    fn answer_call(&mut self, tuple: Tuple, j: usize, stretch: Tag, at: i64, rule: Rule) {
        let Some(call) = self.socks.get_mut(&tuple).and_then(|s| s.calls.remove(j)) else {
            return;
        };
        let call_tag = self.canon(call.tag);
        self.extend_span(call_tag, at, 0, 0);
        let server = self.callee_read(call_tag).map(|s| s.id);
        let parent = Tag {
            request: call_tag.request,
            span: server.unwrap_or(call_tag.span),
        };
        self.place(stretch, parent, rule, at);
    }

    /// `reader` wakes `target` at `at`: when `target` calls on a connection `reader` read
    /// answers of unplaced stretches from, the oldest such answer is for `target`'s request.
    pub(crate) fn reply_woke(&mut self, reader: i32, target: i32, at: i64) {
        let Some(tuples) = self
            .threads
            .get(&reader)
            .filter(|t| !t.replies.is_empty() && !t.handed.contains(&target))
            .map(|t| t.replies.iter().map(|r| r.1).collect::<Vec<Tuple>>())
        else {
            return;
        };
        for tuple in &tuples {
            self.drop_answered_calls(*tuple, target);
        }
        let Some(queue) = self.threads.get(&reader).map(|t| &t.replies) else {
            return;
        };
        let found = queue.iter().enumerate().find_map(|(i, (stretch, tuple))| {
            let calls = &self.socks.get(tuple)?.calls;
            // A call of a stretch not placed yet is no caller's (a thread's connection frames,
            // such as a settings ack, written as work no request was placed for): the answer
            // would join no request.
            let mine = |c: &crate::engine::Call| {
                self.spans.get(&c.tag.span).is_some_and(|s| s.tid == target)
                    && !self.is_pending(c.tag)
            };
            if !calls.iter().any(mine) && !self.called_on(target, *tuple) {
                return None;
            }
            let j = calls.iter().rposition(mine);
            if j.and_then(|j| calls.get(j))
                .is_some_and(|c| !self.could_answer(*stretch, c.tag))
            {
                return None;
            }
            Some((i, j, *stretch, *tuple))
        });
        let Some((i, call, stretch, tuple)) = found else {
            return;
        };
        if let Some(t) = self.threads.get_mut(&reader) {
            t.handed.push(target);
        }
        // A call sent by another thread (gRPC writes the queued frames of several callers in
        // one send): the answer is for the request the woken thread serves.
        let serving = match call {
            Some(_) => None,
            None => match self.serving_request(target) {
                Some(r) => Some(r),
                None => return,
            },
        };
        if let Some(t) = self.threads.get_mut(&reader) {
            t.replies.remove(i);
        }
        match (call, serving) {
            (Some(j), _) => self.answer_call(tuple, j, stretch, at, Rule::ReplyOrder),
            (None, Some(parent)) => {
                self.place(stretch, parent, Rule::ReplyOrder, at);
            }
            (None, None) => {}
        }
    }

    /// The callee's server span that read call `call`, when the recording has it.
    fn callee_read(&self, call: Tag) -> Option<&crate::model::Span> {
        let call = self.canon(call);
        self.requests.get(&call.request).and_then(|r| {
            r.spans
                .iter()
                .filter_map(|id| self.spans.get(id))
                .find(|s| s.kind == SpanKind::Server && s.parent == Some(call.span))
        })
    }

    /// Whether stretch `stretch` can be the answer to call `call`: a worker's first call for
    /// a request comes after the request was read, so a stretch that called out before the
    /// callee's server read `call` serves an earlier request.
    fn could_answer(&self, stretch: Tag, call: Tag) -> bool {
        self.called_after(stretch, self.callee_read(call).map(|s| s.start))
    }

    /// Whether stretch `stretch` made its first call no earlier than `read` (true when
    /// either is unknown).
    fn called_after(&self, stretch: Tag, read: Option<i64>) -> bool {
        let first_call = self
            .requests
            .get(&self.canon(stretch).request)
            .and_then(|r| {
                r.spans
                    .iter()
                    .filter(|&&id| id != r.root)
                    .filter_map(|id| self.spans.get(id))
                    .filter(|s| s.kind == SpanKind::Client)
                    .map(|s| s.start)
                    .min()
            });
        match (read, first_call) {
            (Some(read), Some(first)) => first >= read,
            _ => true,
        }
    }

    /// Forgets `tid`'s calls on `tuple` whose request has answered or is gone: a blocking
    /// caller's call whose answer was taken by another rule.
    fn drop_answered_calls(&mut self, tuple: Tuple, tid: i32) {
        let Some(calls) = self.socks.get(&tuple).map(|s| &s.calls) else {
            return;
        };
        let keep: Vec<bool> = calls
            .iter()
            .map(|c| {
                self.spans.get(&c.tag.span).is_none_or(|s| s.tid != tid)
                    || self
                        .requests
                        .get(&self.canon(c.tag).request)
                        .is_some_and(|r| !r.responded)
            })
            .collect();
        if let Some(s) = self.socks.get_mut(&tuple) {
            let mut keep = keep.into_iter();
            s.calls.retain(|_| keep.next().unwrap_or(true));
        }
    }

    /// Whether `tid` has made a call on client connection `tuple` (kept as the connection's
    /// callers).
    fn called_on(&self, tid: i32, tuple: Tuple) -> bool {
        self.socks
            .get(&tuple)
            .is_some_and(|s| s.callers.contains(&tid))
    }

    /// The request `tid` serves and has not answered: the one it last read on a server socket.
    fn serving_request(&self, tid: i32) -> Option<Tag> {
        let t = self.threads.get(&tid)?;
        let read = t.current.or_else(|| {
            t.woken
                .iter()
                .rev()
                .find(|w| w.via.is_none())
                .map(|w| w.tag)
        })?;
        let read = self.canon(read);
        self.requests
            .get(&read.request)
            .filter(|r| !r.responded && !self.pending.contains_key(&r.id))
            .map(|_| read)
    }

    /// Drops the stretches deferred at an answer that no woken caller took within half the
    /// linger time (all of them when `all`): the kernel showed no caller that took the answer,
    /// and no other link is known to be right. Joining such a stretch to the request last read
    /// on the connection where it was sent was right 8 of 155 times over the 514 kept
    /// recordings, and the wrong request then had a span on another request's segment: over
    /// the `grpc` and `grpcnode` recordings of runs 1-60 and the larger ones (123 recordings),
    /// 26065 requests exact with that fallback, 26170 without it (53 higher, none lower). The
    /// summary counts them among the unresolved stretches.
    pub(crate) fn expire_deferred(&mut self, all: bool) {
        let cutoff = self.now.saturating_sub(self.cfg.linger_ns / 2);
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deferred.is_some_and(|at| all || at < cutoff))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let stretch = Tag {
                request: id,
                span: self.requests.get(&id).map_or(0, |r| r.root),
            };
            self.settle(stretch, false);
        }
        // Stretches set aside at an untimed signal wait whose answer nobody wrote meanwhile: their
        // fallback, as for a stretch that answers nothing.
        let old = |at: i64| all || at < cutoff;
        let mut due: Vec<Tag> = Vec::new();
        self.unanswered.retain(|&(_, s, at)| {
            if old(at) {
                due.push(s);
            }
            !old(at)
        });
        for t in self.threads.values_mut() {
            if let Some((s, _)) = t.suspended.filter(|&(_, at)| old(at)) {
                t.suspended = None;
                due.push(s);
            }
        }
        for s in due {
            if self
                .pending
                .get(&self.canon(s).request)
                .is_some_and(|p| p.deferred.is_none())
            {
                self.settle(s, true);
            }
        }
    }
}
