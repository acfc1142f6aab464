//! Hand-off: work a thread does before it is known which request it is for.
//!
//! A pool worker (Python `ThreadPoolExecutor`, Java `newFixedThreadPool`, gunicorn gthread)
//! takes a request from a queue that the reading thread filled; the kernel shows a futex wake
//! at best, and a worker already awake takes the next item with no wake at all, while
//! CPython's GIL wakes threads of other requests all the time. What the kernel does show is
//! the worker's reply: it writes on the connection the request arrived on, and that socket
//! names the request. So a thread with no request that starts work (a call on an outgoing
//! connection) opens a *stretch* under a placeholder request; its spans, the spans its calls
//! cause downstream and its events' labels are held under the placeholder, and when the
//! thread answers on a server socket the whole stretch joins that socket's request (rule
//! `handoff`). A stretch that answers nothing falls back to what a wakeup handed the thread
//! when it began (rule `wakeup`), or is dropped and counted (`Stats::unresolved_stretches`).
//!
//! Only threads of a process that reads requests on server sockets open stretches (a load
//! generator's calls are not work for a request), and a stretch holds at most
//! [`MAX_STRETCH_SPANS`] spans, so memory stays bounded when one never answers.
//!
//! A stretch cannot begin before the thread finished its previous reply, nor before its
//! request arrived: its span starts at the later of the two.

use crate::engine::{Engine, Pending, DROPPED};
use crate::model::{Edge, Request, Rule, SpanKind};
use crate::stream::Tag;

/// Spans a stretch may hold before it is dropped as answering nothing (a pool worker's work
/// for one request is a few calls; a thread that calls out forever serves no request).
pub(crate) const MAX_STRETCH_SPANS: usize = 256;

impl Engine {
    /// `tag` with its request id followed through placed stretches.
    pub(crate) fn canon(&self, tag: Tag) -> Tag {
        let mut request = tag.request;
        while let Some(&(to, _)) = self.alias.get(&request) {
            if to == request {
                break;
            }
            request = to;
        }
        Tag {
            request,
            span: tag.span,
        }
    }

    /// Whether `tag` is a stretch not yet placed.
    pub(crate) fn is_pending(&self, tag: Tag) -> bool {
        self.pending.contains_key(&self.canon(tag).request)
    }

    /// Whether `tid` works on a stretch of its own not yet placed (a server downstream of a
    /// stretch, such as redis answering the worker's call, works on one it does not own).
    pub(crate) fn owns_stretch(&self, tid: i32) -> bool {
        self.current(tid).is_some_and(|c| {
            self.is_pending(c)
                && self
                    .requests
                    .get(&c.request)
                    .and_then(|r| self.spans.get(&r.root))
                    .is_some_and(|s| s.tid == tid)
        })
    }

    /// Whether `tid` goes on with stretch `c` begun by another thread of its own process (a
    /// goroutine that resumed on `tid` at its call's reply).
    pub(crate) fn continues_stretch(&self, tid: i32, c: Tag) -> bool {
        if !self.is_pending(c) {
            return false;
        }
        let owner = self
            .requests
            .get(&c.request)
            .and_then(|r| self.spans.get(&r.root))
            .and_then(|s| s.pid);
        let mine = self.threads.get(&tid).and_then(|t| t.tgid);
        owner.is_some() && owner == mine
    }

