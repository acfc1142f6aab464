//! The streaming correlator: one pass over time-ordered events.
//!
//! State is per live thread (its open syscall, current request, scheduler clock), per socket
//! (role, request being served, outgoing call), per connection direction (unread bytes) and per
//! open request. Requests are handed out once they have responded and nothing touched them for
//! [`Config::linger_ns`], so memory does not grow with the length of the trace.

use hashbrown::HashMap;

mod scheduler;

use crate::event::{Endpoint, Event, Kind, Sys, Tuple};
use crate::model::{Finished, Request, Rule, Span};
use crate::sched::ThreadClock;
use crate::socket::{Ingress, Role};
use crate::stream::{Stream, Tag};

/// Receives the label of each event row attributed to a request.
pub trait LabelSink {
    /// Event `row` belongs to `tag`'s request and span.
    fn label(&mut self, row: u64, tag: Tag);
}

impl LabelSink for Vec<(u64, Tag)> {
    fn label(&mut self, row: u64, tag: Tag) {
        self.push((row, tag));
    }
}

/// Correlator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Endpoints where requests start.
    pub ingress: Vec<Ingress>,
    /// A responded request is finished once nothing touched it for this long (ns).
    pub linger_ns: i64,
    /// The first request and span id handed out (ids count up from it). A warehouse gives
    /// each batch its own range, so that ids are unique across hosts and recordings.
    pub first_id: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ingress: Vec::new(),
            linger_ns: 200_000_000,
            first_id: 1,
        }
    }
}

/// Counters of what the pass saw, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Events labelled with a request.
    pub labelled: u64,
    /// Requests started.
    pub requests: u64,
    /// Spans created.
    pub spans: u64,
    /// Edges recorded.
    pub edges: u64,
    /// Bytes read that were never seen sent (sent before the recording, or by an untraced peer).
    pub unseen_bytes: i64,
    /// Reads that took bytes of two different requests at once.
    pub mixed_reads: u64,
    /// Unread segments dropped to bound memory (a peer that never reads).
    pub dropped_segments: u64,
    /// Hops that reached a request after it was finished; joined to their parent span.
    pub late_hops: u64,
    /// Syscalls whose exit was never seen (lost events or the recording's start).
    pub unmatched_brackets: u64,
    /// Times the correlator started afresh after lost events ([`Engine::resync`]).
    pub resyncs: u64,
    /// Work of a thread with no request joined to a request: the one it then answered (rule
    /// `handoff`) or, failing that, the one a wakeup handed it when the stretch began.
    pub handoffs: u64,
    /// Such stretches that answered no request and were handed none: their calls and events
    /// stay unattributed.
    pub unresolved_stretches: u64,
    /// Links an event loop's rules made on an unsettled loop (its requests agree on no number
    /// of calls, or its due steps run late): their confidence is capped (see
    /// [`Engine::cap_unsettled`]).
    pub unsettled_links: u64,
    /// Such loops (threads).
    pub unsettled_loops: u64,
}

/// A syscall in progress on a thread: the events inside it say which socket and how much.
#[derive(Debug, Default)]
pub(crate) struct Bracket {
    pub sys: Option<Sys>,
    pub fd: Option<i64>,
    pub start: i64,
    pub rows: Vec<u64>,
    pub sk: Option<u64>,
    /// A `sock_send_length`/`sock_recv_length` fired inside: the syscall is on a socket.
    pub sock: bool,
    /// A unix stream socket's two endpoint names (see [`crate::link`]'s unix sockets).
    pub unix: Option<(Endpoint, Endpoint)>,
    /// The last thread this syscall woke (in its own context).
    pub woke: Option<i32>,
    /// An untimed signal wait (see [`crate::event::Event::signal_wait`]): a pool worker
    /// waiting for work.
    pub signal_wait: bool,
    /// This syscall woke a pool worker ([`Thread::worker`]) out of such a wait: it handed
    /// the worker work.
    pub woke_worker: bool,
    /// A TCP socket changed state inside (a TCP `connect`).
    pub tcp_state: bool,
    pub len: i64,
    pub rcv_tuple: Option<Tuple>,
    pub send_tuple: Option<Tuple>,
    /// What the send carries and the span of the sending thread it extends, once known.
    pub send_tag: Option<(Option<Tag>, Option<Tag>)>,
    pub probed: i64,
    pub last_probe: Option<i64>,
    pub data_ts: Option<i64>,
    /// `tcp_probe`s inside a send on an fd whose socket is not known yet, held until
    /// `sock_send_length` names the sending socket: a probe of that very socket is a segment
    /// it received, processed from its backlog in the sender's context, not this send's
    /// delivery. The `grpc` model's server sends its HTTP/2 settings as it accepts, while
    /// the client's preface waits in the backlog: taken as the delivery, it named the
    /// connection with its ends swapped on both sides (0 of 300 requests exact).
    pub held: Vec<Event>,
}

