//! Event loops: which request each turn of the loop works on.
//!
//! An event loop (nginx, redis, Node.js, asyncio) interleaves requests on one thread. The
//! kernel shows it reading requests and replies and writing calls and responses, with waits
//! (`epoll_wait`) between batches; between two syscalls it runs callbacks or coroutine steps
//! that leave no kernel event. Two rules follow from how such loops run:
//!
//! - **Turns.** Each syscall the loop makes for a request belongs to that request's *turn*. A
//!   turn lasts from where the previous one stopped to the loop's next syscall for another
//!   request: from the end of a wait, or 6 µs after the exit of the previous request's last
//!   syscall (that step's return from it; 12 µs after the loop ran again when it was
//!   preempted at that return) or at its own first syscall if that is sooner, the time
//!   between being neither request's. Each turn is its own span, so no span of a
//!   request covers another request's work on the thread;
//!   the first turn is the request's server span, later ones are internal spans under it
//!   (rule `turn`). A loop that serves one request at a time has one turn per request, and
//!   its server span covers the request's whole stay, waits included.
//! - **Woken order.** A loop runs the work a read made due in the order the reads happened:
//!   a request read on a server socket, or a reply read on a client connection (Node.js runs
//!   the callbacks of a pipelined connection's replies in reply order; asyncio resumes the
//!   task awaiting that connection). So a write on a client connection that no read of the
//!   same turn explains belongs to the oldest request a reply on that same connection woke,
//!   else to the first request read that has not called out yet (rule `continuation`), in
//!   the order the loop scheduled their steps. A request read in an earlier iteration that
//!   still has not called out is parked on something the kernel does not see (asyncio's
//!   `await pool.get()`); when another request answers, what it held is released in that
//!   turn and the longest-parked request is scheduled then, after every request read so far
//!   and before any read later. The asyncio capture showed both orders: a fresh request
//!   taking the redis connection whose release woke a parked one, and a parked one taking
//!   it before a request read after the release.

use std::collections::HashMap;

use crate::engine::{Engine, Silent, Woken};
use crate::event::Tuple;
use crate::model::{Finished, Rule, SpanKind};
use crate::stream::Tag;

/// How long a step's code runs on after its syscall returns, before the loop's next step
/// begins: the runtime's return path through its I/O layer, which makes no syscall (2-12 µs
/// of Node.js, nine in ten under 5.2 µs, and 2-3 µs of CPython in the testbed's truth). A
/// turn that follows another request's starts this long after the previous turn stopped,
/// or at its own first syscall if that comes sooner; the time between is neither
/// request's, since the kernel shows nothing that parts the previous step's tail from the
/// next step's head. Over 39 CI-sized
/// `asyncio`, `eventloop` and `grpcnode` recordings and two `grpcnode` ones of 300 requests,
/// exact requests: 7114 of 8400 when a turn began at its own syscall if that came within
/// 30 µs and where the previous one stopped otherwise; 7546 with 3 µs here, 7621 with 5,
/// 7591 with 8 and 7497 with 12 (docs/performance.md). With the later rules, over the 307
/// kept `asyncio`, `eventloop`, `grpcnode`, `go` and `handoff` recordings (runs 1-59 and
/// the larger ones), exact requests with this many µs for a turn that follows another (the
/// hand-off's at 5 µs): 61966 with 5, 62012 with 5.5, 62052 with 6 (45 recordings higher,
/// none lower), 62071 with 6.5 (one lower), 62014 with 7 (29 lower); 62053 with 6 for the
/// hand-off too.
pub(crate) const STEP_RETURN_NS: i64 = 6_000;

/// [`STEP_RETURN_NS`] for a step whose thread was preempted right at its syscall's return
/// (another task ran on the CPU; in the cases traced by hand, the one the syscall woke): the
/// return path then runs where the loop runs again, presumably on caches the other task
/// used, and takes longer. In
/// the testbed's truth on an Intel Xeon machine (16 `asyncio`, 16 `eventloop`, 10 `grpcnode`
/// recordings), the previous step's code ran on after the loop ran again for more than 6 µs
/// in 4.4%, 15.8% and 14.3% of such preemptions, more than 12 µs in 0.8%, 3.8% and 6.9%.
/// Exact requests over 78 recordings of every model there (docs/performance.md, "A step
/// resumed after a preemption at its return"): 14,943 with 6 µs, 15,016 with 9 (one set
/// lower), 15,028 with 12 (`asyncio` +38, `eventloop` +20, `grpcnode` +27; 32 sets higher,
/// 4 lower), 15,044 with 15, 15,050 with 20 (`eventloop` lower than with 12).
pub(crate) const RESUMED_RETURN_NS: i64 = 12_000;

