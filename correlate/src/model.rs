//! Spans, requests and edges as the correlator builds them, before they are written.

use crate::event::{CommId, Tuple};
use crate::sched::Split;

/// What a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A thread serving a request that arrived on a connection.
    Server,
    /// A thread calling out on an outgoing connection for a request.
    Client,
    /// Work a thread did for a request it was handed (wakeup, fork) without a socket.
    Internal,
}

impl SpanKind {
    /// Name used in the `spans` table.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Internal => "internal",
        }
    }
}

/// How a span was joined to its request (the `edges.rule` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Bytes sent by the parent span were read by this span's connection.
    ByteStream,
    /// The thread served one request at a time and sent for it.
    ThreadRequest,
    /// An event-loop thread sent for the request it last read.
    EventLoop,
    /// An event loop wrote on a client connection for the oldest request that a read had
    /// made due (a reply on the same connection, else a request read).
    Continuation,
    /// An event loop's later turn on a request it already worked on.
    Turn,
    /// An event loop's callback that made no syscall, between two that did: the time between
    /// them is shared evenly among the callbacks due then.
    SilentStep,
    /// An asyncio loop's step made due in the last iteration that made no syscall before the
    /// loop's first read after a wait: the time from the wait's return to that read is shared
    /// evenly among the steps due then.
    DueStep,
    /// A thread with no request worked, then answered on the request's connection.
    Handoff,
    /// A thread with no request was woken by the parent span's thread.
    Wakeup,
    /// A thread forked by the parent span's thread.
    Fork,
    /// A pool worker's stretch answered on a multiplexed connection; the caller's thread
    /// that reading the reply woke, in reply order, made the call.
    ReplyOrder,
    /// A pool worker's stretch answered on a multiplexed connection; a caller that answered
    /// its own request with no wake seen took it: the answer sent first after its call, of
    /// those no caller was handed, whose worker called out after the callee read the call.
    ReplyUnseen,
}

impl Rule {
    /// Name used in the `edges` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ByteStream => "byte_stream",
            Rule::ThreadRequest => "thread_request",
            Rule::EventLoop => "event_loop",
            Rule::Continuation => "continuation",
            Rule::Turn => "turn",
            Rule::SilentStep => "silent_step",
            Rule::DueStep => "due_step",
            Rule::Handoff => "handoff",
            Rule::Wakeup => "wakeup",
            Rule::Fork => "fork",
            Rule::ReplyOrder => "reply_order",
            Rule::ReplyUnseen => "reply_unseen",
        }
    }

    /// How sure the rule is.
    pub fn confidence(self) -> f32 {
        match self {
            // Bytes name their request. Over 403 testbed recordings of nine models
            // (docs/performance.md, `scripts/calibration`) the link's span was right 22806 of
            // 24611 times, all misses on `grpcnode`: the server span of the first of several
            // streams read at once runs over the others' callbacks (its extent, not its
            // request).
            Rule::ByteStream => 1.0,
            // The shares measured over those 403 recordings, rounded down: thread_request
            // 107364 of 108977 (0.985), event_loop 43266 of 43433 (0.996), continuation
            // 48447 of 48718 (0.994), handoff 11215 of 11258 (0.996).
            Rule::ThreadRequest => 0.98,
            Rule::EventLoop => 0.99,
            Rule::Continuation => 0.99,
            // A turn's request is certain but where it begins is not (the end of the previous
            // step leaves no kernel event). Over the 229 CI-sized sets of the loop models
            // (asyncio, eventloop, go, grpcnode, handoff; runs 1-47), turn spans touched no
            // other request's segment 57483 of 85913 times (0.669: 0.727 for turns that began
            // at a wait's return, 0.639 at a step boundary, 0.705 where the loop ran again
            // after a preemption, 0.559 otherwise).
            Rule::Turn => 0.66,
            // Steps with no syscall, given even shares of the time between two syscalls: right
            // 2399 of 8514 times (0.282) over 655 recordings on an AMD EPYC machine, 3030 of
            // 6915 (0.438) over 220 on an Intel Xeon one; 5429 of
            // 15429 (0.352) in all (docs/performance.md, "Calibration of link confidence").
            Rule::SilentStep => 0.35,
            // An asyncio loop's due steps, given even shares of the time before its first read
            // after a wait, touched only their own request's segment 171 of 2840 times over
            // 267 kept recordings on the Intel Xeon machine (0.060; `asyncio` 12 of 935,
            // `aiohttp` 0.087, `fastapi` 0.311, `uvloop` 1 of 1019): the even shares cover the
            // steps, which helps the requests' coverage, but cross their boundaries
            // (docs/performance.md, "Apps built on common libraries").
            Rule::DueStep => 0.05,
            Rule::Handoff => 0.99,
            Rule::Fork => 0.8,
            // None of 19 wakeup links over the 403 recordings was right (18 on `grpc`: an
            // `event_engine` thread woken by a caller, writing connection frames): 0.15 is
            // about the 95% upper bound of a share seen 0 of 19 times (3/19).
            Rule::Wakeup => 0.15,
            // Over the 514 kept recordings of runs 1-55 (every model, the larger and variant
            // ones; docs/performance.md), rounded down: a caller woken by the reader took the
            // oldest answer queued, right 14094 of 14405 times (0.978); a caller that
            // answered with no wake seen took one handed to no one, right 904 of 1068 times
            // (0.846).
            Rule::ReplyOrder => 0.97,
            Rule::ReplyUnseen => 0.84,
        }
    }
}

