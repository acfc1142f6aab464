//! Unix stream sockets: which socket is whose peer.
//!
//! The kernel names no address for a unix socket: `sock_send_length` and `sock_recv_length`
//! give only the socket's address (`sk`), and no event names its peer. What the kernel does
//! show is causal: a write on one end wakes the thread waiting on the other end (its reader,
//! or the event loop polling it) inside the write's syscall, and that thread's next read is on
//! the peer socket, of the bytes written. So a read on a socket with no known peer takes, as
//! its peer, a socket that sent bytes nobody has read yet:
//!
//! 1. the one `connect`ed to the fd this read is on: a `connect` wakes the thread waiting to
//!    accept (inside the `connect`), and that thread's next `accept` takes the oldest
//!    connection that woke it (listen queues are first in, first out). In a CI recording of
//!    the testbed model `unix`, nginx opened 4 upstream connections before the app's threads
//!    for them existed, so no read was woken by its peer's write; without this rule 8 of 200
//!    requests lost their redis calls to another connection;
//! 2. else one whose last send woke this thread (the testbed model `unix` showed it on every
//!    exchange where the reader was asleep);
//! 3. else one whose unread bytes are exactly what this read returned: the one a first-in,
//!    first-out listen queue connected to this fd if it is among them
//!    ([`Engine::unix_accepted`]), else the oldest (an event loop woken once reads the
//!    sockets in the order they became readable);
//! 4. else the only one with unread bytes.
//!
//! The first side seen sending names the connection: its socket is `unix:SK` and its peer
//! `unix:SK-peer` ([`crate::input`]); the peer found later takes the second name. The byte
//! streams, roles and requests then work as for TCP. Sockets are forgotten at `close`, since
//! the kernel reuses socket addresses.

use crate::engine::{Bracket, Engine, UnixConnect, UnixSend};
use crate::event::{Event, Sys, Tuple};
use crate::stream::Tag;

/// How many unpaired senders are kept: a unix socket's first message is read within
/// microseconds; a sender whose bytes nobody reads (its peer is not traced) must not grow.
const MAX_UNPAIRED: usize = 256;

impl Engine {
    /// A send (`sending`) or receive of `n` bytes by `tid` on a unix socket: names the socket
    /// with its tuple ([`Engine::bracket_socket`] then finds it) when it has none yet.
    pub(crate) fn unix_socket(&mut self, b: &Bracket, tid: i32, tgid: i32, sending: bool, n: i64) {
        let (Some((end, peer)), Some(sk)) = (b.unix, b.sk) else {
            return;
        };
        let at = (tgid, b.fd.unwrap_or(-1));
        let known = self.sks.tuple(sk).is_some();
        if sending {
            if let Some(u) = self.unix_unpaired.iter_mut().find(|u| u.sk == sk) {
                u.sent += n;
                u.woke = b.woke.or(u.woke);
                return;
            }
            if known {
                return;
            }
            let tuple = Tuple {
                local: end,
                remote: peer,
            };
            // A new connection on a reused socket address: nothing of the old one is due.
            self.streams.remove(&(end, peer));
            self.streams.remove(&(peer, end));
            self.learn_unix(sk, tuple);
            self.unix_unpaired.push(UnixSend {
                sk,
                from: at,
                end,
                peer,
                sent: n,
                woke: b.woke,
            });
            if self.unix_unpaired.len() > MAX_UNPAIRED {
                self.unix_unpaired.remove(0);
            }
            return;
        }
        if known {
            return;
        }
        let others = || {
            self.unix_unpaired
                .iter()
                .enumerate()
                .filter(|(_, u)| u.sk != sk)
        };
        let connected = self.unix_peer_fd.get(&at).copied();
        let guess = self.unix_peer_guess.get(&at).copied();
        let queued = guess.map(|g| g.from);
        let pick = others()
            .find(|(_, u)| Some(u.from) == connected)
            .or_else(|| others().rfind(|(_, u)| u.woke == Some(tid)))
            .or_else(|| others().find(|(_, u)| u.sent == n && Some(u.from) == queued))
            .or_else(|| others().find(|(_, u)| u.sent == n))
            .or_else(|| {
                let mut all = others();
                let one = all.next();
                one.filter(|_| all.next().is_none())
            })
            .map(|(i, _)| i);
        let Some(i) = pick else {
            return;
        };
        let u = self.unix_unpaired.remove(i);
        // The listen-queue guess was another listener's `connect` (no event names the
        // listener): it goes back to the head of the queue for the accept it belongs to. A CI
        // recording of the testbed model `unix`: redis's accept guessed nginx's second queued
        // `connect` to the app, and the app's next accept then guessed the third (100 of 200
        // exact).
        if let Some(g) = guess.filter(|g| g.from != u.from) {
            self.unix_peer_guess.remove(&at);
            self.unix_connects.push_front(g);
        }
        self.learn_unix(
            sk,
            Tuple {
                local: u.peer,
                remote: u.end,
            },
        );
    }