/// How soon after a syscall returns a futex call is still that syscall's: CPython takes the
/// GIL back right in a blocking call's return path (0.5-0.9 µs after the return in the
/// `handoff` cases traced by hand), while the next call's GIL drop comes after the loop's
/// own code (4.8 µs after an `epoll_wait` in the fastest traced case). See
/// [`Engine::lock_call`].
const LOCK_RETURN_NS: i64 = 2_000;

/// How long a libuv callback runs before its first syscall, counted from where the loop
/// dispatches it (the time callbacks before it with no syscall leave to it). The testbed's
/// Node.js truth: 2-9 µs from a callback's start to its first syscall (medians 2.2-4.8 µs,
/// nine in ten under 5.2-9.2 µs in four `eventloop` recordings), plus libuv's dispatch. Over
/// 15 CI-sized `grpcnode` recordings, exact requests of 3000 with callbacks that made no
/// syscall given the time before the write that followed them: 2320 with none left to the
/// write's callback, 2561 with 5 µs, 2584 with 8, 2585 with 10, 2585 with 12, 2584 with 18,
/// 2571 with 30 (2272 without the rule).
const CALLBACK_HEAD_NS: i64 = 10_000;

/// Requests an event loop keeps as due: a loop runs a batch's callbacks within one turn of
/// its wait, so a few dozen suffice; older ones were handled with no kernel trace.
const MAX_WOKEN: usize = 64;