impl Bracket {
    /// The bytes the syscall moved, having returned `ret`: the socket events' count when
    /// they fired, else the return value.
    pub fn length(&self, ret: i64) -> i64 {
        if self.len > 0 {
            self.len
        } else {
            ret
        }
    }

    /// A send that returned `ret` at `exit`: when its bytes were readable. They were at their
    /// last delivery when every byte was seen delivered, which can be well before the
    /// syscall returns (the sender may be preempted on its way out).
    pub fn delivered(&self, ret: i64, exit: i64) -> i64 {
        let n = self.length(ret);
        match self.last_probe {
            Some(p) if n > 0 && n <= self.probed => p.min(exit),
            _ => exit,
        }
    }
}

/// A preemption outside a syscall (see [`Thread::first_preempted`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preemption {
    /// The syscall return it followed.
    pub after: i64,
    /// When the thread was switched out.
    pub at: i64,
    /// When it ran again (`i64::MAX` until then).
    pub resumed: i64,
    /// It came at the syscall's return, before any of the thread's code ran.
    pub at_return: bool,
}

impl Default for Preemption {
    fn default() -> Self {
        Preemption {
            after: i64::MIN,
            at: i64::MIN,
            resumed: i64::MIN,
            at_return: false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Thread {
    pub tgid: Option<i32>,
    pub comm: u32,
    pub bracket: Option<Bracket>,
    /// The request this thread is working on and its span on this thread.
    pub current: Option<Tag>,
    /// A request handed to this thread by a wakeup or fork, not yet taken up.
    pub handoff: Option<(Tag, Rule, i64)>,
    /// Serving a request whose bytes were never seen sent (sent before the recording began,
    /// or by an untraced peer): wakeups hand it nothing until it takes up known work.
    pub unknown: bool,
    pub event_loop: bool,
    pub clock: ThreadClock,
    /// When the thread last answered a request (or was first seen): a stretch of work it
    /// starts for a request it has not been given yet begins no earlier.
    pub stretch_start: i64,
    /// The span of the last request this thread answered, for a reply in several writes.
    pub last: Option<Tag>,
    /// A request this thread read and began to wait in with no call made for it (another
    /// thread makes its call): the thread's span on it runs on through the wait when its next
    /// turn is that request's.
    pub awaited: Option<Tag>,
    /// Event loops: the span of the request the thread is taking its turn on (see
    /// [`crate::link`]'s turns), kept across a wait that did not block.
    pub turn: Option<Tag>,
    /// Event loops: when the current turn began or last did kernel work for its request; the
    /// next turn begins here.
    pub mark: i64,
    /// Event loops: [`Thread::mark`] is the end of a wait (no syscall took a turn since):
    /// the thread's time split then, and whether the wait returned one ready event.
    pub after_wait: Option<(crate::sched::Split, bool)>,
    /// Event loops: requests whose work is due, in the order the loop read what woke them.
    pub woken: std::collections::VecDeque<Woken>,
    /// Event loops: reads that woke requests so far, numbering them.
    pub reads: u64,
    /// Event loops: callbacks that ran with no syscall before the one the loop's syscall in
    /// progress was given to (see [`crate::link`]'s turns).
    pub ran_silently: Option<Silent>,
    /// Event loops: requests given a callback's time with no syscall since the loop's latest
    /// read that woke requests.
    pub stepped: Vec<u64>,
    /// Event loops: writes of a reply's callback seen in the iteration of the reply's read
    /// (libuv runs a read's callbacks before its next read).
    pub steps_now: u32,
    /// Event loops: such writes seen in a later iteration (asyncio runs a woken task's step
    /// in the next one).
    pub steps_later: u32,
    /// Event loops: how many requests answered after making 0, 1, ... 7 (or more) calls from
    /// this thread.
    pub calls_made: [u32; 8],
    /// Event loops: waits returned so far, numbering the loop's iterations.
    pub waits: u64,
    /// Event loops: writes given by due order when one request was due, and of those, the
    /// ones made in the iteration after the request was made due.
    pub due_writes: [u32; 2],
    /// Event loops: the requests the last read on a server socket took at once (HTTP/2
    /// streams in one read), in read order, that have not called out since.
    pub batch: std::collections::VecDeque<Tag>,
    /// When the thread last ran again after being preempted outside a syscall.
    pub resumed: i64,
    /// The thread's last syscall returned with the need-resched flag set and it has not
    /// entered another or been preempted since: a preemption now comes before any of its
    /// code ran after the return.
    pub resched_exit: bool,
    /// The first preemption outside a syscall after the thread's latest syscall return
    /// before it.
    pub first_preempted: Preemption,
    /// When the thread's latest syscall returned.
    pub exited: i64,
    /// Event loops: the syscall in progress answers a request (its turn ends with it).
    pub answering: bool,
    /// Replies this thread read on a multiplexed connection whose callee's work is not placed
    /// yet, in stream order, with the connection: the callers it wakes next take them in
    /// that order (see [`crate::link`]'s multiplexed connections).
    pub replies: std::collections::VecDeque<(Tag, Tuple)>,
    /// The callers handed an answer since this thread's last read of answers: a caller waits
    /// for one (gRPC's reader may wake the same thread twice, by futex and by its eventfd).
    pub handed: Vec<i32>,
    /// The connection whose answers this thread queued at its latest read, while it has made
    /// no syscall but futex calls and no read of it has come back empty since: its reads are
    /// one drain of the socket (gRPC reads until `EAGAIN`, then wakes the callers), so a
    /// further read's answers join the queue rather than replace it. Between two reads gRPC's
    /// reader may take CPython's GIL and wake threads (of its runtime, or a caller). Over the
    /// `grpc` and `grpcnode` recordings of runs 1–54 and the larger ones (111 recordings),
    /// 23645 requests exact with any syscall or wake ending the drain, 23706 with futex
    /// calls leaving it open, 23723 with wakes of threads that never called on the channel
    /// too, 23771 with every wake.
    pub draining: Option<Tuple>,
    /// A stretch of this thread's set aside at an untimed signal wait, and when (see
    /// [`crate::link`]'s hand-off).
    pub suspended: Option<(Tag, i64)>,
    /// Event loops: the thread passed the request it read on to a pool worker and has not
    /// waited since (see [`crate::link`]'s turns).
    pub passed: Option<Passed>,
    /// Event loops: the futex calls that end the thread's syscalls so far.
    pub lock_calls: LockRun,
    /// Event loops: the thread forked a thread while serving a request and has made only
    /// futex calls since: they wait for the child to start (CPython's `Thread.start()`, as a
    /// `ThreadPoolExecutor` adds a worker on `submit`), not drop the GIL before a read.
    pub forked: bool,
    /// The thread's latest syscall read its request's connection and found it empty
    /// (`EAGAIN`): the code that serves the request there (a goroutine) waits, and what the
    /// thread sends next may be another's (see [`crate::link`]'s sends).
    pub yielded: bool,
    /// The thread answered a request another thread read: it is a pool worker.
    pub worker: bool,
    /// The thread has read a request on a server socket.
    pub served: bool,
}

/// Callbacks an event loop ran with no syscall before the callback that made its next one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Silent {
    /// Their requests, in the order the callbacks ran.
    pub tags: Vec<Tag>,
    /// The syscall ends its callback's whole run (a flush of answers), so every callback gets
    /// an even share of the time before it; else it comes early in its callback (a write), a
    /// callback's head after the callback began.
    pub flush: bool,
}

/// Event loops: the futex calls that end the thread's syscalls so far (see
/// [`crate::link`]'s turns).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LockRun {
    /// Where the run of futex calls that handed no request on began, after a stretch of the
    /// thread's own code, and the thread's time split then.
    pub start: Option<(i64, crate::sched::Split)>,
    /// Where the thread's last syscall returned.
    pub last_return: i64,
}

/// A request whose work an event loop's read made due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Woken {
    pub tag: Tag,
    /// The client connection whose reply woke it; `None` for a request read.
    pub via: Option<Tuple>,
    /// The loop iteration ([`Thread::waits`]) of the read.
    pub iteration: u64,
    /// The read ([`Thread::reads`]).
    pub read: u64,
}

