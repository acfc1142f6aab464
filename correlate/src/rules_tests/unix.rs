//! Unix stream sockets (testbed model `unix`: nginx -> app over a unix socket -> redis over a
//! unix socket). The kernel names only each socket's address; the peer is found by the
//! wakeup a write causes and the read that follows.

use super::*;

/// A unix socket's events: `sock_*_length` with its address and kreq's two endpoint names
/// (as `crate::input` decodes an `AF_UNIX` row).
fn unix_len(s: &mut Sim, tid: i32, kind: Kind, sk: u64, n: i64) -> Event {
    let mut e = s.ev(tid, kind);
    e.sk = Some(sk);
    e.length = Some(n);
    e.src = Some(Endpoint {
        addr: 1000 + sk as u32,
        port: 65535,
    });
    e.dst = Some(Endpoint {
        addr: 2000 + sk as u32,
        port: 1,
    });
    e
}

fn unix_send(s: &mut Sim, tid: i32, fd: i64, sk: u64, n: i64, wakes: Option<i32>) {
    let mut inner = Vec::new();
    if let Some(w) = wakes {
        let mut e = s.ev(tid, Kind::Wakeup);
        e.wake_tid = Some(w);
        inner.push(e);
    }
    inner.push(unix_len(s, tid, Kind::SockSend, sk, n));
    s.syscall(tid, Sys::Send, fd, n, &inner);
}

fn unix_recv(s: &mut Sim, tid: i32, fd: i64, sk: u64, n: i64) {
    let e = unix_len(s, tid, Kind::SockRecv, sk, n);
    s.syscall(tid, Sys::Recv, fd, n, &[e]);
}

/// Each request, by its client's port, has a server span on the app thread given for it.
fn assert_served_by(f: &[Finished], by: &[(u16, i32)]) {
    for &(port, app) in by {
        let r = request_from(f, port);
        assert!(
            span_on(r, app, SpanKind::Server).is_some(),
            "request {port} is served by thread {app}: {:?}",
            rules(r)
        );
    }
}

#[test]
fn a_unix_sockets_peer_is_the_socket_its_write_woke_a_reader_on() {
    // The front end (tid 2) forwards the request on unix socket 0xa; the app's thread (tid
    // 3), asleep in its read, is woken by that write and reads on socket 0xb. Another unix
    // connection (0xc, a log shipper) has sent bytes nobody read, of the same length.
    let mut s = Sim::new();
    unix_send(&mut s, 9, 4, 0xc, 109, None);
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    unix_send(&mut s, 2, 8, 0xa, 109, Some(3));
    unix_recv(&mut s, 3, 5, 0xb, 109);
    unix_send(&mut s, 3, 5, 0xb, 112, Some(2));
    unix_recv(&mut s, 2, 8, 0xa, 112);
    s.send(2, 7, INGRESS, 40000, 155);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    let app = span_on(&f[0], 3, SpanKind::Server).expect("the app's span");
    assert_eq!((app.bytes_in, app.bytes_out), (109, 112));
    assert_eq!(rules(&f[0]), ["thread_request", "byte_stream"]);
    let call = span_on(&f[0], 2, SpanKind::Client).expect("the front end's call");
    assert_eq!(
        call.bytes_in, 112,
        "the reply came back on the same connection"
    );
}

#[test]
fn without_a_wakeup_the_reader_takes_the_sender_of_as_many_bytes() {
    // The app's thread was running when the request arrived (no wakeup), and two sockets
    // have unread bytes: the one that sent exactly what the read returned is the peer.
    let mut s = Sim::new();
    unix_send(&mut s, 9, 4, 0xc, 50, None);
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    unix_send(&mut s, 2, 8, 0xa, 109, None);
    unix_recv(&mut s, 3, 5, 0xb, 109);
    unix_send(&mut s, 3, 5, 0xb, 112, None);
    unix_recv(&mut s, 2, 8, 0xa, 112);
    s.send(2, 7, INGRESS, 40000, 155);
    let (f, _) = s.finish();
    assert!(
        span_on(&f[0], 3, SpanKind::Server).is_some(),
        "{:?}",
        rules(&f[0])
    );
}