/// A span under construction or finished.
#[derive(Debug, Clone)]
pub struct Span {
    /// Request id.
    pub request: u64,
    /// Span id.
    pub id: u64,
    /// Parent span id.
    pub parent: Option<u64>,
    /// Kind.
    pub kind: SpanKind,
    /// Thread.
    pub tid: i32,
    /// Process.
    pub pid: Option<i32>,
    /// Task name.
    pub comm: CommId,
    /// Start ns.
    pub start: i64,
    /// End ns.
    pub end: i64,
    /// Connection, for server and client spans.
    pub tuple: Option<Tuple>,
    /// Bytes read.
    pub bytes_in: i64,
    /// Bytes written.
    pub bytes_out: i64,
    /// Thread time counters at `start`.
    pub split_start: Split,
    /// Thread time counters at `end`.
    pub split_end: Split,
    /// Client spans: what the threads at the two ends did while the call's bytes were on
    /// their way (docs/correlation.md, wire time): the callee's thread from the first byte
    /// sent to its read, the caller's from the callee's last reply byte to the caller's read.
    pub wire: Split,
    /// Events labelled with the span.
    pub events: i64,
    /// The thread that ended the span, when not `tid` (a call's reply read by another
    /// thread; see `kreq_schemas::spans::END_TID`).
    pub end_tid: Option<i32>,
}

impl Span {
    /// The span's time split: every part >= 0 and the parts add up to its duration.
    pub fn split(&self) -> Split {
        self.split_end
            .since(&self.split_start)
            .fitted(self.end - self.start)
    }
}

/// A link between two spans.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    /// Request id.
    pub request: u64,
    /// From span.
    pub from: u64,
    /// To span.
    pub to: u64,
    /// Rule.
    pub rule: Rule,
    /// How sure the link is: its rule's [`Rule::confidence`], or less where the rule's
    /// premise is seen not to hold (an unsettled event loop, see [`crate::link`]'s turns).
    pub confidence: f32,
    /// When.
    pub ts: i64,
}

/// A request under construction or finished.
#[derive(Debug, Clone)]
pub struct Request {
    /// Request id.
    pub id: u64,
    /// Root span id.
    pub root: u64,
    /// Ingress connection, seen from the server.
    pub ingress: Tuple,
    /// Thread that sent the request bytes, if traced.
    pub client_tid: Option<i32>,
    /// Thread that read the request at the ingress.
    pub ingress_tid: i32,
    /// Start ns.
    pub start: i64,
    /// End ns (last response byte), or last activity when it never responded.
    pub end: i64,
    /// A response was sent at the ingress.
    pub responded: bool,
    /// Span ids, in creation order.
    pub spans: Vec<u64>,
    /// Edges that built it.
    pub edges: Vec<Edge>,
}

/// A finished request with its spans, handed to the writer.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The request.
    pub request: Request,
    /// Its spans, root first.
    pub spans: Vec<Span>,
}

#[cfg(test)]
mod tests {
    use super::Rule;

    /// Each variant once. The match does not compile until a new variant is in it, which
    /// is the reminder to list it here too; nothing checks the list itself.
    fn all() -> Vec<Rule> {
        let all = vec![
            Rule::ByteStream,
            Rule::ThreadRequest,
            Rule::EventLoop,
            Rule::Continuation,
            Rule::Turn,
            Rule::SilentStep,
            Rule::DueStep,
            Rule::Handoff,
            Rule::Wakeup,
            Rule::Fork,
            Rule::ReplyOrder,
            Rule::ReplyUnseen,
        ];
        for r in &all {
            match r {
                Rule::ByteStream
                | Rule::ThreadRequest
                | Rule::EventLoop
                | Rule::Continuation
                | Rule::Turn
                | Rule::SilentStep
                | Rule::DueStep
                | Rule::Handoff
                | Rule::Wakeup
                | Rule::Fork
                | Rule::ReplyOrder
                | Rule::ReplyUnseen => {}
            }
        }
        all
    }

    #[test]
    fn every_rule_is_described_in_the_edges_schema() {
        let described: Vec<&str> = kreq_schemas::edges::RULES.iter().map(|r| r.0).collect();
        for r in all() {
            assert!(described.contains(&r.as_str()), "{}", r.as_str());
            assert!((0.0..=1.0).contains(&r.confidence()), "{}", r.as_str());
        }
        assert_eq!(
            described.len(),
            all().len(),
            "a described rule no variant makes"
        );
    }
}