/// An event loop's hand-off of a request it read to a pool worker ([`Engine::pass_on`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Passed {
    /// The request's span on the loop's thread.
    pub span: Tag,
    /// The end of the syscall that woke the worker.
    pub at: i64,
    /// The loop's first syscall after it, and its time split then, once made.
    pub next: Option<(i64, crate::sched::Split)>,
}

impl Thread {
    fn new(tgid: Option<i32>, comm: u32, ts: i64) -> Thread {
        Thread {
            tgid,
            comm,
            bracket: None,
            current: None,
            handoff: None,
            unknown: false,
            event_loop: false,
            clock: ThreadClock::new(ts),
            stretch_start: ts,
            last: None,
            turn: None,
            mark: ts,
            after_wait: None,
            batch: Default::default(),
            woken: Default::default(),
            reads: 0,
            ran_silently: None,
            stepped: Vec::new(),
            steps_now: 0,
            steps_later: 0,
            calls_made: [0; 8],
            waits: 0,
            due_writes: [0; 2],
            resumed: i64::MIN,
            resched_exit: false,
            first_preempted: Preemption::default(),
            exited: i64::MIN,
            answering: false,
            replies: Default::default(),
            handed: Vec::new(),
            draining: None,
            forked: false,
            yielded: false,
            awaited: None,
            suspended: None,
            passed: None,
            lock_calls: LockRun::default(),
            worker: false,
            served: false,
        }
    }