impl Engine {
    /// An event loop `tid` read what makes `tags`' work due (requests read, or replies read
    /// on client connection `via`), in this order.
    pub(crate) fn woke(
        &mut self,
        tid: i32,
        tags: impl IntoIterator<Item = Tag>,
        via: Option<Tuple>,
    ) {
        // A request that has answered has no work left to be woken for.
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|t| self.canon(t))
            .filter(|t| self.requests.get(&t.request).is_some_and(|r| !r.responded))
            .collect();
        let Some(t) = self.threads.get_mut(&tid).filter(|t| t.event_loop) else {
            return;
        };
        t.reads += 1;
        t.stepped.clear();
        if via.is_some() {
            // Replies come in order: a request woken by an earlier reply on the connection
            // that has not used it since had its turn with no kernel trace.
            t.woken.retain(|w| w.via != via);
        }
        for tag in tags {
            if via.is_none() && t.woken.iter().any(|w| w.tag.request == tag.request) {
                continue;
            }
            t.woken.push_back(Woken {
                tag,
                via,
                iteration: t.waits,
                read: t.reads,
            });
        }
        while t.woken.len() > MAX_WOKEN {
            t.woken.pop_front();
        }
    }

    /// The request an event loop's write on client connection `via` carries by woken order,
    /// and by which rule, taking it off the due list; `current` is the request the loop read
    /// in this turn, if any.
    pub(crate) fn take_woken(
        &mut self,
        tid: i32,
        via: Tuple,
        current: Option<Tag>,
    ) -> Option<(Tag, Rule)> {
        let t = self.threads.get(&tid)?;
        // A loop that runs a read's callbacks right after it (libuv) is done with the replies
        // of every read before its latest: a callback that made no syscall then has had its
        // step. Learned from the loop's own writes: in the grpcnode model a redis reply's
        // callback that answered (no syscall; grpc-js writes the answer later) took the next
        // request's INCR, read after it.
        let immediate = t.runs_callbacks_at_once();
        // A request that has made as many calls as the loop's requests make has no call
        // left: its reply's callback answers (grpc-js: with no syscall, its answer written
        // later), and the write goes to a request woken after it.
        let done = settled_calls(&t.calls_made);
        let same_conn = t.woken.iter().position(|w| {
            w.via == Some(via)
                && (!immediate || w.read == t.reads)
                && done.is_none_or(|k| self.calls_from(tid, w.tag.request) < k)
        });
        // The replies of the latest read before the one this write answers, of requests
        // that have made all their calls: their callbacks ran first, with no syscall (grpc-js
        // answers later, in one `writev`).
        let silent: Vec<Tag> = match (immediate, done, same_conn) {
            (true, Some(k), Some(i)) => t
                .woken
                .iter()
                .take(i)
                .filter(|w| w.via == Some(via) && w.read == t.reads)
                .filter(|w| self.calls_from(tid, w.tag.request) >= k)
                .map(|w| w.tag)
                .collect(),
            _ => Vec::new(),
        };
        let t = self.threads.get_mut(&tid)?;
        t.ran_silently = (!silent.is_empty()).then_some(Silent {
            tags: silent,
            flush: false,
        });
        if let Some(w) = same_conn.and_then(|i| t.woken.get(i)) {
            if w.iteration == t.waits {
                t.steps_now = t.steps_now.saturating_add(1);
            } else {
                t.steps_later = t.steps_later.saturating_add(1);
            }
        }
        let (i, rule) = match (same_conn, current) {
            (Some(i), _) => (i, Rule::Continuation),
            (None, Some(cur)) if !t.batch.is_empty() => {
                // A read that took several requests at once (HTTP/2 streams): each calls out
                // in read order, the first before the second.
                let next = t.batch.pop_front()?;
                if let Some(i) = t.woken.iter().position(|w| w.tag.request == next.request) {
                    t.woken.remove(i);
                }
                let rule = match next.request == cur.request {
                    true => Rule::EventLoop,
                    false => Rule::Continuation,
                };
                return Some((next, rule));
            }
            (None, Some(cur)) => {
                if let Some(i) = t.woken.iter().position(|w| w.tag.request == cur.request) {
                    t.woken.remove(i);
                }
                return Some((cur, Rule::EventLoop));
            }
            (None, None) => {
                // Due: read (or woken) in the last iteration or this one; one parked longer
                // only when no release was seen to wake another.
                let due = t.waits.saturating_sub(1);
                let mut waiting = t.woken.iter().filter(|w| w.via.is_none());
                if let (Some(only), None) = (waiting.next(), waiting.next()) {
                    let next = t.waits == only.iteration + 1;
                    t.due_writes[0] = t.due_writes[0].saturating_add(1);
                    t.due_writes[1] = t.due_writes[1].saturating_add(u32::from(next));
                }
                let i = t
                    .woken
                    .iter()
                    .position(|w| w.via.is_none() && w.iteration >= due)
                    .or_else(|| t.woken.iter().position(|w| w.via.is_none()))?;
                (i, Rule::Continuation)
            }
        };
        t.woken.remove(i).map(|w| (w.tag, rule))
    }

    /// Event loop `tid` enters a read at `entered` as its first syscall since a wait. A loop
    /// that runs a read's callbacks in the next iteration (asyncio) runs the steps its last
    /// iteration's reads made due first, in the order they were made due, then the ready
    /// events' callbacks, the first of which is this read: the steps still due made no
    /// syscall (a task that parks at once, waiting for a pooled connection), and the time
    /// from the wait's return to this read is theirs, split evenly among them.
    pub(crate) fn due_steps_before_read(&mut self, tid: i32, entered: i64) {
        let Some(t) = self
            .threads
            .get(&tid)
            .filter(|t| t.event_loop && t.after_wait.is_some())
        else {
            return;
        };
        let later = t.runs_steps_later();
        let from = t.mark;
        if !later || entered <= from {
            return;
        }
        let last = t.waits.saturating_sub(1);
        let due: Vec<Tag> = t
            .woken
            .iter()
            .filter(|w| w.iteration == last)
            .map(|w| w.tag)
            .collect();
        if due.is_empty() {
            return;
        }
        self.steps_ran(tid, &due, from, entered, Rule::DueStep);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.mark = entered;
        }
    }

    /// The steps of `due` ran on loop `tid` from `from` to `to`, in that order, with no
    /// syscall: the kernel shows nothing that parts them, so each gets an even share.
    fn steps_ran(&mut self, tid: i32, due: &[Tag], from: i64, to: i64, rule: Rule) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.stepped.extend(due.iter().map(|d| d.request));
        }
        let n = due.len() as i64;
        for (i, &tag) in due.iter().enumerate() {
            let i = i as i64;
            let (a, b) = (from + (to - from) * i / n, from + (to - from) * (i + 1) / n);
            let span = self.new_span(tag, SpanKind::Internal, tid, a, None, rule);
            self.extend_span(span, b, 0, 0);
        }
    }

    /// Event loop `tid` answered `request`: nothing of it is due any more, and whatever it
    /// held (a pooled connection) is released in this turn, which wakes the request parked
    /// longest: it is due after everything read so far.
    pub(crate) fn answered(&mut self, tid: i32, request: u64) {
        if !self.threads.get(&tid).is_some_and(|t| t.event_loop) {
            return;
        }
        let calls = self.calls_from(tid, request);
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let slot = calls.min(t.calls_made.len() - 1);
        t.calls_made[slot] = t.calls_made[slot].saturating_add(1);
        // Read before this iteration and still not sent for: its step ran (in this iteration
        // at the latest) and parked. A request read in this iteration has not run yet. The
        // CI-sized asyncio recording of e8e4095 scored 139 of 200 exact when only requests
        // read two iterations ago counted as parked (a step parks in the iteration after its
        // read, and a release later in that iteration wakes it), 186 with this. Of the steps
        // woken in the iteration before this one, those woken after the answering request's
        // own step run after it, in this iteration: they have not run yet either (asyncio
        // runs the steps made due in one iteration in the order they were made due). In a
        // CI-sized asyncio recording, a request read after another's redis reply took the
        // pool's connection that answer released, and its write went to the request read
        // after it; 9 of 10 CI-sized asyncio recordings gained 3 to 23 of 200 requests.
        let own = t.woken.iter().position(|w| w.tag.request == request);
        let parked = t.waits;
        let ran = |i: usize, w: &Woken| {
            w.tag.request != request
                && w.via.is_none()
                && (w.iteration + 1 < parked || (w.iteration < parked && own.is_none_or(|p| i < p)))
        };
        let due = t
            .woken
            .iter()
            .enumerate()
            .find(|(i, w)| ran(*i, w))
            .map(|(_, w)| w.tag.request);
        t.woken.retain(|w| w.tag.request != request);
        t.answering = true;
        if let Some(i) = due.and_then(|d| t.woken.iter().position(|w| w.tag.request == d)) {
            if let Some(w) = t.woken.remove(i) {
                t.woken.push_back(Woken {
                    iteration: t.waits,
                    ..w
                });
            }
        }
    }

    /// Event loop `tid` made a syscall from `entered` to `end` for `tag`'s request: it is
    /// that request's turn. A turn on another request ends and a new turn span begins where
    /// it stopped, [`STEP_RETURN_NS`] later ([`RESUMED_RETURN_NS`] where the loop ran again
    /// after a preemption at that return), or at this syscall if that is sooner, unless
    /// `tag` is a span this syscall just opened on the thread.
    pub(crate) fn take_turn(&mut self, tid: i32, tag: Tag, entered: i64, end: i64) {
        let tag = self.canon(tag);
        let Some(t) = self.threads.get(&tid).filter(|t| t.event_loop) else {
            return;
        };
        let (turn, mark, resumed) = (t.turn.map(|c| self.canon(c)), t.mark, t.resumed);
        let first = t.first_preempted;
        let after_wait = t.after_wait;
        // The previous turn may have been extended past its last syscall (to the start of
        // the read that turned the loop to this request).
        let mut start = turn
            .and_then(|c| self.spans.get(&c.span))
            .map_or(mark, |s| mark.max(s.end));
        // Preempted since: the step running then was the previous turn's, and it went on
        // when the thread ran again (in the asyncio capture every tail of a step that
        // outlasted the next turn's start had a preemption right after its last syscall).
        // Not across a wait: the loop waits only when its steps are done (the `handoff`
        // model's acceptor, preempted between its `epoll_wait` and the next request's read,
        // gave the previous request that read's whole head).
        let mut preempted = after_wait.is_none() && resumed != i64::MAX && resumed > start;
        // A preemption at the previous turn's last return came before any code after it: the
        // steps went on where the thread first ran again, and later preemptions came inside
        // them. run47's `asyncio` recording: preempted at a send's return, back 4 µs later,
        // the next step ran 20 µs and was preempted for 100 µs; the turn began where the loop
        // ran again the second time. 409 loop, hand-off and gRPC recordings (runs 1–65 and
        // the larger ones): 84,755 → 84,837 exact, 41 higher, none lower.
        let at_return =
            preempted && first.at_return && first.resumed != i64::MAX && first.resumed > start;
        // A first preemption later than the previous step's return path came inside the next
        // step, which had begun where that path ended. run57's `asyncio` recording: the next
        // step was preempted 78 µs in, and its turn began where the loop ran again. The same
        // 409 recordings: 84,837 → 84,914 exact, 35 higher, 6 `grpcnode` sets lower by 1–3
        // (`grpcnode` 10,309 → 10,372 of 11,400, `asyncio` 12,883 → 12,890, `eventloop`
        // 12,902 → 12,908); within the return path the step that ran is not known.
        if preempted
            && !at_return
            && first.at > start
            && first.at.saturating_sub(first.after) >= STEP_RETURN_NS
        {
            preempted = false;
        }
        if preempted {
            start = if at_return { first.resumed } else { resumed };
        }
        // Where the previous turn stopped (its last syscall's return, or where the loop ran
        // again after a preemption at that return), the previous step's tail runs on, then
        // the next step's head; see [`STEP_RETURN_NS`] and [`RESUMED_RETURN_NS`]. Preempted
        // inside that return path, which step ran is not known, and the next turn starts
        // where the loop ran again.
        let follows = after_wait.is_none() && turn.is_some() && (!preempted || at_return);
        let mut turn_start = match follows {
            true => {
                let tail = match at_return {
                    true => RESUMED_RETURN_NS,
                    false => STEP_RETURN_NS,
                };
                (start + tail).min(entered).max(start)
            }
            false => start,
        };
        // Callbacks that ran before this one with no syscall: theirs is the time up to where
        // this one began.
        let ran = self
            .threads
            .get_mut(&tid)
            .and_then(|t| t.ran_silently.take());
        if let Some(ran) = ran.filter(|_| turn.is_none_or(|c| c.request != tag.request)) {
            let n = ran.tags.len() as i64;
            let began = match ran.flush {
                true => turn_start + (entered - turn_start) * n / (n + 1),
                false => entered - CALLBACK_HEAD_NS,
            };
            if began > turn_start {
                self.steps_ran(tid, &ran.tags, turn_start, began, Rule::SilentStep);
                turn_start = began;
            }
        }
        let span = match turn {
            Some(c) if c.request == tag.request => c,
            _ => {
                if let Some(c) = turn.filter(|_| preempted) {
                    self.extend_span(c, start, 0, 0);
                }
                let fresh = self
                    .spans
                    .get(&tag.span)
                    .is_some_and(|s| s.tid == tid && s.kind != SpanKind::Client && s.start >= mark);
                let awaited = self
                    .threads
                    .get_mut(&tid)
                    .and_then(|t| t.awaited.take())
                    .map(|a| self.canon(a))
                    .filter(|a| {
                        a.request == tag.request
                            && self.calls_from(tid, a.request) == 0
                            && self.spans.get(&a.span).is_some_and(|s| s.tid == tid)
                    });
                if let Some(a) = awaited {
                    // It waited for the call another thread made for it.
                    self.extend_span(a, turn_start, 0, 0);
                    a
                } else if fresh {
                    tag
                } else {
                    // A call's span hangs under the span that made it.
                    let parent = self
                        .spans
                        .get(&tag.span)
                        .filter(|s| s.kind == SpanKind::Client)
                        .and_then(|s| s.parent)
                        .map_or(tag, |p| Tag {
                            request: tag.request,
                            span: p,
                        });
                    self.new_span(
                        parent,
                        SpanKind::Internal,
                        tid,
                        turn_start,
                        None,
                        Rule::Turn,
                    )
                }
            }
        };
        let answered = self.threads.get_mut(&tid).is_some_and(|t| {
            t.turn = Some(span);
            t.mark = end;
            t.after_wait = None;
            std::mem::take(&mut t.answering)
        });
        self.extend_span(span, end, 0, 0);
        if answered {
            // A turn that answered its request ends with the answer; what the loop does
            // next (nginx writes its access log) is not the request's.
            if let Some(t) = self.threads.get_mut(&tid) {
                t.turn = None;
            }
        }
    }

    /// Event loop `tid` read request `tag` at an ingress, its first bytes sent at `sent` (when
    /// the sender was traced). Read first since a wait that returned one ready event, and
    /// sent before that: the loop returned from the wait to serve it, and the request starts
    /// there. The `handoff` model's acceptor takes CPython's GIL between its `epoll_wait` and
    /// the read, which can take longer than the rest of its work on the request; its segments
    /// start as the wait returns. Bytes sent after the wait returned did not end it (a Go
    /// thread back from the netpoller runs other goroutines before one reads a new request),
    /// and of several ready events the loop handles others first (nginx).
    ///
    /// Likewise after a hand-off ([`Engine::pass_on`]) with no wait since: the loop went on
    /// to the next ready connection, and the request read there starts at the loop's first
    /// syscall after the hand-off, or [`STEP_RETURN_NS`] after the hand-off returned if that
    /// is sooner, if it was sent before that (over 38 `handoff` recordings, 8745 → 8748 of
    /// 8800 exact with the second bound). The time from the hand-off's
    /// return to that syscall is neither's: the handing request's code returns from the
    /// wake there, for a length the kernel does not show (2.1-2.3 µs of CPython in the
    /// `handoff` model, as much as the scoring's slack).
    pub(crate) fn start_at_wait(&mut self, tid: i32, tag: Tag, sent: Option<i64>) {
        let Some(t) = self.threads.get_mut(&tid).filter(|t| t.event_loop) else {
            return;
        };
        let passed = t.passed.take();
        let handed = passed.and_then(|p| p.next);
        let due = |&(_, one): &(crate::sched::Split, bool)| one && sent.is_some_and(|s| s < t.mark);
        if let Some((split, _)) = t.after_wait.filter(due) {
            let mark = t.mark;
            self.start_earlier(tag, mark, split);
        } else if let Some((at, split)) = handed.filter(|&(at, _)| sent.is_some_and(|s| s < at)) {
            // Or a step's return after the hand-off, if the next syscall came later: the
            // handing code had returned by then (hd1, request 3-37: 75 µs of the next
            // request's code before its read).
            let mut start = (at, split);
            if let Some(p) = passed {
                let from = self
                    .spans
                    .get(&p.span.span)
                    .map_or(p.at, |s| s.end.max(p.at));
                let cut = from + STEP_RETURN_NS;
                if cut < at && sent.is_some_and(|s| s < cut) {
                    if let Some(t) = self.threads.get(&tid) {
                        start = (cut, t.clock.at(cut));
                    }
                }
            }
            self.start_earlier(tag, start.0, start.1);
        } else if passed.is_none() {
            self.read_after_lock_calls(tid, tag, sent);
        }
    }

    /// Event loop `tid` made a syscall from `at` to `end`: a futex call that handed no
    /// request on (`lock`), or another. A futex call within [`LOCK_RETURN_NS`] of the
    /// previous syscall's return is that syscall's (CPython takes the GIL back as a blocking
    /// call returns, waiting 145 µs in one `handoff` case); one later begins a run of the next
    /// syscall's (it drops the GIL before one). Over 31 `handoff` recordings (22 CI-sized,
    /// `hd1`, `hd2`, two of 400 requests over 8 connections, one kept and four of app variants),
    /// exact requests: 7338 with a 5 µs bound and only between two requests' turns, 7345
    /// with the first read after a wait too, 7355 with that and 3 µs, 7358 with 2 µs; the
    /// other models' recordings score the same with each.
    ///
    /// The first such run after the loop forked a thread for its request is not one: CPython's
    /// `Thread.start()` waits for the child to start (a `ThreadPoolExecutor` adds a worker on
    /// `submit`, the first four requests of each `handoff` recording). Over the 222 loop
    /// recordings and the bundled captures, 45,772 -> 45,782 exact, none lower; 26 of the
    /// `handoff` model's 59 misses over 43 CI-sized sets were among each connection's first
    /// two requests.
    pub(crate) fn lock_call(&mut self, tid: i32, lock: bool, at: i64, end: i64) {
        if let Some(t) = self.threads.get_mut(&tid).filter(|t| t.event_loop) {
            t.forked &= lock;
            let run = &mut t.lock_calls;
            if !lock {
                run.start = None;
            } else if at - run.last_return >= LOCK_RETURN_NS && !std::mem::take(&mut t.forked) {
                // (Right after a fork, the wait for the child to start: the forking request's.)
                run.start = Some((at, t.clock.at(at)));
            }
            run.last_return = end;
        }
    }

    /// Event loop `tid` reads new request `tag` right after futex calls that handed no
    /// request on: the futex calls were the read's own. CPython drops the GIL before every
    /// blocking socket call, waking a thread that waits for it; the previous request's code
    /// had returned before. The request starts where the futex calls began if it was sent
    /// before, and a turn on another request since the loop's last wait ends there.
    fn read_after_lock_calls(&mut self, tid: i32, tag: Tag, sent: Option<i64>) {
        let Some(t) = self.threads.get(&tid) else {
            return;
        };
        let Some((at, split)) = t.lock_calls.start else {
            return;
        };
        if sent.is_none_or(|s| s >= at) {
            return;
        }
        if t.after_wait.is_some() {
            // The loop's first read after a wait: no turn to end.
            if at > t.mark {
                self.start_earlier(tag, at, split);
            }
            return;
        }
        let Some(turn) = t
            .turn
            .map(|c| self.canon(c))
            .filter(|c| c.request != tag.request)
        else {
            return;
        };
        if let Some(s) = self
            .spans
            .get_mut(&turn.span)
            .filter(|s| s.tid == tid && s.start < at)
        {
            s.end = at;
            s.split_end = split;
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.turn = None;
        }
        self.start_earlier(tag, at, split);
    }

    /// Event loop `tid` woke a pool worker out of its untimed signal wait for work (see
    /// [`crate::event::Event::signal_wait`]) in a syscall made for `tag`'s request, which it
    /// read itself: it handed the request on, and its part of it ends with that syscall.
    /// What it does next, up to its next read, is not that request's: in the `handoff`
    /// model's acceptor, CPython's GIL hand-overs to the woken worker (futex wakes of
    /// threads in timed waits) fall after the submit, in the loop's step to the next ready
    /// connection (2-10 µs each in the cases traced by hand).
    pub(crate) fn pass_on(&mut self, tid: i32, tag: Tag) {
        let tag = self.canon(tag);
        let read_here = !self.pending.contains_key(&tag.request) && self.read_by(tag.request, tid);
        let serving = self.current(tid).is_some_and(|c| c.request == tag.request);
        let Some(t) = self
            .threads
            .get_mut(&tid)
            .filter(|t| t.event_loop && read_here)
        else {
            return;
        };
        if serving {
            t.current = None;
            t.turn = None;
            t.passed = Some(crate::engine::Passed {
                span: tag,
                at: t.mark,
                next: None,
            });
        }
    }

    /// Event loop `tid` enters a syscall at `at`: the first since it passed a request on
    /// ([`Engine::pass_on`]) is where the loop's next step begins. Preempted before it, the
    /// passing request's code was running (its return from the wake): its span goes on to
    /// where the thread ran again. In the `handoff` model the woken worker often preempts
    /// the acceptor right after the wake; the acceptor's submit then returns 10-100 µs
    /// later.
    pub(crate) fn after_pass(&mut self, tid: i32, at: i64) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let Some(p) = t.passed.as_mut().filter(|p| p.next.is_none()) else {
            return;
        };
        p.next = Some((at, t.clock.at(at)));
        let (span, from, resumed) = (p.span, p.at, t.resumed);
        if resumed != i64::MAX && resumed > from {
            let split = t.clock.at(resumed);
            if let Some(s) = self.spans.get_mut(&span.span).filter(|s| s.end < resumed) {
                s.end = resumed;
                s.split_end = split;
            }
        }
    }

    /// Event loop `tid` returns from a wait at `at`: a turn on another request begins no
    /// earlier. The turn in progress goes on if the loop's next syscall is for its request
    /// (a span covers no other request's work, but may cover a wait).
    pub(crate) fn waited(&mut self, tid: i32, at: i64, ready: Option<i64>) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.mark = at;
            t.waits += 1;
            t.after_wait = Some((t.clock.at(at), ready == Some(1)));
        }
    }
}

