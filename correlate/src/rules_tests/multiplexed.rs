//! Answers on a multiplexed connection (testbed model `grpc`: front-end threads share one
//! HTTP/2 channel; the gRPC server's `event_engine` thread reads the streams, pool workers call
//! redis and answer on the shared connection, in whatever order they finish).

use super::*;

/// Front thread `front` (process 10) reads a request on `fd` from `client_port` and sends its
/// call on the shared channel (fd 12, port 41000); the server's reader (tid 20) reads it.
fn call(s: &mut Sim, front: i32, fd: i64, client_port: u16) {
    s.recv(front, fd, INGRESS, client_port, 73);
    s.send(front, 12, 41000, 19082, 66);
    s.recv(20, 8, 19082, 41000, 66);
}

/// Pool worker `w` (process 20) calls redis on its own connection (`fd`, from `redis_port`;
/// redis's end is `redis_fd`), then answers on the shared connection.
fn work(s: &mut Sim, w: i32, fd: i64, redis_port: u16, redis_fd: i64) {
    s.send(w, fd, redis_port, 16379, 22);
    s.recv(30, redis_fd, 16379, redis_port, 22);
    s.send(30, redis_fd, 16379, redis_port, 4);
    s.recv(w, fd, redis_port, 16379, 4);
    s.send(w, 8, 19082, 41000, 65);
}

#[test]
fn answers_on_a_shared_connection_go_to_the_callers_woken_in_reply_order() {
    let mut s = Sim::new();
    for t in [11, 13] {
        s.tgids.insert(t, 10);
    }
    for t in [21, 22] {
        s.tgids.insert(t, 20);
    }
    // Two requests' streams read one after the other on the server's connection, neither
    // answered yet; the reader wakes two workers.
    call(&mut s, 10, 7, 40000);
    call(&mut s, 11, 9, 40001);
    s.wake(20, 21);
    s.wake(20, 22);
    s.syscall(20, Sys::Wait, 5, 0, &[]);
    // Worker 21 answers first; the last request read (thread 11's) is not what says whose.
    work(&mut s, 21, 13, 42000, 14);
    work(&mut s, 22, 16, 42001, 15);
    // The front's reader takes both answers in one read, then wakes thread 11, then 10:
    // the first answer read is thread 11's call's.
    s.recv(13, 12, 41000, 19082, 130);
    s.wake(13, 11);
    s.wake(13, 10);
    s.send(11, 9, INGRESS, 40001, 100);
    s.send(10, 7, INGRESS, 40000, 100);
    let (f, _) = s.finish();
    assert_eq!(
        f.len(),
        2,
        "the workers' stretches are not requests of their own"
    );
    let worker_of = |front: i32| {
        let r = f
            .iter()
            .find(|r| r.request.ingress_tid == front)
            .expect("the front thread's request");
        let workers: Vec<i32> = r
            .spans
            .iter()
            .filter(|sp| sp.kind == SpanKind::Internal)
            .map(|sp| sp.tid)
            .collect();
        assert!(rules(r).contains(&"reply_order"), "{:?}", rules(r));
        workers
    };
    assert_eq!(worker_of(11), [21]);
    assert_eq!(worker_of(10), [22]);
    // Each worker's redis call went with its stretch.
    for r in &f {
        assert_eq!(
            r.spans
                .iter()
                .filter(|sp| sp.tid == 30 && sp.kind == SpanKind::Server)
                .count(),
            1
        );
    }
}