    /// An event loop seen to run a reply's callback in the iteration of the reply's read
    /// (libuv): at least 4 such writes, and 4 times as many as in a later iteration.
    pub fn runs_callbacks_at_once(&self) -> bool {
        self.steps_now >= 4 && self.steps_now > 4 * self.steps_later
    }

    /// An event loop seen to run a reply's step in an iteration after its read (asyncio).
    pub fn runs_steps_later(&self) -> bool {
        self.steps_later >= 4 && self.steps_later > 4 * self.steps_now
    }
}

/// An outgoing call on a client socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub tag: Tag,
    pub parent: Tag,
}

/// Calls in progress kept per connection: a pipelining client has a few dozen in flight; a
/// connection whose replies are never seen must not grow without bound.
pub(crate) const MAX_CALLS: usize = 64;

#[derive(Debug)]
pub(crate) struct Sock {
    pub role: Role,
    pub ingress: bool,
    /// Server sockets: the request being served and its span.
    pub rx: Option<Tag>,
    /// Server sockets: requests read after `rx` in the same read (pipelined), oldest first,
    /// answered by the next write along with it.
    pub queued: Vec<Tag>,
    pub responded: bool,
    /// Client sockets: the calls in progress, oldest first (several when an event loop
    /// pipelines requests' commands on one connection); at most [`MAX_CALLS`].
    pub calls: std::collections::VecDeque<Call>,
    /// Client sockets: the calls the latest reply read answered. A reply can arrive in several
    /// reads (capture `s1-c1`: the app's header and body 49 ms apart, Nagle's algorithm
    /// holding the body until nginx's delayed ACK); the later reads are the same calls'.
    pub answered: Vec<Call>,
    /// Client sockets: a call was seen on it (tagged or not).
    pub called: bool,
    /// Server sockets: a request was read on it while an earlier one was not answered yet,
    /// both from a traced caller (HTTP/2 streams): which request a pool worker's answer is
    /// for is not the last one read.
    pub multiplexed: bool,
    /// Client sockets: the threads that made calls on it, latest last (at most
    /// [`MAX_CALLS`]): a thread woken for an answer on a shared connection is one of them.
    pub callers: Vec<i32>,
    /// Client sockets: answers of stretches not placed yet that a reader read here and woke
    /// no caller for, oldest first (see [`crate::link`]'s multiplexed connections).
    pub leftover: std::collections::VecDeque<Tag>,
    /// Multiplexed server sockets: the further requests an event loop's send answers along
    /// with its first (HTTP/2 frames of several streams in one write), in order.
    pub answers: Vec<Tag>,
    /// Client sockets: calls whose caller answered its request with no answer to them seen,
    /// and when.
    pub unclaimed: Vec<(Tag, i64)>,
}