/// How many answered requests [`settled_calls`] needs: the requests before are scored without
/// it, and a grpc-js loop's first ones are its slowest (cold JIT). Over 15 CI-sized `grpcnode`
/// recordings, exact requests of 3000: 2210 with 20, 2241 with 10, 2248 with 8, 2272 with 5
/// and with 3 (no recording lower than with 20); `n1`-`n4` and every `eventloop` and
/// `asyncio` recording scored the same with each.
const SETTLED_AFTER: u32 = 5;

/// The number of calls a loop's requests make, learned from the requests it answered: once
/// at least [`SETTLED_AFTER`] answered and three in five of them made the same number (the
/// others' counts are spread by the misses themselves: before the count is learned, a call
/// that went to the wrong request gives one request a call too many and another one too
/// few). Over the 45 CI-sized `grpcnode` recordings of runs 1–53, `n1`-`n4`, and every
/// kept `eventloop`, `asyncio` and `handoff` one (224 recordings), exact requests: 45361
/// with four in five, 45549 with seven in ten, 45608 with three in five, 45611 with one in
/// two; seven recordings changed with three in five (run53's `grpcnode` 123 → 172 of 200,
/// `n2` 124 → 191), none lower.
fn settled_calls(made: &[u32; 8]) -> Option<usize> {
    let total: u32 = made.iter().sum();
    let (k, &n) = made.iter().enumerate().max_by_key(|&(_, n)| *n)?;
    (total >= SETTLED_AFTER && n * 5 >= total * 3 && k + 1 < made.len()).then_some(k)
}

