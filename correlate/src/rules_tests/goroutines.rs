//! A call whose reply another thread reads (testbed model `go`: a goroutine parked in a
//! redis call resumes on whichever OS thread the scheduler gives it; in one recording 19 of
//! 300 requests read a reply on another thread than the send).

use super::*;

/// Thread 2 of the Go server reads a request on fd 7 and sends a redis call on its pooled
/// connection (fd 9); redis (tid 4) answers; thread 3 of the same process, where the
/// goroutine resumed, reads the reply and answers the client on fd 7.
fn migrated_call(s: &mut Sim) {
    s.tgids.insert(3, 2);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    s.syscall(3, Sys::Wait, 5, 0, &[]);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 9, 42000, 16379, 22);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    s.recv(4, 11, 16379, 42000, 22);
    s.send(4, 11, 16379, 42000, 4);
    s.recv(3, 9, 42000, 16379, 4);
    s.send(3, 7, INGRESS, 40000, 155);
}

/// A request read on fd 7 by `threads[0]`, a redis call sent on the pooled connection (fd 9)
/// by `threads[1]`, answered by `redis`, its reply read by `threads[2]`, which answers the
/// client.
fn request_with_call(s: &mut Sim, threads: [i32; 3], redis: i32) {
    let [reader, caller, answerer] = threads;
    s.recv(reader, 7, INGRESS, 40000, 73);
    s.send(caller, 9, 42000, 16379, 22);
    s.recv(redis, 11, 16379, 42000, 22);
    s.send(redis, 11, 16379, 42000, 4);
    s.recv(answerer, 9, 42000, 16379, 4);
    s.send(answerer, 7, INGRESS, 40000, 155);
}

#[test]
fn a_reply_read_on_another_thread_ends_the_call_there() {
    let mut s = Sim::new();
    migrated_call(&mut s);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert!(f.request.responded);
    let call = span_on(f, 2, SpanKind::Client).expect("the call, on the sending thread");
    assert_eq!(call.end_tid, Some(3), "the reply was read on thread 3");
    assert!(span_on(f, 4, SpanKind::Server).is_some(), "redis span");
}

#[test]
fn a_reply_read_on_the_calling_thread_names_no_other() {
    let mut s = Sim::new();
    request_with_call(&mut s, [2, 2, 2], 4);
    let (f, _) = s.finish();
    let call = span_on(&f[0], 2, SpanKind::Client).expect("call");
    assert_eq!(call.end_tid, None);
}

/// The Go model's first requests (CI run of 2026-12-05, 189 of 200 exact): a goroutine read
/// its request on thread 2, then resumed on thread 3, which had served nothing and made its
/// redis call there; the reply was read on thread 4, which answered the client. The call made
/// on thread 3 opened a stretch; it joins the request when thread 4, which went on with it
/// at the reply, answers.
#[test]
fn a_stretch_continued_on_another_thread_joins_the_request_answered_there() {
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.tgids.insert(4, 2);
    request_with_call(&mut s, [2, 3, 4], 5);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1, "the stretch is not a request of its own");
    let f = &f[0];
    assert!(f.request.responded);
    let call = span_on(f, 3, SpanKind::Client).expect("thread 3's call is the request's");
    assert_eq!(call.end_tid, Some(4));
    assert!(span_on(f, 5, SpanKind::Server).is_some(), "redis span");
}

#[test]
fn after_its_goroutine_parks_a_thread_sends_for_the_request_waiting_longest() {
    // The `go` model's first requests (run40, go-0-0): thread 3 read request B and went back
    // to the netpoller; thread 2 ran A's handler, which parked in its redis call, then A's
    // connection's background read found nothing (`EAGAIN`), and thread 2 ran B's handler,
    // which sent B's call on another pooled connection. That call went to A.
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.syscall(2, Sys::Wait, 5, 0, &[]);
    s.syscall(3, Sys::Wait, 5, 0, &[]);
    s.recv(2, 7, INGRESS, 40000, 73); // A
    s.recv(3, 8, INGRESS, 40001, 73); // B
    s.syscall(3, Sys::Wait, 5, 0, &[]);
    s.send(2, 9, 42000, 16379, 22); // A's call
    s.syscall(2, Sys::Recv, 9, -11, &[]);
    s.syscall(2, Sys::Recv, 7, -11, &[]); // A's background read
    s.send(2, 10, 42001, 16379, 22); // B's call
    s.syscall(2, Sys::Recv, 10, -11, &[]);
    s.recv(4, 11, 16379, 42000, 22);
    s.send(4, 11, 16379, 42000, 4);
    s.recv(4, 12, 16379, 42001, 22);
    s.send(4, 12, 16379, 42001, 4);
    s.recv(2, 9, 42000, 16379, 4);
    s.send(2, 7, INGRESS, 40000, 155);
    s.recv(3, 10, 42001, 16379, 4);
    s.send(3, 8, INGRESS, 40001, 155);
    let (f, _) = s.finish();
    assert_eq!(calls_of(&f, 40000), 1, "A's own call");
    assert_eq!(calls_of(&f, 40001), 1, "B's call, sent by thread 2");
}