/// Placeholder request id of a dropped stretch (the hand-off rule in [`crate::link`]): labels
/// with it are discarded.
pub(crate) const DROPPED: u64 = 0;

/// A unix socket seen sending while its peer is not known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnixSend {
    pub(crate) sk: u64,
    /// The sender's (process, fd).
    pub(crate) from: (i32, i64),
    pub(crate) end: Endpoint,
    pub(crate) peer: Endpoint,
    /// Bytes sent so far.
    pub(crate) sent: i64,
    /// The thread its last send woke.
    pub(crate) woke: Option<i32>,
}

/// A `connect` with no TCP state change (maybe a unix socket's), not yet accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnixConnect {
    /// The connecting (process, fd).
    pub(crate) from: (i32, i64),
    /// The thread the `connect` woke (the acceptor), if any.
    pub(crate) woke: Option<i32>,
    /// The connecting thread's task name: the program that calls the listener.
    pub(crate) comm: u32,
}

/// The correlator.
#[derive(Debug)]
pub struct Engine {
    pub(crate) cfg: Config,
    pub(crate) threads: HashMap<i32, Thread>,
    pub(crate) socks: HashMap<Tuple, Sock>,
    pub(crate) fds: HashMap<(i32, i64), Tuple>,
    pub(crate) sks: crate::addresses::Addresses,
    pub(crate) role_hints: HashMap<(i32, i64), Role>,
    /// Outgoing connections an event loop opened for a request (`connect` while serving it).
    pub(crate) conn_owner: HashMap<(i32, i64), Tag>,
    pub(crate) streams: HashMap<(crate::event::Endpoint, crate::event::Endpoint), Stream>,
    /// Connections whose handshake completed during the recording (`inet_sock_set_state`).
    pub(crate) born: hashbrown::HashSet<Tuple>,
    /// The recording has `sock_send_length`/`sock_recv_length`: every socket send and receive
    /// names its socket, so one that names none is I/O on another kind of file.
    pub(crate) sock_lengths: bool,
    /// Unix stream sockets seen sending whose peer is not known yet (see [`crate::link`]).
    pub(crate) unix_unpaired: Vec<UnixSend>,
    /// Unix sockets by the tuple kreq named them with, to forget them at `close`.
    pub(crate) unix_sks: HashMap<Tuple, u64>,
    /// `connect`s with no TCP state change, not yet accepted, oldest first.
    pub(crate) unix_connects: std::collections::VecDeque<UnixConnect>,
    /// Accepted fds and the `connect`ed (process, fd) at the other end.
    pub(crate) unix_peer_fd: HashMap<(i32, i64), (i32, i64)>,
    /// (process, fd) accepted while the acceptor was busy -> the `connect` a first-in,
    /// first-out listen queue would give it: a tie-break only ([`Engine::unix_accepted`]).
    pub(crate) unix_peer_guess: HashMap<(i32, i64), UnixConnect>,
    /// Listening (process, fd)s that accepted a `connect` that woke them (unix listeners), and
    /// the task names (`comm`) of the processes whose `connect`s they were: the programs that
    /// call this listener (nginx's worker processes share one).
    pub(crate) unix_listeners: HashMap<(i32, i64), Vec<u32>>,
    pub(crate) requests: HashMap<u64, Request>,
    pub(crate) spans: HashMap<u64, Span>,
    pub(crate) finished: Vec<Finished>,
    /// Event-loop threads that exited, and whether their due steps had been seen not to run
    /// in the next iteration (see [`Engine::cap_unsettled`]).
    pub(crate) loops_exited: HashMap<i32, bool>,
    /// Per event-loop thread, how many of the finished requests it served made 0, 1, ... 7
    /// (or more) calls, and whether some of its links were capped (see
    /// [`Engine::cap_unsettled`]).
    pub(crate) loop_calls: HashMap<i32, ([u32; 8], bool)>,
    pub(crate) next_id: u64,
    pub(crate) now: i64,
    pub(crate) stats: Stats,
    /// Placeholder requests of stretches not yet placed (see [`crate::link`]'s hand-off rule).
    pub(crate) pending: HashMap<u64, Pending>,
    /// Placeholder request -> the request it was joined to, and when.
    pub(crate) alias: HashMap<u64, (u64, i64)>,
    /// Labels of a placeholder's events, released once it was placed.
    pub(crate) released: Vec<(u64, Tag)>,
    /// Processes that read requests on server sockets: only their threads open stretches.
    pub(crate) serving: hashbrown::HashSet<i32>,
    /// Stretches set aside at an untimed signal wait whose thread went on to other work
    /// without answering: (process, stretch, when set aside), oldest first; another thread
    /// may write their answers.
    pub(crate) unanswered: std::collections::VecDeque<(i32, Tag, i64)>,
    /// Threads waiting with a request they read and made no call for: (thread, process,
    /// request, when the wait began); see [`Engine::await_call`].
    pub(crate) awaiting: Vec<(i32, i32, Tag, i64)>,
    /// Client connections whose [`Sock::leftover`] is not empty.
    pub(crate) leftover: Vec<Tuple>,
    /// Multiplexed server sockets another thread last wrote on with no answer set aside to
    /// carry, not taken yet: the writer's process, and when (see
    /// [`Engine::answered_by_empty_write`]).
    pub(crate) empty_writes: HashMap<Tuple, (i32, i64)>,
    /// Connection directions (sender's local and remote end) with a `tcp_probe` held in a
    /// send's bracket ([`Bracket::held`]), and the sending thread.
    pub(crate) held: HashMap<(crate::event::Endpoint, crate::event::Endpoint), i32>,
}

