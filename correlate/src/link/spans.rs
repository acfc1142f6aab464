//! Requests and spans: opening them, joining them by edges, extending them.

use crate::engine::Engine;
use crate::event::{Event, Tuple};
use crate::model::{Edge, Request, Rule, Span, SpanKind};
use crate::sched::Split;
use crate::stream::Tag;

impl Engine {
    /// A span's syscall moved `bytes_in`/`bytes_out` and ended at `at`: extend it. The split
    /// is read from the span's own thread, whichever thread made the call.
    pub(crate) fn extend_span(&mut self, tag: Tag, at: i64, bytes_in: i64, bytes_out: i64) {
        if let Some(s) = self.spans.get_mut(&tag.span) {
            s.bytes_in += bytes_in;
            s.bytes_out += bytes_out;
            // An event loop's span is one turn: once the loop turned to other work, only a
            // new turn span covers time (see [`crate::link`]'s turns).
            let other_turn = self.threads.get(&s.tid).is_some_and(|t| {
                t.event_loop
                    && s.kind != SpanKind::Client
                    && t.turn.is_none_or(|c| c.span != s.id)
                    && s.start < t.mark
            });
            if other_turn {
                return;
            }
            s.end = s.end.max(at);
            // The span's own thread: another thread's clock would mix two threads' time.
            if let Some(t) = self.threads.get(&s.tid) {
                s.split_end = t.clock.at(s.end);
            }
        }
    }

    /// The calls `request` made from thread `tid` (its client spans there).
    pub(crate) fn calls_of(&self, tid: i32, request: u64) -> impl Iterator<Item = &Span> {
        self.requests
            .get(&self.canon(Tag { request, span: 0 }).request)
            .into_iter()
            .flat_map(|r| r.spans.iter())
            .filter_map(|id| self.spans.get(id))
            .filter(move |s| s.kind == SpanKind::Client && s.tid == tid)
    }

    /// How many calls `request` made from thread `tid`.
    pub(crate) fn calls_from(&self, tid: i32, request: u64) -> usize {
        self.calls_of(tid, request).count()
    }

    /// Whether `request` is open and thread `tid` read it: its root span is a server span
    /// there.
    pub(crate) fn read_by(&self, request: u64, tid: i32) -> bool {
        self.requests
            .get(&request)
            .filter(|r| !r.responded)
            .and_then(|r| self.spans.get(&r.root))
            .is_some_and(|s| s.tid == tid && s.kind == SpanKind::Server)
    }

    /// A request's root span `tag` starts at `at` (earlier than the read that opened it),
    /// with its thread's time split `split` then; the request starts there too. A span of a
    /// call keeps starting at its read, where the call's wire time ends.
    pub(crate) fn start_earlier(&mut self, tag: Tag, at: i64, split: Split) {
        let Some(r) = self
            .requests
            .get_mut(&tag.request)
            .filter(|r| r.root == tag.span)
        else {
            return;
        };
        let Some(s) = self.spans.get_mut(&tag.span).filter(|s| at < s.start) else {
            return;
        };
        s.start = at;
        s.split_start = split;
        r.start = r.start.min(at);
    }

    pub(crate) fn new_request(
        &mut self,
        ev: &Event,
        tuple: Tuple,
        at: i64,
        client: Option<i32>,
    ) -> Tag {
        self.stats.requests += 1;
        self.open_request(tuple, client, ev.tid, at, SpanKind::Server, Some(tuple))
    }

    /// A new request whose root span, of `kind` on `tid`, starts at `at`: a request read at
    /// an ingress, or the placeholder of a hand-off stretch.
    pub(crate) fn open_request(
        &mut self,
        ingress: Tuple,
        client: Option<i32>,
        tid: i32,
        at: i64,
        kind: SpanKind,
        tuple: Option<Tuple>,
    ) -> Tag {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(
            id,
            Request {
                id,
                root: 0,
                ingress,
                client_tid: client,
                ingress_tid: tid,
                start: at,
                end: at,
                responded: false,
                spans: Vec::new(),
                edges: Vec::new(),
            },
        );
        // The root span has no parent and no edge (the rule is not recorded).
        let root = self.open_span(id, None, kind, tid, at, tuple, Rule::ByteStream);
        if let Some(r) = self.requests.get_mut(&id) {
            r.root = root.span;
        }
        root
    }

    /// A span of `parent`'s request on thread `tid`, joined to `parent` by `rule`. When the
    /// request was already handed out, the late hop joins its parent span instead of creating
    /// a span no table will hold.
    pub(crate) fn new_span(
        &mut self,
        parent: Tag,
        kind: SpanKind,
        tid: i32,
        start: i64,
        tuple: Option<Tuple>,
        rule: Rule,
    ) -> Tag {
        let parent = self.canon(parent);
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
    pub(crate) fn open_span(
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
                wire: Split::default(),
                events: 0,
                end_tid: None,
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
                    confidence: rule.confidence(),
                    ts: start,
                });
            }
        }
        Tag { request, span: id }
    }
}