#[test]
fn an_accepted_connection_pairs_with_the_connect_that_woke_the_acceptor() {
    // A CI recording of the testbed model `unix`: the front end opens two upstream
    // connections (threads 2 and 3, fds 8 and 9) for two requests and writes each request
    // before the app has a thread for either; each connect woke the app's acceptor (tid 5),
    // which accepted them as fds 20 and 21 and started a thread for each (21's thread reads
    // first). The requests are the same length, and no write woke its reader.
    let mut s = Sim::new();
    s.tgids.insert(3, 2);
    s.tgids.insert(6, 5);
    s.tgids.insert(7, 5);
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(1, 4, 40001, INGRESS, 73);
    s.recv(3, 10, INGRESS, 40001, 73);
    for (tid, fd, accepted) in [(2, 8, 20), (3, 9, 21)] {
        let mut w = s.ev(tid, Kind::Wakeup);
        w.wake_tid = Some(5);
        s.syscall(tid, Sys::Connect, fd, 0, &[w]);
        s.syscall(5, Sys::Accept, 3, accepted, &[]);
    }
    unix_send(&mut s, 2, 8, 0xa, 109, None); // request 40000's
    unix_send(&mut s, 3, 9, 0xb, 109, None); // request 40001's
    unix_recv(&mut s, 7, 21, 0xd, 109);
    unix_recv(&mut s, 6, 20, 0xc, 109);
    unix_send(&mut s, 7, 21, 0xd, 112, None);
    unix_send(&mut s, 6, 20, 0xc, 112, None);
    unix_recv(&mut s, 3, 9, 0xb, 112);
    unix_recv(&mut s, 2, 8, 0xa, 112);
    s.send(2, 7, INGRESS, 40000, 155);
    s.send(3, 10, INGRESS, 40001, 155);
    let (f, _) = s.finish();
    assert_served_by(&f, &[(40000, 6), (40001, 7)]);
}

#[test]
fn a_read_before_the_waking_send_returns_takes_that_sends_request() {
    // A CI recording of the testbed model `unix` (kept as `model-unix-failed-12470`): nginx's
    // `writev` (tid 2) woke the app's reader (tid 3) on the other CPU, which read the 87
    // bytes 5.8 µs before the `writev` recorded its `sock_send_length`. The connection is
    // known from an earlier request, whose reply the app sent.
    let mut s = Sim::new();
    // The first request pairs the sockets the usual way.
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    unix_send(&mut s, 2, 8, 0xa, 87, Some(3));
    unix_recv(&mut s, 3, 5, 0xb, 87);
    unix_send(&mut s, 3, 5, 0xb, 112, Some(2));
    unix_recv(&mut s, 2, 8, 0xa, 112);
    s.send(2, 7, INGRESS, 40000, 155);
    // The second: the read completes inside the send.
    s.send(1, 4, 40001, INGRESS, 73);
    s.recv(2, 10, INGRESS, 40001, 73);
    let mut enter = s.ev(2, Kind::Enter(Sys::Send));
    enter.fd = Some(8);
    s.push(enter);
    let mut wake = s.ev(2, Kind::Wakeup);
    wake.wake_tid = Some(3);
    s.push(wake);
    unix_recv(&mut s, 3, 5, 0xb, 87);
    let len = unix_len(&mut s, 2, Kind::SockSend, 0xa, 87);
    s.push(len);
    let mut exit = s.ev(2, Kind::Exit(Sys::Send));
    exit.ret = Some(87);
    s.push(exit);
    unix_send(&mut s, 3, 5, 0xb, 112, Some(2));
    unix_recv(&mut s, 2, 8, 0xa, 112);
    s.send(2, 10, INGRESS, 40001, 155);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 2);
    for r in &f {
        let app = span_on(r, 3, SpanKind::Server).expect("the app's span");
        assert_eq!((app.bytes_in, app.bytes_out), (87, 112), "{:?}", rules(r));
    }
}