    /// Opens a stretch on `tid` under a new placeholder request and makes it the thread's
    /// current work; what a wakeup handed the thread is kept as the fallback.
    pub(crate) fn open_stretch(&mut self, tid: i32) -> Option<Tag> {
        self.retire_suspended(tid);
        let t = self.threads.get_mut(&tid)?;
        let (start, handoff) = (t.stretch_start, t.handoff.take());
        let nowhere = crate::event::Endpoint { addr: 0, port: 0 };
        let ingress = crate::event::Tuple {
            local: nowhere,
            remote: nowhere,
        };
        let tag = self.open_request(ingress, None, tid, start, SpanKind::Internal, None);
        self.pending.insert(
            tag.request,
            Pending {
                handoff,
                rows: Vec::new(),
                deferred: None,
            },
        );
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = Some(tag);
        }
        Some(tag)
    }

    /// Joins the stretch `stretch` (a placeholder's root) to `parent`'s request by `rule`.
    /// Returns the stretch's span, now in the request, or `None` when the request is gone.
    pub(crate) fn place(&mut self, stretch: Tag, parent: Tag, rule: Rule, at: i64) -> Option<Tag> {
        let parent = self.canon(parent);
        let p = stretch.request;
        let pending = self.pending.remove(&p)?;
        let placeholder = self.requests.remove(&p)?;
        let Some(root_start) = self
            .requests
            .get(&parent.request)
            .filter(|_| !self.pending.contains_key(&parent.request))
            .map(|r| r.start)
        else {
            self.drop_placeholder(p, placeholder);
            return None;
        };
        let root = placeholder.root;
        for id in &placeholder.spans {
            if let Some(s) = self.spans.get_mut(id) {
                s.request = parent.request;
            }
        }
        // The stretch began no earlier than its request arrived, nor than the fallback's
        // wakeup; its first call bounds it from above.
        let first_child = placeholder
            .spans
            .iter()
            .filter(|&&id| id != root)
            .filter_map(|id| self.spans.get(id))
            .map(|s| s.start)
            .min();
        // Nor before the request reached the stretch's process, where the span it joins under
        // read it. A worker's stretch begins at its previous answer, which may come before
        // that read: the front read the request earlier, the server read its call later (over
        // the `grpc` recordings of runs 1–53 and seven larger ones, 94 more requests exact of
        // 15400 with this, none fewer).
        let stretch_pid = self.spans.get(&root).map(|s| s.pid);
        let arrived = self
            .spans
            .get(&parent.span)
            .filter(|p| Some(p.pid) == stretch_pid)
            .map_or(root_start, |p| p.start.max(root_start));
        if let Some(s) = self.spans.get_mut(&root) {
            let mut start = s.start.max(arrived);
            if rule == Rule::Wakeup {
                start = start.max(at);
            }
            if let Some(c) = first_child {
                start = start.min(c);
            }
            if start != s.start {
                s.start = start;
                s.end = s.end.max(start);
                if let Some(t) = self.threads.get(&s.tid) {
                    s.split_start = t.clock.at(start);
                    s.split_end = t.clock.at(s.end);
                }
            }
            s.parent = Some(parent.span);
        }
        self.stats.edges += 1;
        self.stats.handoffs += 1;
        self.alias.insert(p, (parent.request, self.now));
        let ts = self.spans.get(&root).map_or(at, |s| s.start);
        if let Some(r) = self.requests.get_mut(&parent.request) {
            r.spans.extend(&placeholder.spans);
            r.edges.push(Edge {
                request: parent.request,
                from: parent.span,
                to: root,
                rule,
                confidence: rule.confidence(),
                ts,
            });
            r.edges.extend(placeholder.edges.iter().map(|e| Edge {
                request: parent.request,
                ..*e
            }));
            r.end = r.end.max(placeholder.end);
        }
        let request = parent.request;
        self.released.extend(
            pending
                .rows
                .into_iter()
                .map(|(row, span)| (row, Tag { request, span })),
        );
        Some(Tag {
            request,
            span: root,
        })
    }

    fn drop_placeholder(&mut self, p: u64, placeholder: Request) {
        for id in &placeholder.spans {
            self.spans.remove(id);
        }
        // Counted as they were opened; they reach no table.
        self.stats.spans -= placeholder.spans.len() as u64;
        self.stats.edges -= placeholder.edges.len() as u64;
        self.alias.insert(p, (DROPPED, self.now));
        self.stats.unresolved_stretches += 1;
    }

    /// Ends the stretch `tid` is working on, if it was never placed: it joins the request a
    /// wakeup handed the thread when it began, or is dropped.
    pub(crate) fn end_stretch(&mut self, tid: i32) {
        self.close_stretch(tid, true);
    }

    /// Ends the stretch `tid` is working on, if it was never placed, dropping it unless
    /// `fallback` lets it join what a wakeup handed the thread.
    pub(crate) fn close_stretch(&mut self, tid: i32, fallback: bool) {
        if !self.owns_stretch(tid) {
            return;
        }
        let Some(cur) = self.current(tid) else {
            return;
        };
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = None;
        }
        self.settle(cur, fallback);
    }

    /// Ends stretch `stretch`, never placed: it joins what a wakeup handed its thread when it
    /// began (when `fallback`), or is dropped.
    pub(crate) fn settle(&mut self, stretch: Tag, fallback: bool) {
        let cur = self.canon(stretch);
        let fallback = self
            .pending
            .get(&cur.request)
            .and_then(|p| p.handoff)
            .filter(|_| fallback);
        if let Some((tag, rule, at)) = fallback {
            if self.place(cur, tag, rule, at).is_some() {
                return;
            }
        }
        if let (Some(_), Some(placeholder)) = (
            self.pending.remove(&cur.request),
            self.requests.remove(&cur.request),
        ) {
            self.drop_placeholder(cur.request, placeholder);
        }
    }

    /// `tid` blocks in an untimed signal wait ([`crate::event::Event::signal_wait`]): a pool
    /// worker back at its queue. A stretch of its own that made calls is set aside: its next
    /// answer takes it up again, its next call starts another stretch (the worker is on its
    /// next request, and another thread may still write this one's answer; see
    /// [`crate::link`]'s multiplexed connections). In one `grpc` recording, such waits of the
    /// pool workers fell between two requests 768 times and inside one 5 times.
    pub(crate) fn untimed_wait(&mut self, tid: i32, at: i64) {
        if !self.owns_stretch(tid) {
            return;
        }
        let Some(cur) = self.current(tid) else {
            return;
        };
        if self.calls_from(tid, cur.request) == 0 {
            return;
        }
        // Its span lasts until here: what the worker did after its last call (building and
        // queueing the answer) was this request's, and no answer of its own will extend it.
        self.extend_span(cur, at, 0, 0);
        let answered = self.answered_by_empty_write(tid, cur);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = None;
            if !answered {
                t.suspended = Some((cur, at));
            }
        }
    }

    /// `tid` answers on a server socket with no work of its own: a stretch it set aside at an
    /// untimed signal wait is what it answers for.
    pub(crate) fn resume_suspended(&mut self, tid: i32) {
        let Some(t) = self.threads.get_mut(&tid).filter(|t| t.current.is_none()) else {
            return;
        };
        if let Some((s, _)) = t.suspended.take() {
            if self.is_pending(s) {
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.current = Some(s);
                }
            }
        }
    }

    /// `tid` starts new work: a stretch it set aside answered nothing of its own; it waits for
    /// an answer another thread writes, or its fallback.
    fn retire_suspended(&mut self, tid: i32) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let tgid = t.tgid.unwrap_or(tid);
        if let Some((s, at)) = t.suspended.take() {
            self.unanswered.push_back((tgid, s, at));
            while self.unanswered.len() > crate::engine::MAX_CALLS {
                if let Some((_, s, _)) = self.unanswered.pop_front() {
                    self.settle(s, true);
                }
            }
        }
    }

    /// `tid` answers on a server socket for `rx`: a stretch it was working on joins `rx`'s
    /// request; a thread that did not read the request and had no stretch gets a span for
    /// its work since its last reply. Returns the span of `tid` that the reply extends.
    pub(crate) fn answer(&mut self, tid: i32, rx: Tag, at: i64) -> Tag {
        let rx = self.canon(rx);
        let mut cur = self.current(tid).map(|c| self.canon(c));
        // A stretch joins the request it answers; a server downstream of a stretch (redis
        // answering the worker's call) answers the stretch itself. The thread that answers
        // may not be the one the stretch began on: a goroutine whose call's reply another
        // thread of its process read goes on there (it took the stretch as its current work
        // at that read). Another process's thread never continues it.
        if let Some(c) = cur.filter(|&c| {
            (self.owns_stretch(tid) || self.continues_stretch(tid, c)) && c.request != rx.request
        }) {
            cur = self.place(c, rx, Rule::Handoff, at);
        }
        let reader = self.spans.get(&rx.span).map(|s| s.tid);
        let Some(t) = self.threads.get(&tid) else {
            return rx;
        };
        let (event_loop, last, stretch) = (t.event_loop, t.last, t.stretch_start);
        let own = match cur {
            Some(c) if c.request == rx.request => c,
            Some(_) => return rx,
            None if reader == Some(tid) => rx,
            None => match last.map(|l| self.canon(l)) {
                Some(l) if l.request == rx.request => l,
                _ if event_loop => return rx,
                _ => {
                    let Some(root_start) = self.requests.get(&rx.request).map(|r| r.start) else {
                        return rx;
                    };
                    let start = stretch.max(root_start).min(at);
                    self.stats.handoffs += 1;
                    self.new_span(rx, SpanKind::Internal, tid, start, None, Rule::Handoff)
                }
            },
        };
        if let Some(t) = self.threads.get_mut(&tid) {
            t.current = None;
            t.last = Some(own);
            t.stretch_start = at;
        }
        own
    }
}
