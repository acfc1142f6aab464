//! Hand-off to a pool worker (testbed model `handoff`: an acceptor thread reads and parses,
//! a `ThreadPoolExecutor` worker calls redis and answers on the client's connection).

use super::*;

/// Acceptor 2 reads request bytes on fd 7, wakes worker 3, waits in `epoll_wait`; the worker
/// calls redis (tid 4) on its pooled connection, then answers on fd 7.
fn handoff(s: &mut Sim, client_port: u16, redis_port: u16) {
    s.tgids.insert(3, 2);
    s.recv(2, 7, INGRESS, client_port, 73);
    s.wake(2, 3);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    s.syscall(3, Sys::Futex, 0, 0, &[]);
    redis_call(s, redis_port);
    s.send(3, 7, INGRESS, client_port, 155);
}

/// Worker 3 calls redis (tid 4, fd 11) on its pooled connection (fd 9, port `redis_port`).
fn redis_call(s: &mut Sim, redis_port: u16) {
    s.send(3, 9, redis_port, 16379, 22);
    s.recv(4, 11, 16379, redis_port, 22);
    s.send(4, 11, 16379, redis_port, 4);
    s.recv(3, 9, redis_port, 16379, 4);
}

#[test]
fn a_pool_workers_stretch_joins_the_request_it_answers() {
    let mut s = Sim::new();
    handoff(&mut s, 40000, 42000);
    let (f, labels) = s.finish();
    assert_eq!(
        f.len(),
        1,
        "the worker's stretch is not a request of its own"
    );
    let f = &f[0];
    assert!(f.request.responded);
    assert_eq!(rules(f), ["handoff", "thread_request", "byte_stream"]);
    let root = &f.spans[0];
    let worker = span_on(f, 3, SpanKind::Internal).expect("worker span");
    assert_eq!(worker.parent, Some(root.id));
    assert_eq!(worker.bytes_out, 155, "the reply is the worker's work");
    assert!(span_on(f, 4, SpanKind::Server).is_some(), "redis span");
    // The acceptor's span ends when it waits again, not with the worker's reply.
    assert!(root.end < worker.end, "{} < {}", root.end, worker.end);
    assert!(worker.start >= root.start);
    // The worker's and redis's events were held until the stretch was placed, then labelled.
    assert!(labels.iter().any(|(_, t)| t.span == worker.id));
    assert!(labels.iter().all(|(_, t)| t.request == f.request.id));
}

#[test]
fn workers_sharing_pooled_connections_keep_requests_apart() {
    let mut s = Sim::new();
    // Two requests on two client connections; the same worker serves both in turn over the
    // same redis connection.
    handoff(&mut s, 40000, 42000);
    s.recv(2, 8, INGRESS, 40001, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    redis_call(&mut s, 42000);
    s.send(3, 8, INGRESS, 40001, 155);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 2);
    for r in &f {
        assert_eq!(r.spans.len(), 4, "root, worker, call, redis");
        let w = span_on(r, 3, SpanKind::Internal).expect("worker span");
        assert!(w.start >= r.request.start && w.end <= r.request.end);
    }
    let w1 = span_on(&f[0], 3, SpanKind::Internal).expect("first");
    let w2 = span_on(&f[1], 3, SpanKind::Internal).expect("second");
    assert!(
        w1.end <= w2.start,
        "the worker's two stretches do not overlap"
    );
}

#[test]
fn a_stretch_that_answers_nothing_is_dropped_and_counted() {
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 7, INGRESS, 40000, 155);
    // A thread of the serving process calls redis and never answers a request.
    redis_call(&mut s, 42000);
    let stats = s.e.finish(&mut s.labels);
    assert_eq!(stats.unresolved_stretches, 1);
    let f = s.e.take_finished();
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].spans.len(),
        1,
        "neither the call nor redis's work joined it"
    );
    let id = f[0].request.id;
    assert!(s.labels.iter().all(|(_, t)| t.request == id));
}

