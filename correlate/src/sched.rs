//! Per-thread time accounting from scheduler events: on-CPU, runnable, blocked by reason.
//!
//! Each thread keeps cumulative counters; a span's split is the difference of the counters at
//! its end and at its start, so it costs O(1) per span however many spans overlap.

use std::collections::VecDeque;

/// Why a thread was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// In a socket syscall or an event-loop wait.
    Network,
    /// Uninterruptible sleep in file I/O.
    Disk,
    /// futex.
    Lock,
    /// Anything else.
    Other,
}

/// Cumulative time per state, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// On a CPU.
    pub cpu: i64,
    /// Ready, waiting for a CPU.
    pub runnable: i64,
    /// Blocked in network I/O.
    pub network: i64,
    /// Blocked in disk I/O.
    pub disk: i64,
    /// Blocked on a lock.
    pub lock: i64,
    /// Blocked for another reason.
    pub other: i64,
    /// State not known (before the thread's first scheduler event).
    pub unknown: i64,
}

impl Split {
    /// All blocked time.
    pub fn blocked(&self) -> i64 {
        self.network + self.disk + self.lock + self.other
    }

    /// This split made to fit a span of `duration` ns: negative parts become 0 and what is
    /// left over or missing goes to (or comes out of) `unknown`, then the largest parts. A
    /// split from one thread's clock over the span's own interval already fits; this holds the
    /// `spans` contract (every part >= 0, parts add up to the duration) when the span's end
    /// lies before what the clock remembers ([`ThreadClock::at`]) or its thread is gone.
    pub fn fitted(mut self, duration: i64) -> Split {
        let duration = duration.max(0);
        for v in self.parts_mut() {
            *v = (*v).max(0);
        }
        let mut excess = self.cpu + self.runnable + self.blocked() + self.unknown - duration;
        if excess < 0 {
            self.unknown -= excess;
            return self;
        }
        while excess > 0 {
            let largest = self
                .parts_mut()
                .into_iter()
                .max_by_key(|v| **v)
                .expect("seven parts");
            let cut = excess.min(*largest);
            *largest -= cut;
            excess -= cut;
        }
        self
    }

    /// Every part, `unknown` first (the one a remainder goes to).
    fn parts_mut(&mut self) -> [&mut i64; 7] {
        [
            &mut self.unknown,
            &mut self.cpu,
            &mut self.runnable,
            &mut self.network,
            &mut self.disk,
            &mut self.lock,
            &mut self.other,
        ]
    }

    /// Adds `other`, field by field.
    pub fn add(&mut self, other: &Split) {
        for (v, o) in self.parts_mut().into_iter().zip(other.parts()) {
            *v += o;
        }
    }

    /// This split scaled by `num / den` (the part of a call that lies inside its parent).
    pub fn scaled(mut self, num: i64, den: i64) -> Split {
        if num != den && den != 0 {
            for v in self.parts_mut() {
                *v = (*v as i128 * num as i128 / den as i128) as i64;
            }
        }
        self
    }