/// Requests after which an event loop whose requests have not settled on a number of calls
/// (three in five making the same number, as in [`settled_calls`]) is taken as unsettled.
/// The woken-order rules rest on each request making its calls in the loop's order; a loop
/// whose requests, as kreq joined them, made 0 to 4 calls in like numbers is one where they
/// did not. Counted over the finished requests with a server span on the loop, the calls
/// those spans made (the client spans whose nearest server span above is one of them, on
/// any thread: not the calls of the servers they called, whose number may vary, as
/// WordPress's queries under nginx): in the testbed's `aiohttp` model (redis-py's pool on
/// asyncio; every request makes two calls) 63 to 71 of 200 requests had none and 50 to 54 had
/// four; no loop of 257 kept recordings of the other models and apps (every testbed model,
/// six WordPress ones) is unsettled (counted by each thread's own calls, Go's loops would be,
/// as goroutines move between threads; counted by every call under the loop's spans, nginx
/// in front of WordPress would be). 20 is a choice, not a
/// measured best: enough requests that a few misjoined ones do not unsettle a loop.
const UNSETTLED_AFTER: u32 = 20;

/// The confidence of a link an event loop's rules made on an unsettled loop: over 269 kept
/// recordings the capped links were right 3406 of 12175 times (0.280): `aiohttp` (four
/// recordings) 0.218, `fastapi` 0.339, `fastify` 0.230, `uvloop` 0.327; no other model's
/// loop was capped (docs/performance.md, "Apps built on common libraries").
const UNSETTLED_CONFIDENCE: f32 = 0.2;

