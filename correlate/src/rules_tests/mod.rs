//! One test per linking rule, on small synthetic event sequences shaped like the real ones
//! (see the captures in `testdata/` for the originals).

use crate::engine::{Config, Engine};
use crate::event::{Endpoint, Event, Kind, PrevState, Sys, Tuple};
use crate::link::{RESUMED_RETURN_NS, STEP_RETURN_NS};
use crate::model::{Finished, Rule, SpanKind};
use crate::socket::Ingress;
use crate::stream::Tag;

const INGRESS: u16 = 18080;

fn ep(port: u16) -> Endpoint {
    Endpoint { addr: 0, port }
}

struct Sim {
    e: Engine,
    row: u64,
    ts: i64,
    labels: Vec<(u64, Tag)>,
    /// Threads of another thread's process (tid -> tgid); others are their own process.
    tgids: std::collections::HashMap<i32, i32>,
    /// Task names (interned ids) of threads that have one; others have 0.
    comms: std::collections::HashMap<i32, u32>,
    /// The next syscall exit carries the need-resched flag.
    resched: bool,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            e: Engine::new(Config {
                ingress: vec![Ingress {
                    addr: None,
                    port: INGRESS,
                }],
                ..Config::default()
            }),
            row: 0,
            ts: 1_000_000,
            labels: Vec::new(),
            tgids: Default::default(),
            comms: Default::default(),
            resched: false,
        }
    }

    fn ev(&mut self, tid: i32, kind: Kind) -> Event {
        self.ts += 1_000;
        self.row += 1;
        Event::new(self.row, self.ts, tid, kind)
    }

    fn push(&mut self, mut e: Event) {
        if let Some(&g) = self.tgids.get(&e.tid) {
            e.tgid = Some(g);
        }
        if let Some(&c) = self.comms.get(&e.tid) {
            e.comm = c;
        }
        self.e.push(&e, &mut self.labels);
    }

    fn syscall(&mut self, tid: i32, sys: Sys, fd: i64, ret: i64, inner: &[Event]) {
        let mut enter = self.ev(tid, Kind::Enter(sys));
        enter.fd = Some(fd);
        self.push(enter);
        for e in inner {
            let mut e = *e;
            self.ts += 1_000;
            self.row += 1;
            e.ts = self.ts;
            e.row = self.row;
            self.push(e);
        }
        let mut exit = self.ev(tid, Kind::Exit(sys));
        exit.ret = Some(ret);
        exit.need_resched = std::mem::take(&mut self.resched);
        self.push(exit);
    }

    /// `tid` reads `n` bytes on `fd`, a socket `local` <- `remote`.
    fn recv(&mut self, tid: i32, fd: i64, local: u16, remote: u16, n: i64) {
        let mut rs = Event::new(0, 0, tid, Kind::RcvSpace);
        rs.src = Some(ep(local));
        rs.dst = Some(ep(remote));
        let mut len = Event::new(0, 0, tid, Kind::SockRecv);
        len.length = Some(n);
        self.syscall(tid, Sys::Recv, fd, n, &[rs, len]);
    }

    /// `tid` sends `n` bytes on `fd`, a socket `local` -> `remote`, delivered inside the call.
    fn send(&mut self, tid: i32, fd: i64, local: u16, remote: u16, n: i64) {
        let mut probe = Event::new(0, 0, tid, Kind::Probe);
        probe.irq = true;
        probe.src = Some(ep(remote));
        probe.dst = Some(ep(local));
        probe.length = Some(n);
        let mut len = Event::new(0, 0, tid, Kind::SockSend);
        len.length = Some(n);
        self.syscall(tid, Sys::Send, fd, n, &[probe, len]);
    }

    /// An event of `tid` naming socket address `sk` with its 4-tuple `local` -> `remote`
    /// (`inet_sock_set_state`, `tcp_destroy_sock`).
    fn sock_event(&mut self, tid: i32, kind: Kind, sk: u64, local: u16, remote: u16) -> Event {
        let mut e = self.ev(tid, kind);
        e.sk = Some(sk);
        e.src = Some(ep(local));
        e.dst = Some(ep(remote));
        e
    }

    /// `tid` sends `n` bytes on `fd` with only `sock_send_length` (socket address `sk`)
    /// inside: no `tcp_probe` saw the segment.
    fn send_unprobed(&mut self, tid: i32, fd: i64, sk: u64, n: i64) {
        let mut len = Event::new(0, 0, tid, Kind::SockSend);
        len.sk = Some(sk);
        len.length = Some(n);
        self.syscall(tid, Sys::Send, fd, n, &[len]);
    }

    /// A `tcp_probe` in `tid`'s context: `n` bytes reached socket `sk`, whose own end is
    /// `local` and peer `remote`.
    fn probe(&mut self, tid: i32, sk: u64, local: u16, remote: u16, n: i64) -> Event {
        let mut e = self.sock_event(tid, Kind::Probe, sk, local, remote);
        e.length = Some(n);
        e
    }

    /// A `sock_send_length` in `tid`'s context: a send of `n` bytes on socket `sk`.
    fn send_length(&mut self, tid: i32, sk: u64, n: i64) -> Event {
        let mut e = self.ev(tid, Kind::SockSend);
        e.sk = Some(sk);
        e.length = Some(n);
        e
    }

    /// `waker` wakes `target`.
    fn wake(&mut self, waker: i32, target: i32) {
        let mut w = self.ev(waker, Kind::Wakeup);
        w.wake_tid = Some(target);
        self.push(w);
    }

    fn finish(mut self) -> (Vec<Finished>, Vec<(u64, Tag)>) {
        self.e.finish(&mut self.labels);
        let mut f = self.e.take_finished();
        f.sort_by_key(|f| f.request.id);
        (f, self.labels)
    }
}