    /// Every part, in [`Split::parts_mut`]'s order.
    fn parts(&self) -> [i64; 7] {
        [
            self.unknown,
            self.cpu,
            self.runnable,
            self.network,
            self.disk,
            self.lock,
            self.other,
        ]
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Split) -> Split {
        Split {
            cpu: self.cpu - earlier.cpu,
            runnable: self.runnable - earlier.runnable,
            network: self.network - earlier.network,
            disk: self.disk - earlier.disk,
            lock: self.lock - earlier.lock,
            other: self.other - earlier.other,
            unknown: self.unknown - earlier.unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unknown,
    Running,
    Runnable,
    Blocked(BlockReason),
}

/// How far back a clock remembers its state intervals: a call's wire time is split on the
/// clock of the thread that read it, from the first byte sent, and that thread may have been
/// busy with other requests meanwhile. On the WordPress testbed with more connections than
/// php-fpm workers (1000 requests over 8 connections to 4 workers), FastCGI requests waited
/// up to 267 ms in php-fpm's listen queue, through hundreds of a busy worker's switches; a
/// clock that remembered its last 8 intervals left 67.3 of the 72.8 s of nginx's wire time
/// not known. Past this (or [`HISTORY_MAX`] intervals), the oldest remembered counters.
const HISTORY_NS: i64 = 1_000_000_000;

/// At most this many past intervals per thread (a thread switching more often than this per
/// [`HISTORY_NS`] remembers less time); at least [`HISTORY_MIN`] whatever their age.
const HISTORY_MAX: usize = 4096;

/// Past intervals kept however old: a span ending a little before the thread's latest
/// scheduler event (a send whose bytes were delivered before the sender was switched out)
/// still gets an exact split. Eight covers the switches of one syscall on a busy CPU.
const HISTORY_MIN: usize = 8;

/// The scheduler state of one thread.
#[derive(Debug, Clone)]
pub struct ThreadClock {
    state: State,
    since: i64,
    acc: Split,
    /// The closed intervals remembered, oldest first: (start, state, counters at start).
    past: VecDeque<(i64, State, Split)>,
    /// The thread's latest event of its own: it ran then.
    last_seen: i64,
}

impl ThreadClock {
    /// A thread first seen at `ts`, state not known yet.
    pub fn new(ts: i64) -> ThreadClock {
        ThreadClock {
            state: State::Unknown,
            since: ts,
            acc: Split::default(),
            past: VecDeque::new(),
            last_seen: ts,
        }
    }

    fn close(&mut self, ts: i64) {
        add(&mut self.acc, self.state, (ts - self.since).max(0));
        self.since = self.since.max(ts);
    }

    fn set(&mut self, ts: i64, s: State) {
        if s == self.state {
            return self.close(ts);
        }
        let start = (self.since, self.state, self.acc);
        self.close(ts);
        self.past.push_back(start);
        // An interval is forgotten once the one after it began longer ago than the window.
        while self.past.len() > HISTORY_MIN
            && (self.past.len() > HISTORY_MAX
                || self.past.get(1).is_some_and(|n| n.0 < ts - HISTORY_NS))
        {
            self.past.pop_front();
        }
        self.state = s;
    }

    /// The thread recorded an event of its own (not in interrupt context): it is on a CPU.
    /// A thread only records events while it runs, so one the clock has off a CPU was
    /// switched in without a trace.
    pub fn saw_running(&mut self, ts: i64) {
        self.last_seen = self.last_seen.max(ts);
        if self.state != State::Running {
            self.set(ts, State::Running);
        }
    }

    /// The thread was switched in. A thread the clock has running was switched out without a
    /// trace (a capture whose `sched_switch` filter dropped switches to its reader, as in
    /// `testdata/s1-c1`): from its last event to now its state is not known, rather than
    /// on-CPU.
    pub fn switched_in(&mut self, ts: i64) {
        if self.state == State::Running && self.last_seen < ts {
            self.set(self.last_seen.max(self.since), State::Unknown);
        }
        self.set(ts, State::Running);
    }

    /// The thread was switched out, still runnable (preempted).
    pub fn preempted(&mut self, ts: i64) {
        self.set(ts, State::Runnable);
    }

    /// The thread was switched out to sleep.
    pub fn blocked(&mut self, ts: i64, reason: BlockReason) {
        self.set(ts, State::Blocked(reason));
    }

    /// The thread was woken: runnable until switched in.
    pub fn woken(&mut self, ts: i64) {
        if matches!(self.state, State::Blocked(_) | State::Unknown) {
            self.set(ts, State::Runnable);
        }
    }

    /// The thread, which the clock has on a CPU, was woken in a syscall that sleeps (a wait,
    /// a read, a futex): it went to sleep after its last event with no switch traced. From
    /// then to `ts` its state is not known; then it is runnable.
    pub fn woken_from_untraced_sleep(&mut self, ts: i64) {
        if self.state == State::Running && self.last_seen < ts {
            self.set(self.last_seen.max(self.since), State::Unknown);
            self.set(ts, State::Runnable);
        }
    }

    /// Cumulative split up to `ts`. Exact for any `ts` after the oldest remembered interval
    /// began: the components always sum to the time since the clock started (up to `ts`), and
    /// never decrease as `ts` grows, so a span's split (end minus start) has no negative part
    /// and adds up to its duration. Before the remembered past, the oldest remembered counters.
    pub fn at(&self, ts: i64) -> Split {
        if ts >= self.since {
            let mut acc = self.acc;
            add(&mut acc, self.state, ts - self.since);
            return acc;
        }
        match self.past.partition_point(|p| p.0 <= ts) {
            0 => self.past.front().map_or(self.acc, |p| p.2),
            i => {
                let (start, state, mut acc) = self.past[i - 1];
                add(&mut acc, state, ts - start);
                acc
            }
        }
    }
}

fn add(acc: &mut Split, state: State, d: i64) {
    match state {
        State::Unknown => acc.unknown += d,
        State::Running => acc.cpu += d,
        State::Runnable => acc.runnable += d,
        State::Blocked(BlockReason::Network) => acc.network += d,
        State::Blocked(BlockReason::Disk) => acc.disk += d,
        State::Blocked(BlockReason::Lock) => acc.lock += d,
        State::Blocked(BlockReason::Other) => acc.other += d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_adds_up_to_elapsed_time() {
        let mut c = ThreadClock::new(0);
        c.switched_in(10);
        let start = c.at(10);
        c.blocked(30, BlockReason::Network);
        c.woken(100);
        c.switched_in(120);
        c.preempted(150);
        c.switched_in(160);
        let s = c.at(200).since(&start);
        assert_eq!(s.cpu, 20 + 30 + 40);
        assert_eq!(s.network, 70);
        assert_eq!(s.runnable, 20 + 10);
        assert_eq!(s.cpu + s.runnable + s.blocked() + s.unknown, 190);
    }

    #[test]
    fn a_split_that_ends_in_the_past_is_exact() {
        let mut c = ThreadClock::new(0);
        c.switched_in(10);
        c.blocked(30, BlockReason::Network);
        c.woken(100);
        c.switched_in(120);
        // A send's bytes were delivered at 25 (before the block at 30); the span is read now.
        let s = c.at(25).since(&c.at(10));
        assert_eq!((s.cpu, s.network, s.runnable), (15, 0, 0));
        let s = c.at(110).since(&c.at(20));
        assert_eq!((s.cpu, s.network, s.runnable), (10, 70, 10));
        assert_eq!(s.cpu + s.runnable + s.blocked() + s.unknown, 90);
    }

    #[test]
    fn the_clock_remembers_a_busy_half_second() {
        // 4000 intervals of 125 µs (0.5 s), alternating running and runnable: a worker busy
        // with other requests while a call waited for it.
        let mut c = ThreadClock::new(0);
        for i in 0..4000 {
            match i % 2 {
                0 => c.switched_in(i * 125_000),
                _ => c.preempted(i * 125_000),
            }
        }
        let s = c.at(499_950_000).since(&c.at(50_000));
        assert_eq!(
            (s.cpu, s.runnable, s.unknown),
            (249_950_000, 249_950_000, 0)
        );
    }

    #[test]
    fn the_clock_forgets_what_is_older_than_its_window() {
        // Twelve intervals of 10 ns from 0 to 110, alternating running and runnable; runnable
        // from 110 for two windows, then running for 10 ns.
        let mut c = ThreadClock::new(0);
        for i in 0..12 {
            match i % 2 {
                0 => c.switched_in(i * 10),
                _ => c.preempted(i * 10),
            }
        }
        let s = c.at(45);
        assert_eq!((s.cpu, s.runnable, s.unknown), (25, 20, 0));
        let late = 110 + 2 * HISTORY_NS;
        c.switched_in(late);
        c.preempted(late + 10);
        // Only the last eight intervals are kept, from 50 on: 45 gets the counters at 50.
        let s = c.at(45);
        assert_eq!((s.cpu, s.runnable), (30, 20));
        let s = c.at(late - 5);
        assert_eq!((s.cpu, s.runnable), (60, 50 + 2 * HISTORY_NS - 5));
    }

    #[test]
    fn a_split_is_fitted_to_its_span() {
        let s = Split {
            cpu: 50,
            runnable: -5,
            network: 80,
            ..Split::default()
        };
        let f = s.fitted(100);
        assert_eq!((f.cpu, f.runnable, f.network, f.unknown), (50, 0, 50, 0));
        let f = s.fitted(200);
        assert_eq!((f.cpu, f.network, f.unknown), (50, 80, 70));
    }

    #[test]
    fn a_switch_in_of_a_running_thread_means_a_switch_out_was_missed() {
        let mut c = ThreadClock::new(0);
        c.switched_in(10);
        c.saw_running(30); // its last event, then it slept with no switch traced
        c.woken(90);
        c.switched_in(100);
        let s = c.at(110);
        assert_eq!((s.cpu, s.unknown, s.runnable), (20 + 10, 10 + 70, 0));
    }

    #[test]
    fn unknown_until_first_sign_of_life() {
        let mut c = ThreadClock::new(0);
        c.saw_running(50);
        c.saw_running(60);
        let s = c.at(100);
        assert_eq!((s.unknown, s.cpu), (50, 50));
    }
}