/// Writes given by due order with one request due, after which a loop whose due steps are
/// seen not to run in the next iteration is taken as unsettled too: fewer than 19 in 20 of
/// them came in the iteration after the request was made due. The due-order rule gives a
/// write to a request made due in the last iteration (asyncio runs a step made due in one
/// iteration in the next, `BaseEventLoop._run_once`): in all 21 kept recordings of the
/// testbed's `asyncio` app every such write came in the next iteration (2449 of 2449, the one
/// of 3000 requests and those made with a busy loop on a core among them); in `aiohttp`
/// recordings 2 of 6, 4 of 10, 7 of 14 and, in a CI run with other tests on the cores, 108
/// of 174 (0.62: a threshold of three in five missed it), in `fastapi` ones 47 of 110 and 2
/// of 5 (their requests wait in the pool and behind the framework's own tasks). No recording
/// of another model checked (one set of each, the larger ones, a WordPress one) made five
/// such writes, and over 269 kept recordings no other model's loop is unsettled. 5 is a
/// choice, not a measured best.
const DUE_WRITES_AFTER: u32 = 5;

impl crate::engine::Thread {
    /// An event loop whose due steps, by the writes given by due order, do not run in the
    /// iteration after they were made due (see [`DUE_WRITES_AFTER`]).
    pub(crate) fn steps_off_time(&self) -> bool {
        let [n, next] = self.due_writes;
        self.event_loop && n >= DUE_WRITES_AFTER && next * 20 < n * 19
    }
}

