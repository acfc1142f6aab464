//! Races between threads and CPUs, each first seen in a real recording on the testbed: the
//! linking rules must hold when events of one exchange land in unexpected contexts.

use super::{ep, rules, span_on, Sim, INGRESS};
use crate::event::{Kind, Sys};
use crate::model::SpanKind;

#[test]
fn a_first_send_on_a_fresh_connection_resolves_through_its_socket_address() {
    // Recorded in CI (testbed): the app connects to redis while serving a request; the first
    // send's segment reached redis in redis's own context (its backlog), so the send carried
    // only `sock_send_length` with the socket address. `inet_sock_set_state` during the
    // connect had named that address with its 4-tuple.
    let (client_sk, server_sk) = (0xa0, 0xb0);
    let mut s = Sim::new();
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    let unbound = s.sock_event(2, Kind::SetState, client_sk, 0, 16379); // CLOSE -> SYN_SENT
    let established = s.sock_event(2, Kind::SetState, client_sk, 41000, 16379);
    let peer = s.sock_event(2, Kind::SetState, server_sk, 16379, 41000);
    s.syscall(2, Sys::Connect, 8, 0, &[unbound, established, peer]);
    s.send_unprobed(2, 8, client_sk, 24);
    s.recv(5, 9, 16379, 41000, 24);
    s.send(5, 9, 16379, 41000, 4);
    s.recv(2, 8, 41000, 16379, 4);
    s.send(2, 8, 41000, 16379, 23);
    s.recv(5, 9, 16379, 41000, 23);
    s.send(5, 9, 16379, 41000, 7);
    s.recv(2, 8, 41000, 16379, 7);
    assert_eq!(s.e.stats().unseen_bytes, 0);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    let backend: Vec<_> = f[0]
        .spans
        .iter()
        .filter(|sp| sp.tid == 5 && sp.kind == SpanKind::Server)
        .map(|sp| sp.bytes_in)
        .collect();
    assert_eq!(
        backend,
        [24, 23],
        "both calls reached redis within the request"
    );
}

#[test]
fn an_fd_reused_while_its_close_is_still_running_is_not_the_old_socket() {
    // Recorded on the testbed: one app thread closes its redis socket (fd 22); the fd is free
    // as soon as close begins, and another thread of the process opens a file as fd 22 and
    // reads it before the close returns. That read must not count as bytes of the socket.
    let mut s = Sim::new();
    let app = 50;
    let in_app = |s: &mut Sim, tid: i32, kind: Kind| {
        let mut e = s.ev(tid, kind);
        e.tgid = Some(app);
        e
    };
    let mut rs = in_app(&mut s, 51, Kind::RcvSpace);
    rs.src = Some(ep(41000));
    rs.dst = Some(ep(16379));
    let mut enter = in_app(&mut s, 51, Kind::Enter(Sys::Recv));
    enter.fd = Some(22);
    let mut exit = in_app(&mut s, 51, Kind::Exit(Sys::Recv));
    exit.ret = Some(4);
    for e in [enter, rs, exit] {
        s.push(e);
    }
    let mut close = in_app(&mut s, 51, Kind::Enter(Sys::Close));
    close.fd = Some(22);
    s.push(close);
    let mut read = in_app(&mut s, 52, Kind::Enter(Sys::Recv));
    read.fd = Some(22);
    s.push(read);
    let mut done = in_app(&mut s, 52, Kind::Exit(Sys::Recv));
    done.ret = Some(2048);
    s.push(done);
    let mut closed = in_app(&mut s, 51, Kind::Exit(Sys::Close));
    closed.ret = Some(0);
    s.push(closed);
    assert_eq!(s.e.stats().unseen_bytes, 4, "only the socket's own 4 bytes");
}

#[test]
fn an_event_loop_send_without_a_data_probe_still_finds_its_connection_owner() {
    // Recorded on the testbed with 64 connections: the app's listen queue was full, nginx's
    // SYN was retried a second later, and the request rode on the handshake's last ACK, so
    // no `tcp_probe` carried its bytes. The send resolved at its exit, after the syscall's
    // fd was no longer at hand; the connection's owner must still be found by that fd.
    let sk = 0xc0;
    let mut s = Sim::new();
    s.syscall(2, Sys::Wait, 5, 1, &[]);
    s.recv(2, 7, INGRESS, 40000, 73);
    forward_over_a_late_handshake(&mut s, 9, 69, sk); // completed in a softirq elsewhere
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    assert!(
        span_on(&f[0], 2, SpanKind::Client).is_some(),
        "nginx's call"
    );
    assert!(
        span_on(&f[0], 3, SpanKind::Server).is_some(),
        "the app's span"
    );
    assert_eq!(rules(&f[0]), ["event_loop", "byte_stream"]);
}