/// A stretch of work on a thread with no request, held as a placeholder request until the
/// thread shows which request it was for.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What a wakeup handed the thread when the stretch began, the fallback.
    pub handoff: Option<(Tag, Rule, i64)>,
    /// Events labelled with the placeholder: (row, span).
    pub rows: Vec<(u64, u64)>,
    /// The stretch answered on a multiplexed connection, when: the caller that its reply
    /// wakes places it.
    pub deferred: Option<i64>,
}

impl Engine {
    /// A correlator with settings `cfg`.
    pub fn new(cfg: Config) -> Engine {
        let cfg_first_id = cfg.first_id.max(1);
        Engine {
            cfg,
            threads: HashMap::new(),
            socks: HashMap::new(),
            fds: HashMap::new(),
            sks: Default::default(),
            role_hints: HashMap::new(),
            conn_owner: HashMap::new(),
            streams: HashMap::new(),
            born: Default::default(),
            sock_lengths: false,
            unix_unpaired: Vec::new(),
            unix_sks: HashMap::new(),
            unix_connects: Default::default(),
            unix_peer_fd: HashMap::new(),
            unix_peer_guess: HashMap::new(),
            unix_listeners: Default::default(),
            requests: HashMap::new(),
            spans: HashMap::new(),
            finished: Vec::new(),
            loops_exited: HashMap::new(),
            loop_calls: HashMap::new(),
            next_id: cfg_first_id,
            now: i64::MIN,
            stats: Stats::default(),
            pending: HashMap::new(),
            alias: HashMap::new(),
            released: Vec::new(),
            serving: Default::default(),
            unanswered: Default::default(),
            awaiting: Vec::new(),
            leftover: Vec::new(),
            empty_writes: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Requests finished since the last call, with their spans.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// Live state sizes (threads, sockets, streams, open requests, open spans), to show that
    /// memory is bounded.
    pub fn state_size(&self) -> [usize; 5] {
        [
            self.threads.len(),
            self.socks.len(),
            self.streams.len(),
            self.requests.len(),
            self.spans.len(),
        ]
    }

    /// Processes one event; events must come in time order.
    pub fn push(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        self.stats.events += 1;
        self.now = self.now.max(ev.ts);
        if self.stats.events.is_multiple_of(4096) {
            self.finish_idle(false);
        }
        match ev.kind {
            Kind::Switch => self.on_switch(ev),
            Kind::Wakeup => self.on_wakeup(ev),
            // Socket addresses are facts about sockets, whatever context reported them (a
            // handshake often completes in a softirq on an idle CPU).
            Kind::SetState => self.on_set_state(ev),
            Kind::Probe | Kind::RcvSpace => self.learn_socket(ev),
            Kind::Destroy => self.on_destroy(ev),
            _ => {}
        }
        if ev.tid == 0 {
            return;
        }
        let t = self.thread(ev);
        if !ev.irq {
            // A switch is recorded in the context of the thread leaving the CPU.
            if ev.kind != Kind::Switch {
                t.clock.saw_running(ev.ts);
            }
        }
        match ev.kind {
            Kind::Enter(sys) => self.on_enter(ev, sys, sink),
            Kind::Exit(sys) => self.on_exit(ev, sys, sink),
            Kind::SockSend | Kind::SockRecv => self.on_sock_length(ev, sink),
            Kind::RcvSpace => self.on_rcv_space(ev, sink),
            Kind::Probe => self.on_probe(ev, sink),
            Kind::Fork => {
                self.label_in_context(ev, sink);
                if let Some(t) = self
                    .threads
                    .get_mut(&ev.tid)
                    .filter(|t| t.event_loop && t.current.is_some())
                {
                    t.forked = true;
                    t.lock_calls.start = None;
                }
                if let Some(child) = ev.child_tid {
                    let cur = self.threads.get(&ev.tid).and_then(|t| t.current);
                    let c = self
                        .threads
                        .entry(child)
                        .or_insert_with(|| Thread::new(None, ev.comm, ev.ts));
                    if let Some(tag) = cur {
                        c.handoff = Some((tag, Rule::Fork, ev.ts));
                    }
                }
            }
            Kind::ExitTask => {
                self.label_in_context(ev, sink);
                self.end_stretch(ev.tid);
                if let Some(t) = self.threads.remove(&ev.tid).filter(|t| t.event_loop) {
                    self.loops_exited.insert(ev.tid, t.steps_off_time());
                }
            }
            _ => self.label_in_context(ev, sink),
        }
        self.release(sink);
    }

    /// Labels the events of stretches placed since the last call.
    fn release(&mut self, sink: &mut impl LabelSink) {
        for (row, tag) in self.released.drain(..) {
            sink.label(row, tag);
            self.stats.labelled += 1;
        }
    }

    /// Events were lost: what the correlator believes about work in progress (which request
    /// each thread serves, which bytes are in flight, which call each connection carries) may
    /// be wrong from here on. It starts afresh, as a recording that began now would: the
    /// requests in progress are incomplete anyway (they overlap the loss), and those that
    /// begin after it are linked from their own first events. Socket identities stay.
    pub fn resync(&mut self) {
        self.stats.resyncs += 1;
        let open: Vec<i32> = self.threads.keys().copied().collect();
        for tid in open {
            self.close_stretch(tid, false);
        }
        self.streams.clear();
        self.held.clear();
        for t in self.threads.values_mut() {
            // A thread that was serving a request still is, but can no longer be followed.
            t.unknown |= t.current.is_some() || t.handoff.is_some();
            t.bracket = None;
            t.current = None;
            t.handoff = None;
            t.turn = None;
            t.woken.clear();
            t.replies.clear();
            t.handed.clear();
        }
        for s in self.socks.values_mut() {
            s.rx = None;
            s.queued.clear();
            s.responded = false;
            s.calls.clear();
            s.answered.clear();
        }
        // A connection opened for a request keeps that claim only until its first call; one
        // whose first call was already made may have had its reply lost, and must not claim
        // the next request's call.
        let (fds, socks) = (&self.fds, &self.socks);
        self.conn_owner.retain(|key, _| {
            fds.get(key)
                .and_then(|t| socks.get(t))
                .is_none_or(|s| !s.called)
        });
    }

    /// Finishes every open request (end of input) and returns the counters. Stretches placed
    /// now label their held events into `sink`.
    pub fn finish(&mut self, sink: &mut impl LabelSink) -> Stats {
        let open: Vec<i32> = self.threads.keys().copied().collect();
        for tid in open {
            self.end_stretch(tid);
        }
        self.finish_idle(true);
        self.release(sink);
        self.stats
    }

    pub(crate) fn thread(&mut self, ev: &Event) -> &mut Thread {
        let t = self
            .threads
            .entry(ev.tid)
            .or_insert_with(|| Thread::new(ev.tgid, ev.comm, ev.ts));
        if ev.tgid.is_some() {
            t.tgid = ev.tgid;
        }
        if !ev.irq {
            t.comm = ev.comm;
        }
        t
    }

    /// Labels an event with its thread's open syscall (resolved later) or current request.
    pub(crate) fn label_in_context(&mut self, ev: &Event, sink: &mut impl LabelSink) {
        let Some(t) = self.threads.get_mut(&ev.tid) else {
            return;
        };
        if let Some(b) = t.bracket.as_mut() {
            b.rows.push(ev.row);
            return;
        }
        if let Some(tag) = t.current {
            self.emit(ev.row, tag, sink);
        }
    }

    /// Labels the rows of a syscall whose request is `tag` (nothing when `None`).
    pub(crate) fn emit_rows(
        &mut self,
        rows: impl IntoIterator<Item = u64>,
        tag: Option<Tag>,
        sink: &mut impl LabelSink,
    ) {
        if let Some(tag) = tag {
            for r in rows {
                self.emit(r, tag, sink);
            }
        }
    }

    pub(crate) fn emit(&mut self, row: u64, tag: Tag, sink: &mut impl LabelSink) {
        let tag = self.canon(tag);
        if let Some(p) = self.pending.get_mut(&tag.request) {
            p.rows.push((row, tag.span));
            return;
        }
        if tag.request == DROPPED {
            return;
        }
        sink.label(row, tag);
        self.stats.labelled += 1;
        if let Some(s) = self.spans.get_mut(&tag.span) {
            s.events += 1;
        }
    }

    /// A socket is gone: its connection's state goes with it, unless another socket still
    /// has the same 4-tuple (see [`crate::addresses`]).
    fn on_destroy(&mut self, ev: &Event) {
        if let Some(t) = ev.tuple() {
            if self.sks.destroyed(ev.sk, t) {
                self.born.remove(&t);
                self.socks.remove(&t);
                self.streams.remove(&(t.local, t.remote));
                self.streams.remove(&(t.remote, t.local));
            }
        }
    }

    /// Hands out requests that responded and were idle for the linger time (all when `all`).
    pub(crate) fn finish_idle(&mut self, all: bool) {
        self.expire_deferred(all);
        let cutoff = self.now.saturating_sub(self.cfg.linger_ns);
        self.alias.retain(|_, &mut (_, at)| at >= cutoff);
        let pending = &self.pending;
        let done: Vec<u64> = self
            .requests
            .values()
            .filter(|r| !pending.contains_key(&r.id))
            .filter(|r| all || (r.responded && r.end < cutoff))
            .map(|r| r.id)
            .collect();
        for id in done {
            let Some(request) = self.requests.remove(&id) else {
                continue;
            };
            let spans = request
                .spans
                .iter()
                .filter_map(|s| self.spans.remove(s))
                .collect();
            self.finished.push(Finished { request, spans });
        }
    }
}