/// Three clients' requests reach nginx's threads 2, 3 and 4 on ports 40000 to 40002.
fn nginx_clients(s: &mut Sim) {
    for (tid, fd, port) in [(2, 7, 40000u16), (3, 11, 40001), (4, 12, 40002)] {
        s.send(1, 3 + i64::from(port - 40000), port, INGRESS, 73);
        s.recv(tid, fd, INGRESS, port, 73);
    }
}

/// nginx's threads 2, 3 and 4 send their requests to the app on their unix connections (fds 8,
/// 9 and 10, sockets 0xa, 0xb and 0xe).
fn nginx_requests(s: &mut Sim) {
    for (tid, fd, sk) in [(2, 8, 0xa), (3, 9, 0xb), (4, 10, 0xe)] {
        unix_send(s, tid, fd, sk, 109, None);
    }
}

/// nginx's threads 2, 3 and 4 read the app's 112-byte replies on their unix connections (fds
/// 8, 9, 10) and answer their clients; the request on port 40000 must be served by app
/// thread 6, 40001 by 7, 40002 by 8.
fn nginx_answers(mut s: Sim) {
    for (tid, fd, sk, ingress, port) in [
        (2, 8, 0xa, 7, 40000u16),
        (3, 9, 0xb, 11, 40001),
        (4, 10, 0xe, 12, 40002),
    ] {
        unix_recv(&mut s, tid, fd, sk, 112);
        s.send(tid, ingress, INGRESS, port, 155);
    }
    let (f, _) = s.finish();
    assert_served_by(&f, &[(40000, 6), (40001, 7), (40002, 8)]);
}

/// `tid` connects on `fd` with no TCP state change, waking `wakes` (an acceptor) if any.
fn connect(s: &mut Sim, tid: i32, fd: i64, wakes: Option<i32>) {
    let inner: Vec<Event> = wakes
        .map(|w| {
            let mut e = s.ev(tid, Kind::Wakeup);
            e.wake_tid = Some(w);
            e
        })
        .into_iter()
        .collect();
    s.syscall(tid, Sys::Connect, fd, 0, &inner);
}

#[test]
fn a_busy_acceptors_connections_break_length_ties_in_listen_queue_order() {
    // CI recordings of the testbed model `unix` (kept as `model-unix-failed-21094` and
    // `-20437`): nginx (threads 2, 3, 4 of one process) opens three upstream connections.
    // The first wakes the app's acceptor (tid 5), which is then busy while the other two
    // queue, so their connects wake nobody; nginx also accepts a TCP client meanwhile. The
    // app accepts fds 20, 21, 22 and starts a thread for each; the thread on 22 reads first,
    // and all three requests are 109 bytes, none of whose writes woke its reader.
    let mut s = nginx_queued_at_the_app();
    s.syscall(2, Sys::Accept, 4, 30, &[]); // nginx's TCP listener: takes no unix connect
    for accepted in [20, 21, 22] {
        s.syscall(5, Sys::Accept, 3, accepted, &[]);
    }
    nginx_requests(&mut s);
    for (app, fd, sk) in [(8, 22, 0xf), (7, 21, 0xd), (6, 20, 0xc)] {
        unix_recv(&mut s, app, fd, sk, 109);
        unix_send(&mut s, app, fd, sk, 112, None);
    }
    nginx_answers(s);
}

/// nginx (threads 2, 3, 4 of process 2) and the app (threads 6, 7, 8 of process 5): nginx's
/// clients send, and nginx's three upstream `connect`s queue at the app's acceptor (tid 5),
/// only the first waking it.
fn nginx_queued_at_the_app() -> Sim {
    let mut s = Sim::new();
    for (tid, tgid) in [(3, 2), (4, 2), (6, 5), (7, 5), (8, 5)] {
        s.tgids.insert(tid, tgid);
    }
    nginx_clients(&mut s);
    for (tid, fd, wakes) in [(2, 8, Some(5)), (3, 9, None), (4, 10, None)] {
        connect(&mut s, tid, fd, wakes);
    }
    s
}