/// nginx (event loop, thread 2) connects on `fd` while serving a request, waits, sees the
/// handshake of socket `sk` complete in a softirq on thread `softirq_tid`, then forwards 110
/// bytes with no data probe inside the send; the app (thread 3) reads them.
fn forward_over_a_late_handshake(s: &mut Sim, softirq_tid: i32, fd: i64, sk: u64) {
    s.syscall(2, Sys::Connect, fd, -115, &[]);
    s.syscall(2, Sys::Wait, 5, 1, &[]);
    let mut up = s.sock_event(softirq_tid, Kind::SetState, sk, 41000, 18081);
    up.irq = true;
    s.push(up);
    s.send_unprobed(2, fd, sk, 110);
    s.recv(3, 4, 18081, 41000, 110);
}

#[test]
fn a_handshake_completed_on_an_idle_cpu_still_names_the_socket() {
    // Recorded on the testbed with 128 connections: the client side reached ESTABLISHED in a
    // softirq on an idle CPU (thread 0), and the send that followed carried no data probe
    // (the server's accept queue was full; the segment was retransmitted much later).
    let sk = 0xd0;
    let mut s = Sim::new();
    s.syscall(2, Sys::Wait, 5, 1, &[]);
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    forward_over_a_late_handshake(&mut s, 0, 32, sk); // completed on an idle CPU
    assert_eq!(s.e.stats().unseen_bytes, 0);
    let (f, _) = s.finish();
    assert!(
        span_on(&f[0], 3, SpanKind::Server).is_some(),
        "the app's span"
    );
}

#[test]
fn a_duplicate_child_socket_destroyed_at_once_does_not_end_the_connection() {
    // Recorded on the testbed with 96 connections: two CPUs completed one handshake, the
    // kernel made a second child socket for the same 4-tuple and destroyed it right after the
    // request's bytes were sent; the bytes must still be waiting for the app.
    let (client, child, twin) = (0xe0, 0xe1, 0xe2);
    let mut s = Sim::new();
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    // All in softirqs: the handshake on two CPUs, then the twin's end.
    let softirq = |s: &mut Sim, tid: i32, kind: Kind, sk: u64, local: u16, remote: u16| {
        let mut e = s.sock_event(tid, kind, sk, local, remote);
        e.irq = true;
        s.push(e);
    };
    softirq(&mut s, 2, Kind::SetState, client, 41000, 18081);
    softirq(&mut s, 2, Kind::SetState, child, 18081, 41000);
    softirq(&mut s, 8, Kind::SetState, twin, 18081, 41000);
    s.send_unprobed(2, 9, client, 110);
    softirq(&mut s, 8, Kind::Destroy, twin, 18081, 41000);
    s.recv(3, 4, 18081, 41000, 110);
    assert_eq!(s.e.stats().unseen_bytes, 0);
    let (f, _) = s.finish();
    assert!(
        span_on(&f[0], 3, SpanKind::Server).is_some(),
        "the app's span"
    );
}

#[test]
fn io_that_fires_no_socket_event_is_not_on_a_socket() {
    // Recorded in CI (testbed model `java`): a pool thread wakes the selector by writing 8
    // bytes to an eventfd; a segment of a client connection is delivered in a softirq during
    // that write (its `tcp_probe` lands in the write's bracket). The selector then reads the
    // eventfd. Neither is socket I/O: no `sock_*_length` fired in them.
    let mut s = Sim::new();
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    let mut probe = s.ev(2, Kind::Probe);
    probe.irq = true;
    probe.src = Some(ep(40000));
    probe.dst = Some(ep(INGRESS));
    probe.length = Some(73);
    s.syscall(2, Sys::Send, 11, 8, &[probe]); // eventfd write
    s.syscall(3, Sys::Recv, 11, 8, &[]); // the selector reads it
    s.send(2, 7, INGRESS, 40000, 155);
    s.recv(1, 3, 40000, INGRESS, 155);
    assert_eq!(s.e.stats().unseen_bytes, 0);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1, "one request");
    assert!(
        f[0].spans.iter().all(|sp| sp.tid != 3),
        "the selector has no span"
    );
    assert_eq!(
        f[0].spans[0].bytes_out, 155,
        "the eventfd write is not part of the reply"
    );
}