#[test]
fn work_handed_on_by_a_stretch_that_is_dropped_is_no_requests() {
    // The `grpc` model's front end: a thread woken by another's stretch took that stretch as
    // its work; the stretch answered nothing and was dropped, and every later call of the woken
    // thread went to the dropped placeholder (884 late hops, 34 of 200 requests exact).
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    // Thread 3 of the serving process starts work for no request: a stretch.
    s.send(3, 9, 42000, 16379, 22);
    s.recv(4, 11, 16379, 42000, 22);
    s.send(4, 11, 16379, 42000, 4);
    s.recv(3, 9, 42000, 16379, 4);
    // It starts a thread (its own process here), which calls out under the stretch.
    let mut fork = s.ev(3, Kind::Fork);
    fork.child_tid = Some(9);
    s.push(fork);
    s.send(9, 12, 43000, 16380, 10);
    // The stretch ends with a wait, having answered nothing: dropped.
    s.syscall(3, Sys::Wait, 5, 0, &[]);
    assert_eq!(s.e.stats().unresolved_stretches, 1);
    // The thread's later calls belong to no request.
    let late = s.e.stats().late_hops;
    s.send(9, 13, 43001, 16380, 10);
    s.send(2, 7, INGRESS, 40000, 155);
    assert_eq!(
        s.e.stats().late_hops,
        late,
        "no hop to the dropped placeholder"
    );
    let (f, labels) = s.finish();
    assert_eq!(f.len(), 1);
    assert!(labels.iter().all(|(_, t)| t.request == f[0].request.id));
}

#[test]
fn a_stretch_placed_at_the_end_of_the_input_labels_its_events() {
    // A recording that ends while a woken worker is still on its request: the stretch joins
    // what the wakeup handed it as the input ends, and its held events are labelled then.
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.wake(2, 3);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    redis_call(&mut s, 42000);
    let rows = s.row;
    let (f, labels) = s.finish();
    assert_eq!(f.len(), 1);
    assert!(
        span_on(&f[0], 3, SpanKind::Internal).is_some(),
        "the worker's span"
    );
    let call = span_on(&f[0], 3, SpanKind::Client).expect("the worker's call");
    let labelled = labels.iter().filter(|(_, t)| t.span == call.id).count();
    assert!(
        labelled >= 4,
        "the worker's call's events: {labelled} of {rows} rows"
    );
    assert!(labels.iter().all(|(_, t)| t.request == f[0].request.id));
}

/// Acceptor 2 reads request A (client port 40001; B, port 40002, is sent too) after a wait
/// that returned both, and wakes worker 3 out of its queue wait (`submit`). Returns when
/// the submit's wake returned.
fn read_and_submit(s: &mut Sim) -> i64 {
    let mut wait = s.ev(3, Kind::Enter(Sys::Futex));
    wait.signal_wait = true;
    s.push(wait);
    s.send(1, 3, 40001, INGRESS, 73);
    s.send(1, 4, 40002, INGRESS, 73);
    s.syscall(2, Sys::Wait, 5, 2, &[]);
    s.recv(2, 12, INGRESS, 40001, 73);
    let mut submit = Event::new(0, 0, 2, Kind::Wakeup);
    submit.wake_tid = Some(3);
    s.syscall(2, Sys::Futex, 0, 1, &[submit]);
    s.ts
}