/// `tid` is preempted outside a syscall and runs again 50 µs later.
fn preempted(s: &mut Sim, tid: i32) {
    let mut out = s.ev(tid, Kind::Switch);
    (out.prev_tid, out.prev_state, out.next_tid) = (Some(tid), Some(PrevState::Runnable), Some(0));
    s.push(out);
    s.ts += 50_000;
    let mut back = s.ev(0, Kind::Switch);
    (back.prev_tid, back.prev_state, back.next_tid) =
        (Some(0), Some(PrevState::Runnable), Some(tid));
    s.push(back);
}

/// A CPython GIL wait on `tid`: a futex call that wakes no one, 30 µs long.
fn gil(s: &mut Sim, tid: i32) {
    let enter = s.ev(tid, Kind::Enter(Sys::Futex));
    s.push(enter);
    s.ts += 30_000;
    let mut exit = s.ev(tid, Kind::Exit(Sys::Futex));
    exit.ret = Some(0);
    s.push(exit);
}

/// The root span of the request from client port `port`.
fn root_of(f: &[Finished], port: u16) -> &crate::model::Span {
    let r = request_from(f, port);
    r.spans
        .iter()
        .find(|sp| sp.id == r.request.root)
        .expect("root")
}

/// The request that came from client port `port`.
fn request_from(f: &[Finished], port: u16) -> &Finished {
    f.iter()
        .find(|r| r.request.ingress.remote.port == port)
        .expect("request")
}

/// How many calls the request from client port `port` made (its client spans).
fn calls_of(f: &[Finished], port: u16) -> usize {
    request_from(f, port)
        .spans
        .iter()
        .filter(|sp| sp.kind == SpanKind::Client)
        .count()
}

fn rules(f: &Finished) -> Vec<&'static str> {
    f.request.edges.iter().map(|e| e.rule.as_str()).collect()
}

fn span_on(f: &Finished, tid: i32, kind: SpanKind) -> Option<&crate::model::Span> {
    f.spans.iter().find(|s| s.tid == tid && s.kind == kind)
}

#[test]
fn a_request_starts_at_the_ingress_and_ends_with_its_response() {
    let mut s = Sim::new();
    s.send(1, 3, 40000, INGRESS, 73); // client (traced) sends
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 7, INGRESS, 40000, 155);
    s.recv(1, 3, 40000, INGRESS, 155);
    let (f, labels) = s.finish();
    assert_eq!(f.len(), 1);
    let r = &f[0].request;
    assert_eq!(
        (r.client_tid, r.ingress_tid, r.responded),
        (Some(1), 2, true)
    );
    assert!(r.end > r.start);
    assert_eq!(f[0].spans.len(), 1, "the client is outside the request");
    assert!(labels.iter().all(|(_, t)| t.request == r.id));
}

#[test]
fn a_syscall_without_socket_events_resolves_through_its_fd() {
    // A recording without `sock_send_length`/`sock_recv_length` (older kernels, or a
    // profile without them): the read names its 4-tuple only by `tcp_rcv_space_adjust`, the
    // reply names nothing, and finds its socket through its fd.
    let mut s = Sim::new();
    let mut rs = s.ev(2, Kind::RcvSpace);
    rs.src = Some(ep(INGRESS));
    rs.dst = Some(ep(40000));
    s.syscall(2, Sys::Recv, 7, 73, &[rs]);
    s.syscall(2, Sys::Send, 7, 155, &[]);
    let (f, _) = s.finish();
    assert!(f[0].request.responded);
    assert_eq!(f[0].spans[0].bytes_out, 155);
}

