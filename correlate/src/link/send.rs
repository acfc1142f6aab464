//! Sends: which request a send carries, outgoing calls, and queueing the bytes sent.

use crate::engine::{Bracket, Call, Engine};
use crate::event::{Event, Tuple};
use crate::model::{Rule, SpanKind};
use crate::socket::Role;
use crate::stream::Tag;

impl Engine {
    /// Queues `len` bytes that `tid` sent on `sender` for `tag`, in a syscall begun at `started`.
    pub(crate) fn enqueue(
        &mut self,
        sender: Tuple,
        len: i64,
        tag: Option<Tag>,
        tid: i32,
        started: i64,
    ) {
        let s = self
            .streams
            .entry((sender.local, sender.remote))
            .or_default();
        self.stats.dropped_segments += s.send(len, tag, tid, started) as u64;
    }

    pub(crate) fn resolve_send(
        &mut self,
        ev: &Event,
        b: &Bracket,
        tgid: i32,
        ret: i64,
    ) -> Option<Tag> {
        let tuple = self.bracket_socket(b, tgid, b.send_tuple)?;
        let n = if b.len > 0 { b.len } else { ret };
        let tag = match b.send_tag {
            Some(t) => t,
            // The bracket is no longer the thread's: its fd is passed along.
            None => self.send_tag(ev.tid, tuple, b.start, b.fd),
        };
        if n > b.probed {
            self.enqueue(tuple, n - b.probed, tag, ev.tid, b.start);
        }
        // The bytes were readable at their last delivery, which can be well before the
        // sender's syscall returns (the sender may be preempted on its way out).
        let sent = match b.last_probe {
            Some(p) if n <= b.probed => p,
            _ => ev.ts,
        };
        if let Some(tag) = tag {
            self.extend_span(tag, ev.tid, sent, 0, n);
            if let Some(r) = self.requests.get_mut(&tag.request) {
                if r.root == tag.span {
                    r.end = r.end.max(sent);
                    r.responded = true;
                }
            }
        }
        tag
    }

    /// Which request a send on `tuple` by `tid` carries; opens a client span when it starts
    /// an outgoing call. Called once per send syscall, on file descriptor `fd`.
    pub(crate) fn send_tag(
        &mut self,
        tid: i32,
        tuple: Tuple,
        ts: i64,
        fd: Option<i64>,
    ) -> Option<Tag> {
        let tgid = self.threads.get(&tid).and_then(|t| t.tgid).unwrap_or(tid);
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            if let Some(t) = b.send_tag {
                return t;
            }
        }
        let sock = self.sock(tuple, tgid, fd);
        let tag = match sock.role {
            Role::Server => {
                let rx = sock.rx;
                if rx.is_some() {
                    sock.responded = true;
                }
                if let Some(t) = self.threads.get_mut(&tid) {
                    match rx {
                        None => t.unknown = false, // its unknown request answered
                        Some(rx) if t.current == Some(rx) => t.current = None,
                        Some(_) => {}
                    }
                }
                rx
            }
            Role::Client => self.client_call(tid, tuple, ts, fd),
        };
        if let Some(b) = self.threads.get_mut(&tid).and_then(|t| t.bracket.as_mut()) {
            b.send_tag = Some(tag);
        }
        tag
    }

    pub(crate) fn client_call(
        &mut self,
        tid: i32,
        tuple: Tuple,
        ts: i64,
        fd: Option<i64>,
    ) -> Option<Tag> {
        let t = self.threads.get_mut(&tid)?;
        let event_loop = t.event_loop;
        let key = fd.map(|fd| (t.tgid.unwrap_or(tid), fd));
        let owner = key.and_then(|k| self.conn_owner.get(&k).copied());
        let open_call = self
            .socks
            .get(&tuple)
            .and_then(|s| s.call)
            .filter(|c| !c.replied);
        // A connection that came up during the recording, though no connect of it was seen,
        // was opened before the recording for a request the recording cannot name (nginx
        // writes such a request once the handshake completes, amid the current request's
        // work). Its first call is that unknown request's, not the current one's.
        let connect_seen = key.is_some_and(|k| self.role_hints.get(&k) == Some(&Role::Client));
        let first_call = self
            .socks
            .get_mut(&tuple)
            .is_some_and(|s| !std::mem::replace(&mut s.called, true));
        if event_loop
            && owner.is_none()
            && !connect_seen
            && first_call
            && self.born.contains(&tuple)
        {
            return None;
        }
        let t = self.threads.get_mut(&tid)?;
        let (parent, rule) = match (t.current, owner, open_call, t.handoff.take()) {
            // An event loop may open connections for several requests before writing to them.
            (_, Some(o), ..) if event_loop => (o, Rule::EventLoop),
            (Some(cur), ..) if event_loop => (cur, Rule::EventLoop),
            (Some(cur), ..) => (cur, Rule::ThreadRequest),
            (None, Some(o), ..) => (o, Rule::EventLoop),
            (None, None, Some(c), _) => return Some(c.tag),
            (None, None, None, Some((tag, rule, at))) => {
                let cur = self.new_span(tag, SpanKind::Internal, tid, at, None, rule);
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.current = Some(cur);
                }
                (cur, Rule::ThreadRequest)
            }
            (None, None, None, None) => return None,
        };
        if let Some(c) = open_call {
            if c.tag.request == parent.request {
                return Some(c.tag);
            }
        }
        self.socks.get(&tuple)?;
        let tag = self.new_span(parent, SpanKind::Client, tid, ts, Some(tuple), rule);
        if let Some(sock) = self.socks.get_mut(&tuple) {
            sock.call = Some(Call {
                tag,
                parent,
                replied: false,
            });
        }
        Some(tag)
    }
}