#[test]
fn a_segment_received_during_a_send_is_not_that_sends_delivery() {
    // The `grpc` model (a recording scoring 0 of 300 without this): the gRPC server sends its
    // HTTP/2 settings on a connection it just accepted, while the client's preface waits in
    // the socket's backlog; the backlog is processed inside that send, so a `tcp_probe` of
    // the server's own socket fires there before `sock_send_length` names the socket. Taken
    // as the send's delivery, it named the connection with its ends swapped, and the front's
    // calls on it became answers of a server.
    let (client_sk, server_sk) = (0xc0, 0xd0);
    let mut s = Sim::new();
    s.recv(10, 7, INGRESS, 40000, 73);
    // The front's preface: a send on an fd whose socket nothing names yet.
    s.syscall(10, Sys::Send, 12, 82, &[]);
    s.syscall(20, Sys::Accept, 6, 8, &[]);
    let own = s.probe(20, server_sk, 19082, 41000, 82);
    let len = s.send_length(20, server_sk, 46);
    s.syscall(20, Sys::Send, 8, 46, &[own, len]);
    s.recv(20, 8, 19082, 41000, 82);
    // The front reads the settings, then calls on the connection.
    s.recv(11, 12, 41000, 19082, 46);
    let mut probe = s.probe(10, server_sk, 19082, 41000, 66);
    probe.irq = true;
    let len = s.send_length(10, client_sk, 66);
    s.syscall(10, Sys::Send, 12, 66, &[probe, len]);
    s.recv(20, 8, 19082, 41000, 66);
    s.send(20, 8, 19082, 41000, 50);
    s.recv(10, 12, 41000, 19082, 50);
    s.send(10, 7, INGRESS, 40000, 100);
    let (f, _) = s.finish();
    assert_eq!(f.len(), 1);
    let call = span_on(&f[0], 10, SpanKind::Client).expect("the front's call");
    let server = span_on(&f[0], 20, SpanKind::Server).expect("the server's span");
    assert_eq!(server.parent, Some(call.id));
    assert_eq!(
        call.tuple.map(|t| (t.local.port, t.remote.port)),
        Some((41000, 19082))
    );
    assert_eq!(rules(&f[0]), ["thread_request", "byte_stream"]);
}

#[test]
fn a_read_before_the_send_names_its_socket_still_finds_the_sender() {
    // The `unix` model in a CI run: the load generator's first send on a fresh connection
    // (its probe held until `sock_send_length`, see the test above) was read by nginx on the
    // other CPU before that `sock_send_length`: the request lost its client (not found).
    let mut s = Sim::new();
    // Some earlier traffic: the recording has socket lengths.
    s.send(1, 4, 39999, INGRESS, 10);
    s.recv(2, 6, INGRESS, 39999, 10);
    s.send(2, 6, INGRESS, 39999, 10);
    let mut enter = s.ev(1, Kind::Enter(Sys::Send));
    enter.fd = Some(3);
    s.push(enter);
    let mut probe = s.probe(1, 0xe0, INGRESS, 40000, 73);
    probe.irq = true;
    s.push(probe);
    s.recv(2, 7, INGRESS, 40000, 73);
    let len = s.send_length(1, 0xf0, 73);
    s.push(len);
    let mut exit = s.ev(1, Kind::Exit(Sys::Send));
    exit.ret = Some(73);
    s.push(exit);
    s.send(2, 7, INGRESS, 40000, 155);
    assert_eq!(s.e.stats().unseen_bytes, 0);
    let (f, _) = s.finish();
    let r = f
        .iter()
        .find(|r| r.spans[0].tuple.is_some_and(|t| t.remote.port == 40000))
        .expect("the request on the fresh connection");
    assert_eq!(r.request.client_tid, Some(1));
}