/// Acceptor 2 reads request A (client port 40001) and wakes worker 3 out of its queue wait
/// (`submit`), then hands CPython's GIL over with a wake of thread 4 before it reads B (port
/// 40002, sent before). Worker 3 then serves A. Returns when the submit's wake returned and
/// when the GIL hand-over began.
fn submit_then_read(s: &mut Sim, preempt: bool) -> (i64, i64) {
    s.tgids.insert(4, 2);
    let passed = read_and_submit(s);
    if preempt {
        preempted(s, 2);
    }
    let mut gil = Event::new(0, 0, 2, Kind::Wakeup);
    gil.wake_tid = Some(4);
    s.syscall(2, Sys::Futex, 0, 1, &[gil]);
    let handover = s.ts - 2_000;
    s.recv(2, 13, INGRESS, 40002, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    let mut woken = s.ev(3, Kind::Exit(Sys::Futex));
    woken.ret = Some(0);
    s.push(woken);
    redis_call(s, 42000);
    s.send(3, 12, INGRESS, 40001, 155);
    s.send(3, 13, INGRESS, 40002, 155);
    (passed, handover)
}

/// Request A (client port 40001) ends with the `submit` that woke its worker, at `passed`.
fn a_ends_at_its_workers_wake(f: &[Finished], passed: i64) {
    assert_eq!(
        root_of(f, 40001).end,
        passed,
        "A ends with the wake of its worker"
    );
}

/// [`submit_then_read`] after a first hand-off that makes thread 3 a pool worker; the
/// finished requests, and when the submit's wake returned and the GIL hand-over began.
fn after_a_handoff(preempt: bool) -> (Vec<Finished>, i64, i64) {
    let mut s = Sim::new();
    handoff(&mut s, 40000, 42000);
    let (passed, handover) = submit_then_read(&mut s, preempt);
    (s.finish().0, passed, handover)
}

#[test]
fn an_acceptor_that_wakes_a_waiting_pool_worker_is_done_with_the_request() {
    // The `handoff` model (CI-sized recording of run11): the acceptor's `submit` wakes a
    // worker out of its queue wait; CPython's GIL hand-overs to that worker follow, before
    // the acceptor reads the next ready connection. 9 of 16 misses were those hand-overs
    // counted in the request submitted, and the next request's segment (from the loop's
    // step to its connection) less than half covered.
    let (f, passed, handover) = after_a_handoff(false);
    a_ends_at_its_workers_wake(&f, passed);
    assert_eq!(
        root_of(&f, 40002).start,
        handover,
        "B starts at the loop's next syscall"
    );
    let worker = span_on(request_from(&f, 40001), 3, SpanKind::Internal);
    assert!(worker.is_some(), "the worker's stretch still joins A");
}

#[test]
fn a_request_passed_on_runs_on_through_a_preemption_right_after() {
    // The `handoff` model (run6): the woken worker often preempts the acceptor right after
    // the wake, and the submit returns when the acceptor runs again.
    let (f, passed, handover) = after_a_handoff(true);
    let a = root_of(&f, 40001);
    assert!(
        a.end > passed + 50_000 && a.end < handover,
        "A runs on to the resumption: {} after the wake",
        a.end - passed
    );
    assert_eq!(root_of(&f, 40002).start, handover);
}

#[test]
fn a_wake_of_a_thread_that_never_answered_hands_nothing_over() {
    // A Node.js loop wakes V8's and libuv's helper threads out of the same kind of wait;
    // they answer no request, and the loop goes on with its request.
    let mut s = Sim::new();
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    let (passed, _) = submit_then_read(&mut s, false);
    let (f, _) = s.finish();
    let a = root_of(&f, 40001);
    assert!(a.end > passed, "A's span goes on to B's read");
}

/// Acceptor 2 reads request A (client port 40001, fd 12), runs A's code for 8 µs (its
/// submit wakes no worker: every worker is busy), then reads B (port 40002, fd 13), both
/// sent before. `before_b` runs between A's code and B's read; `after_a` right as A's read
/// returns. Returns when A's code ended.
fn two_reads(s: &mut Sim, after_a: impl Fn(&mut Sim), before_b: impl Fn(&mut Sim)) -> i64 {
    s.tgids.insert(4, 2);
    s.send(1, 3, 40001, INGRESS, 73);
    s.send(1, 4, 40002, INGRESS, 73);
    s.syscall(2, Sys::Wait, 5, 2, &[]);
    s.recv(2, 12, INGRESS, 40001, 73);
    after_a(s);
    s.ts += 8_000;
    let code_end = s.ts;
    before_b(s);
    s.recv(2, 13, INGRESS, 40002, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    code_end
}

/// `tid` hands CPython's GIL to thread 4, which waits for it with a timeout: a futex call
/// that wakes a thread, no pool worker.
fn gil_handover(s: &mut Sim, tid: i32) {
    let mut w = Event::new(0, 0, tid, Kind::Wakeup);
    w.wake_tid = Some(4);
    s.syscall(tid, Sys::Futex, 0, 1, &[w]);
}

#[test]
fn a_read_after_a_gil_handover_starts_at_the_handover() {
    // The `handoff` model (CI-sized recording of run15): the acceptor read request A of one
    // ready connection, submitted it while every worker was busy (no wake), then dropped the
    // GIL for the read of the next ready connection, waking the thread that waited for it.
    // A's span ran on to B's read: A overlapped B's segment and B's was less than half
    // covered in 7 of the 11 misses (189 of 200 exact; 196 with this rule).
    let mut s = Sim::new();
    let code_end = two_reads(&mut s, |_| {}, |s| gil_handover(s, 2));
    let handover = code_end + 1_000;
    let (f, _) = s.finish();
    assert_eq!(
        root_of(&f, 40001).end,
        handover,
        "A ends as the hand-over begins"
    );
    assert_eq!(root_of(&f, 40002).start, handover, "B starts there");
}

#[test]
fn the_wait_for_a_thread_the_loop_started_is_the_starting_requests() {
    // The `handoff` model's first requests (run13, handoff-2-0): `ThreadPoolExecutor.submit`
    // started a worker and `Thread.start()` waited 360 µs on futexes for it to run; those
    // futex calls began well after A's read returned, as CPython's drop of the GIL before a
    // read does, and B (read next) started at the first of them.
    let mut s = Sim::new();
    let code_end = two_reads(
        &mut s,
        |_| {},
        |s| {
            let mut fork = s.ev(2, Kind::Fork);
            fork.child_tid = Some(9);
            s.push(fork);
            s.ts += 5_000;
            gil(s, 2); // Thread.start() waits for the child
            gil_handover(s, 2);
        },
    );
    let (f, _) = s.finish();
    let b = root_of(&f, 40002);
    assert!(
        root_of(&f, 40001).end > code_end + 30_000,
        "A runs on to B's read"
    );
    assert!(b.start > code_end + 30_000, "B starts at its read: {b:?}");
}

#[test]
fn a_gil_retaken_as_a_read_returns_is_that_reads() {
    // The `handoff` model (hd1): the acceptor waited 145 µs to take the GIL back as A's read
    // returned, then ran A's code; the futex calls are A's and B starts at its own read.
    let mut s = Sim::new();
    let code_end = two_reads(
        &mut s,
        |s| {
            gil(s, 2);
            gil_handover(s, 2);
        },
        |_| {},
    );
    let (f, _) = s.finish();
    let b = root_of(&f, 40002);
    assert!(root_of(&f, 40001).end > code_end, "A runs on to B's read");
    assert!(b.start > code_end, "B starts at its read");
}

#[test]
fn a_first_read_after_a_wait_starts_at_the_gil_handover_before_it() {
    // A variant of the `handoff` app (three `threading.Thread` workers, 8 connections): the
    // acceptor's `epoll_wait` returned two ready connections, its loop ran for 4.8 µs, then
    // it dropped the GIL for the first read, waking the thread that waited for it. The
    // request's segment started before the hand-over; its span started at the read (6 of
    // 10 misses in that recording).
    let mut s = Sim::new();
    s.tgids.insert(4, 2);
    s.send(1, 3, 40001, INGRESS, 73);
    s.send(1, 4, 40002, INGRESS, 73);
    s.syscall(2, Sys::Wait, 5, 2, &[]);
    let returned = s.ts;
    s.ts += 3_800;
    let handover = s.ts + 1_000;
    gil_handover(&mut s, 2);
    s.recv(2, 12, INGRESS, 40001, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    let (f, _) = s.finish();
    let a = root_of(&f, 40001);
    assert!(
        a.start > returned,
        "not at the wait's return: two were ready"
    );
    assert_eq!(a.start, handover, "at the hand-over before its read");
}

#[test]
fn a_request_read_long_after_a_hand_off_starts_a_step_return_after_it() {
    // The `handoff` model (hd1, request 3-37): after the `submit` that woke a worker, the
    // acceptor ran 75 µs of the next request's code with no syscall before its read; the
    // request started at the read and its segment was 7.6 of 80 µs covered.
    let mut s = Sim::new();
    handoff(&mut s, 40000, 42000);
    let passed = read_and_submit(&mut s);
    s.ts += 75_000;
    s.recv(2, 13, INGRESS, 40002, 73);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    let (f, _) = s.finish();
    a_ends_at_its_workers_wake(&f, passed);
    assert_eq!(
        root_of(&f, 40002).start,
        passed + STEP_RETURN_NS,
        "B starts a step's return later"
    );
}