#[test]
fn a_connect_another_listener_guessed_goes_back_to_the_listen_queue() {
    // A CI recording of the testbed model `unix` (100 of 200 exact): nginx (threads 2, 3, 4)
    // queued three upstream connections at the app's acceptor (tid 5), only the first waking
    // it. Meanwhile an app thread's connect to redis (tid 9) woke nobody, and redis's accept
    // guessed nginx's second connect as its peer (no event names the listener). Its first read
    // paired it with the app's connect instead: nginx's connect must go back to the queue for
    // the app's next accept.
    let mut s = nginx_queued_at_the_app();
    s.syscall(5, Sys::Accept, 3, 20, &[]);
    // App thread 6 connects to redis, waking it: redis's listener is known.
    connect(&mut s, 6, 30, Some(9));
    s.syscall(9, Sys::Accept, 6, 40, &[]);
    // App thread 7's connect to redis wakes nobody; redis's accept guesses nginx's connect.
    connect(&mut s, 7, 31, None);
    s.syscall(9, Sys::Accept, 6, 41, &[]);
    nginx_requests(&mut s);
    unix_send(&mut s, 7, 31, 0x71, 24, None);
    unix_recv(&mut s, 9, 41, 0x91, 24);
    for accepted in [21, 22] {
        s.syscall(5, Sys::Accept, 3, accepted, &[]);
    }
    for (app, fd, sk) in [(6, 20, 0xc), (8, 22, 0xf), (7, 21, 0xd)] {
        unix_recv(&mut s, app, fd, sk, 109);
        unix_send(&mut s, app, fd, sk, 112, None);
    }
    nginx_answers(s);
}

#[test]
fn a_listen_queue_guess_takes_a_connect_of_a_program_that_calls_that_listener() {
    // A CI recording of the testbed model `unix` (103 of 200 exact): as above, but the app's
    // next accept came before redis's first read could refute redis's guess. A unix listener
    // is called by the programs whose `connect`s woke it (nginx's worker processes share a
    // name): redis's accept does not guess nginx's `connect`.
    let mut s = Sim::new();
    for (tid, tgid) in [(3, 2), (6, 5), (7, 5), (8, 5)] {
        s.tgids.insert(tid, tgid);
    }
    // nginx runs two worker processes (2 with thread 3, and 4); the app is 5, redis 9.
    for (tid, comm) in [
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 2),
        (6, 2),
        (7, 2),
        (8, 2),
        (9, 3),
    ] {
        s.comms.insert(tid, comm);
    }
    nginx_clients(&mut s);
    connect(&mut s, 2, 8, Some(5));
    connect(&mut s, 3, 9, None);
    connect(&mut s, 4, 10, None);
    s.syscall(5, Sys::Accept, 3, 20, &[]);
    connect(&mut s, 6, 30, Some(9));
    s.syscall(9, Sys::Accept, 6, 40, &[]);
    connect(&mut s, 7, 31, None);
    s.syscall(9, Sys::Accept, 6, 41, &[]);
    for accepted in [21, 22] {
        s.syscall(5, Sys::Accept, 3, accepted, &[]);
    }
    nginx_requests(&mut s);
    unix_send(&mut s, 7, 31, 0x71, 24, None);
    unix_recv(&mut s, 9, 41, 0x91, 24);
    for (app, fd, sk) in [(6, 20, 0xc), (8, 22, 0xf), (7, 21, 0xd)] {
        unix_recv(&mut s, app, fd, sk, 109);
        unix_send(&mut s, app, fd, sk, 112, None);
    }
    nginx_answers(s);
}
