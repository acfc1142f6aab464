//! Per-thread time accounting from scheduler events: on-CPU, runnable, blocked by reason.
//!
//! Each thread keeps cumulative counters; a span's split is the difference of the counters at
//! its end and at its start, so it costs O(1) per span however many spans overlap.

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

/// The scheduler state of one thread.
#[derive(Debug, Clone)]
pub struct ThreadClock {
    state: State,
    since: i64,
    acc: Split,
}

impl ThreadClock {
    /// A thread first seen at `ts`, state not known yet.
    pub fn new(ts: i64) -> ThreadClock {
        ThreadClock {
            state: State::Unknown,
            since: ts,
            acc: Split::default(),
        }
    }

    fn close(&mut self, ts: i64) {
        let d = (ts - self.since).max(0);
        match self.state {
            State::Unknown => self.acc.unknown += d,
            State::Running => self.acc.cpu += d,
            State::Runnable => self.acc.runnable += d,
            State::Blocked(BlockReason::Network) => self.acc.network += d,
            State::Blocked(BlockReason::Disk) => self.acc.disk += d,
            State::Blocked(BlockReason::Lock) => self.acc.lock += d,
            State::Blocked(BlockReason::Other) => self.acc.other += d,
        }
        self.since = self.since.max(ts);
    }

    fn set(&mut self, ts: i64, s: State) {
        self.close(ts);
        self.state = s;
    }

    /// The thread recorded an event of its own (not in interrupt context): it is on a CPU.
    pub fn saw_running(&mut self, ts: i64) {
        if self.state == State::Unknown {
            self.set(ts, State::Running);
        }
    }

    /// The thread was switched in.
    pub fn switched_in(&mut self, ts: i64) {
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

    /// Cumulative split up to `ts`.
    pub fn at(&self, ts: i64) -> Split {
        let mut c = self.clone();
        c.close(ts);
        c.acc
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
    fn unknown_until_first_sign_of_life() {
        let mut c = ThreadClock::new(0);
        c.saw_running(50);
        c.saw_running(60);
        let s = c.at(100);
        assert_eq!((s.unknown, s.cpu), (50, 50));
    }
}