    /// What a read of bytes nobody was seen sending on unix connection `tuple` (the reader's
    /// view) carries, when the send is still in flight: a thread inside a send on the other
    /// end that woke this reader. A unix send queues its bytes on the peer and wakes the reader
    /// before it returns, and `sock_send_length` fires only on return; a reader woken onto the
    /// other CPU can read first (the testbed model `unix` in a CI run: nginx's `writev` woke
    /// the app's reader, which read the 87 bytes 5.8 µs before the `writev` recorded its
    /// length). The send's tag is fixed now, so that the send, when it returns, carries the
    /// same one and pays the bytes this read owes.
    pub(crate) fn unix_send_in_flight(&mut self, ev: &Event, tuple: Tuple) -> Option<Tag> {
        let sender = Tuple {
            local: tuple.remote,
            remote: tuple.local,
        };
        let (tid, fd, start) = self.threads.iter().find_map(|(&tid, t)| {
            let b = t.bracket.as_ref()?;
            let on_peer =
                b.fd.and_then(|fd| self.fds.get(&(t.tgid.unwrap_or(tid), fd)));
            (b.sys == Some(Sys::Send)
                && b.woke == Some(ev.tid)
                && b.probed == 0
                && on_peer == Some(&sender))
            .then_some((tid, b.fd, b.start))
        })?;
        self.send_tag(tid, sender, start, fd)
    }

    /// `connect` of (process `tgid`, `fd`) by a task named `comm` returned with no TCP state
    /// change; it woke `woke`.
    pub(crate) fn unix_connected(&mut self, tgid: i32, fd: i64, woke: Option<i32>, comm: u32) {
        self.unix_connects.push_back(UnixConnect {
            from: (tgid, fd),
            woke,
            comm,
        });
        if self.unix_connects.len() > MAX_UNPAIRED {
            self.unix_connects.pop_front();
        }
    }

    /// Thread `tid` of process `tgid` accepted a connection as `fd`: the oldest `connect`
    /// that woke it is at the other end.
    ///
    /// When the acceptor was busy as the connections came, their `connect`s woke nobody, and
    /// the one a first-in, first-out listen queue gives is the oldest from another process
    /// that woke nobody, if it was made to this listener: no event names the listener, so a
    /// `connect` to another server can be first in line. So the guess is made only on a
    /// listening fd (`listen_fd`) that has accepted a `connect` that woke it (so it is a unix
    /// listener; a TCP accept must not take a unix `connect`), and it only breaks a tie
    /// between sockets whose unread bytes are the same length. CI recordings of the testbed
    /// model `unix` showed the case: nginx opened its four upstream connections while the
    /// app's acceptor was busy, each app thread's first read found two 85-byte requests
    /// unread, and two threads took each other's (97 and 100 of 200 exact; 200 with the
    /// guess). Guessing on every accept lost recordings where an nginx worker's TCP accept
    /// took an nginx `connect` (47 of 200).
    pub(crate) fn unix_accepted(&mut self, tgid: i32, tid: i32, listen_fd: Option<i64>, fd: i64) {
        let listener = (tgid, listen_fd.unwrap_or(-1));
        if let Some(i) = self.unix_connects.iter().position(|c| c.woke == Some(tid)) {
            if let Some(c) = self.unix_connects.remove(i) {
                self.unix_peer_fd.insert((tgid, fd), c.from);
                let callers = self.unix_listeners.entry(listener).or_default();
                if !callers.contains(&c.comm) {
                    callers.push(c.comm);
                }
            }
            return;
        }
        let Some(callers) = self.unix_listeners.get(&listener) else {
            return;
        };
        // Only a program seen calling this listener: another listener's queued `connect`s are
        // not in this queue. A CI recording of the testbed model `unix` (103 of 200 exact):
        // redis accepted while nginx's `connect`s to the app were queued, and took one as its
        // guess before its first read could refute it.
        let queued = self
            .unix_connects
            .iter()
            .position(|c| c.woke.is_none() && c.from.0 != tgid && callers.contains(&c.comm));
        if let Some(c) = queued.and_then(|i| self.unix_connects.remove(i)) {
            self.unix_peer_guess.insert((tgid, fd), c);
        }
    }

    /// (process, fd) was closed: it connects nothing any more.
    pub(crate) fn unix_forget_fd(&mut self, tgid: i32, fd: i64) {
        self.unix_peer_fd.remove(&(tgid, fd));
        self.unix_peer_guess.remove(&(tgid, fd));
        self.unix_connects.retain(|c| c.from != (tgid, fd));
    }

    fn learn_unix(&mut self, sk: u64, tuple: Tuple) {
        self.sks.learn(sk, tuple);
        self.unix_sks.insert(tuple, sk);
    }

    /// A file descriptor on `tuple` was closed: if it was a unix socket, its address is free
    /// for the next socket.
    pub(crate) fn unix_closed(&mut self, tuple: Tuple) {
        if let Some(sk) = self.unix_sks.remove(&tuple) {
            self.sks.destroyed(Some(sk), tuple);
            self.unix_unpaired.retain(|u| u.sk != sk);
        }
    }
}