impl Engine {
    /// Caps at [`UNSETTLED_CONFIDENCE`] the confidence of the links of `finished` requests
    /// that an event loop's rules made (`event_loop`, `continuation`, `turn`, `silent_step`,
    /// `due_step`) on a loop that is unsettled: its requests agree on no number of calls
    /// ([`UNSETTLED_AFTER`], counting `finished` and the requests finished before), or its
    /// due steps do not run in the next iteration ([`DUE_WRITES_AFTER`]). Called as results
    /// are written, when the loop has served many requests.
    pub(crate) fn cap_unsettled(&mut self, finished: &mut [Finished]) {
        for f in finished.iter() {
            // Per loop thread serving the request: the calls its server spans there made.
            let mut calls: Vec<(i32, usize)> = Vec::new();
            for s in f.spans.iter().filter(|s| s.kind == SpanKind::Server) {
                let is_loop = self.threads.get(&s.tid).is_some_and(|t| t.event_loop)
                    || self.loops_exited.contains_key(&s.tid);
                if is_loop && !calls.iter().any(|c| c.0 == s.tid) {
                    calls.push((s.tid, 0));
                }
            }
            if calls.is_empty() {
                continue;
            }
            let by_id: HashMap<u64, &crate::model::Span> =
                f.spans.iter().map(|s| (s.id, s)).collect();
            for c in f.spans.iter().filter(|s| s.kind == SpanKind::Client) {
                // The call is made for the nearest server span above it: a server's own
                // calls, not those of the servers it called.
                let mut up = c.parent.and_then(|p| by_id.get(&p));
                while let Some(a) = up {
                    if a.kind == SpanKind::Server {
                        if let Some(n) = calls.iter_mut().find(|n| n.0 == a.tid) {
                            n.1 += 1;
                        }
                        break;
                    }
                    up = a.parent.and_then(|p| by_id.get(&p));
                }
            }
            for (tid, n) in calls {
                let made = &mut self.loop_calls.entry(tid).or_default().0;
                let slot = n.min(made.len() - 1);
                made[slot] = made[slot].saturating_add(1);
            }
        }
        let unsettled: Vec<i32> = self
            .loop_calls
            .iter()
            .filter(|&(&tid, (made, _))| {
                let off_time = self.threads.get(&tid).map_or_else(
                    || self.loops_exited.get(&tid).copied().unwrap_or(false),
                    |t| t.steps_off_time(),
                );
                off_time
                    || (made.iter().sum::<u32>() >= UNSETTLED_AFTER
                        && settled_calls(made).is_none())
            })
            .map(|(&tid, _)| tid)
            .collect();
        if unsettled.is_empty() {
            return;
        }
        for f in finished.iter_mut() {
            for e in &mut f.request.edges {
                let by_loop = matches!(
                    e.rule,
                    Rule::EventLoop
                        | Rule::Continuation
                        | Rule::Turn
                        | Rule::SilentStep
                        | Rule::DueStep
                );
                if !by_loop || e.confidence <= UNSETTLED_CONFIDENCE {
                    continue;
                }
                let Some(tid) = f.spans.iter().find(|s| s.id == e.to).map(|s| s.tid) else {
                    continue;
                };
                if !unsettled.contains(&tid) {
                    continue;
                }
                e.confidence = UNSETTLED_CONFIDENCE;
                self.stats.unsettled_links += 1;
                if let Some((_, capped)) = self.loop_calls.get_mut(&tid).filter(|c| !c.1) {
                    *capped = true;
                    self.stats.unsettled_loops += 1;
                }
            }
        }
    }
}