#[test]
fn thread_per_request_calls_out_for_its_request() {
    let mut s = Sim::new();
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 8, 41000, 18081, 109); // front end forwards
    s.recv(3, 4, 18081, 41000, 109); // app thread reads it: byte stream
    s.send(3, 5, 42000, 16379, 22); // app calls redis
    s.recv(4, 9, 16379, 42000, 22);
    s.send(4, 9, 16379, 42000, 4);
    s.recv(3, 5, 42000, 16379, 4);
    s.send(3, 4, 18081, 41000, 112);
    s.recv(2, 8, 41000, 18081, 112);
    s.send(2, 7, INGRESS, 40000, 155);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.spans.len(), 5);
    assert_eq!(
        rules(f),
        [
            "thread_request",
            "byte_stream",
            "thread_request",
            "byte_stream"
        ]
    );
    let app = span_on(f, 3, SpanKind::Server).expect("test value");
    assert_eq!((app.bytes_in, app.bytes_out), (109, 112));
    assert!(span_on(f, 4, SpanKind::Server).is_some(), "redis span");
}

#[test]
fn keep_alive_connection_gives_each_message_to_its_request() {
    let mut s = Sim::new();
    // Two requests on one ingress connection, forwarded on one upstream connection.
    for _ in 0..2 {
        s.recv(2, 7, INGRESS, 40000, 73);
        s.send(2, 8, 41000, 18081, 109);
        s.recv(3, 4, 18081, 41000, 109);
        s.send(3, 4, 18081, 41000, 112);
        s.recv(2, 8, 41000, 18081, 112);
        s.send(2, 7, INGRESS, 40000, 155);
    }
    let (f, _) = s.finish();
    assert_eq!(f.len(), 2);
    for r in &f {
        assert_eq!(r.spans.len(), 3);
        assert!(r
            .spans
            .iter()
            .all(|sp| sp.start >= r.request.start && sp.end <= r.request.end));
    }
}

#[test]
fn event_loop_replies_follow_the_connection_not_the_last_read() {
    let mut s = Sim::new();
    // Two requests reach two app threads, both call redis (tid 4, an event loop).
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 8, 41000, 18081, 109);
    s.recv(2, 17, INGRESS, 40001, 73);
    s.send(2, 18, 41001, 18081, 109);
    s.recv(3, 4, 18081, 41000, 109);
    s.recv(5, 4, 18081, 41001, 109);
    s.send(3, 5, 42000, 16379, 22);
    s.send(5, 5, 42001, 16379, 22);
    s.syscall(4, Sys::Wait, 5, 2, &[]);
    s.recv(4, 9, 16379, 42000, 22);
    s.recv(4, 10, 16379, 42001, 22);
    s.send(4, 9, 16379, 42000, 4); // the reply to the first read, after the second read
    s.send(4, 10, 16379, 42001, 4);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 2);
    for r in &f {
        let app = r
            .spans
            .iter()
            .find(|sp| sp.kind == SpanKind::Server && sp.tid != 2 && sp.tid != 4)
            .expect("test value");
        let redis = span_on(r, 4, SpanKind::Server).expect("test value");
        assert_eq!(
            redis.bytes_out, 4,
            "request {} got its own reply",
            r.request.id
        );
        assert_eq!(
            redis.tuple.map(|t| t.remote.port),
            Some(if app.tid == 3 { 42000 } else { 42001 })
        );
    }
}

#[test]
fn event_loop_connections_opened_for_a_request_stay_with_it() {
    let mut s = Sim::new();
    s.syscall(2, Sys::Wait, 5, 1, &[]); // tid 2 is an event loop
    s.recv(2, 7, INGRESS, 40000, 73);
    s.syscall(2, Sys::Connect, 19, -115, &[]);
    s.recv(2, 17, INGRESS, 40001, 73); // a second request arrives before the first is forwarded
    s.syscall(2, Sys::Connect, 20, -115, &[]);
    s.send(2, 19, 41000, 18081, 109); // the first request's connection
    s.send(2, 20, 41001, 18081, 110);
    let (f, _) = s.finish();
    let call = |r: &Finished| {
        span_on(r, 2, SpanKind::Client)
            .and_then(|c| c.tuple)
            .map(|t| t.local.port)
    };
    assert_eq!(call(&f[0]), Some(41000));
    assert_eq!(call(&f[1]), Some(41001));
    // The loop read the second request in between: its send for the first is a new turn.
    assert_eq!(rules(&f[0]), ["event_loop", "turn"]);
}

