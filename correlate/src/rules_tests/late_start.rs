//! Recordings that start while the services are busy: some threads are mid-request and some
//! connections were opened for requests the recording never saw begin. Each case was first
//! seen on the testbed with `--record-after`.

use super::{span_on, Sim, INGRESS};
use crate::event::{Kind, Sys};
use crate::model::SpanKind;

#[test]
fn a_thread_serving_an_unseen_request_takes_no_handoff() {
    let mut s = Sim::new();
    // Thread 3 reads a request nginx sent before the recording began: nobody can name it.
    s.recv(3, 5, 18081, 41001, 109);
    known_request_wakes_thread_3(&mut s);
    s.send(3, 9, 42001, 16379, 24); // for its own request
    assert_thread_3_outside_known_request(s);
}

/// A request seen from its start, served by thread 4, which wakes thread 3 (a lock both take).
fn known_request_wakes_thread_3(s: &mut Sim) {
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73);
    s.send(2, 8, 41000, 18081, 109);
    s.recv(4, 6, 18081, 41000, 109);
    s.wake(4, 3);
}

fn assert_thread_3_outside_known_request(s: Sim) {
    let (f, _) = s.finish();
    let known = f
        .iter()
        .find(|r| r.request.client_tid == Some(1))
        .expect("the request");
    assert!(
        known.spans.iter().all(|sp| sp.tid != 3),
        "thread 3's work is not the known request's: {:?}",
        known.spans
    );
}

#[test]
fn the_first_call_on_a_connection_opened_before_the_recording_is_not_the_current_request() {
    let mut s = Sim::new();
    s.syscall(2, Sys::Wait, 5, 1, &[]); // nginx: an event loop
                                        // nginx connected before the recording; the handshake completes now (listen queue full).
    let up = s.sock_event(0, Kind::SetState, 0xf0, 41000, 18081);
    s.push(up);
    s.send(1, 3, 40000, INGRESS, 73);
    s.recv(2, 7, INGRESS, 40000, 73); // a new request arrives in the same round
    s.send(2, 8, 41000, 18081, 110); // the old request, written once the connection is up
    s.send(2, 9, 41002, 18081, 111); // the new request, on another connection
    s.syscall(2, Sys::Wait, 5, 1, &[]);
    s.send(11, 4, 40001, INGRESS, 73);
    s.recv(2, 10, INGRESS, 40001, 73);
    s.send(2, 8, 41000, 18081, 111); // later, the connection carries a known request
    let (f, _) = s.finish();
    let calls = |client: i32| {
        f.iter()
            .find(|r| r.request.client_tid == Some(client))
            .map(|r| {
                r.spans
                    .iter()
                    .filter(|sp| sp.kind == SpanKind::Client)
                    .filter_map(|sp| sp.tuple.map(|t| t.local.port))
                    .collect::<Vec<_>>()
            })
    };
    assert_eq!(calls(1), Some(vec![41002]));
    assert_eq!(calls(11), Some(vec![41000]));
    assert!(span_on(&f[0], 2, SpanKind::Server).is_some());
}

#[test]
fn a_thread_blocked_in_a_call_when_the_recording_began_takes_no_handoff() {
    let mut s = Sim::new();
    // Thread 3 was waiting for redis when the recording began: the reply arrives now.
    s.recv(3, 9, 42001, 16379, 7);
    known_request_wakes_thread_3(&mut s);
    s.send(3, 9, 42001, 16379, 23); // its unknown request's next call
    assert_thread_3_outside_known_request(s);
}