#[test]
fn a_woken_helper_thread_gets_an_internal_span_and_a_wakeup_edge() {
    let mut s = Sim::new();
    s.recv(2, 7, INGRESS, 40000, 73);
    s.wake(2, 6);
    s.send(6, 5, 42000, 16379, 22); // helper calls the backend
    let (f, _) = s.finish();
    let f = &f[0];
    assert!(span_on(f, 6, SpanKind::Internal).is_some());
    assert_eq!(rules(f), ["wakeup", "thread_request"]);
    let conf = f.request.edges[0].rule.confidence();
    assert!(conf < Rule::ByteStream.confidence());
}

#[test]
fn a_forked_child_inherits_the_request() {
    let mut s = Sim::new();
    s.recv(2, 7, INGRESS, 40000, 73);
    let mut fk = s.ev(2, Kind::Fork);
    fk.child_tid = Some(9);
    s.push(fk);
    s.send(9, 5, 42000, 16379, 22);
    let (f, _) = s.finish();
    assert_eq!(rules(&f[0]), ["fork", "thread_request"]);
}

#[test]
fn a_read_that_began_before_the_recording_still_resolves() {
    let mut s = Sim::new();
    s.send(2, 8, 41000, 18081, 109);
    // No sys_enter: the thread was already blocked in recvfrom when recording started.
    let mut rs = s.ev(3, Kind::RcvSpace);
    rs.src = Some(ep(18081));
    rs.dst = Some(ep(41000));
    s.push(rs);
    let mut len = s.ev(3, Kind::SockRecv);
    len.length = Some(109);
    s.push(len);
    let mut exit = s.ev(3, Kind::Exit(Sys::Recv));
    exit.ret = Some(109);
    s.push(exit);
    let st = s.e.stats();
    assert_eq!(st.unseen_bytes, 0);
    assert_eq!(st.unmatched_brackets, 0);
}

#[test]
fn span_time_splits_into_cpu_runnable_and_blocked_network() {
    let mut s = Sim::new();
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 8, 41000, 18081, 109);
    let mut enter = s.ev(2, Kind::Enter(Sys::Recv));
    enter.fd = Some(8);
    s.push(enter);
    let mut sw = s.ev(2, Kind::Switch);
    (sw.prev_tid, sw.prev_state, sw.next_tid) = (Some(2), Some(PrevState::Sleeping), Some(0));
    s.push(sw);
    s.ts += 100_000; // blocked 100 µs waiting for the reply
    let mut wk = s.ev(0, Kind::Wakeup);
    (wk.wake_tid, wk.irq) = (Some(2), true);
    s.push(wk);
    let mut sw = s.ev(0, Kind::Switch);
    (sw.prev_tid, sw.prev_state, sw.next_tid) = (Some(0), Some(PrevState::Runnable), Some(2));
    s.push(sw);
    let mut rs = s.ev(2, Kind::RcvSpace);
    rs.src = Some(ep(41000));
    rs.dst = Some(ep(18081));
    s.push(rs);
    let mut exit = s.ev(2, Kind::Exit(Sys::Recv));
    exit.ret = Some(112);
    s.push(exit);
    s.send(2, 7, INGRESS, 40000, 155);
    let (f, _) = s.finish();
    let root = &f[0].spans[0];
    let sp = root.split_end.since(&root.split_start);
    assert_eq!(sp.network, 101_000);
    assert_eq!(sp.runnable, 1_000);
    assert_eq!(
        sp.cpu + sp.runnable + sp.blocked() + sp.unknown,
        root.end - root.start
    );
    let _ = Tuple {
        local: ep(1),
        remote: ep(2),
    };
}

mod event_loops;
mod goroutines;
mod handoff;
mod late_start;
mod multiplexed;
mod races;
mod unix;

#[test]
fn a_reply_read_in_two_reads_counts_its_wire_time_once() {
    // Capture `s1-c1`: the app writes its reply's head and body at once, and nginx reads
    // them 49 ms apart (the body waited for nginx's delayed ACK). The call's wire time is
    // the time from the reply to the reads, once: never more than the call lasted.
    let mut s = Sim::new();
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 8, 41000, 18081, 109);
    s.recv(3, 4, 18081, 41000, 109);
    s.send(3, 4, 18081, 41000, 112);
    s.send(3, 4, 18081, 41000, 34);
    s.ts += 1_000_000;
    s.recv(2, 8, 41000, 18081, 112);
    s.ts += 1_000_000;
    s.recv(2, 8, 41000, 18081, 34);
    s.send(2, 7, INGRESS, 40000, 155);
    let (f, _) = s.finish();
    let call = span_on(&f[0], 2, SpanKind::Client).expect("the call");
    assert_eq!(call.bytes_in, 146, "both reads are the call's");
    let w = call.wire;
    let wire = w.cpu + w.runnable + w.blocked() + w.unknown;
    assert!(
        wire <= call.end - call.start,
        "wire {wire} ns over a call of {} ns: {w:?}",
        call.end - call.start
    );
}
