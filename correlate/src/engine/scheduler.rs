//! Scheduler events: where each thread's time goes, and requests handed over by wakeups.

use hashbrown::HashMap;

use crate::engine::{Bracket, Engine, Preemption, Thread};
use crate::event::{Event, PrevState, Sys, Tuple};
use crate::model::Rule;
use crate::sched::BlockReason;

impl Engine {
    pub(crate) fn on_switch(&mut self, ev: &Event) {
        if let Some(prev) = ev.prev_tid.filter(|&p| p != 0) {
            if let Some(t) = self.threads.get_mut(&prev) {
                match ev.prev_state {
                    Some(PrevState::Runnable) | None => {
                        t.clock.preempted(ev.ts);
                        if t.bracket.is_none() {
                            t.resumed = i64::MAX;
                            let at_return = std::mem::take(&mut t.resched_exit);
                            if t.exited > t.first_preempted.after {
                                t.first_preempted = Preemption {
                                    after: t.exited,
                                    at: ev.ts,
                                    resumed: i64::MAX,
                                    at_return,
                                };
                            }
                        }
                    }
                    Some(st) => {
                        let reason = block_reason(t.bracket.as_ref(), st, &self.fds, t.tgid);
                        t.clock.blocked(ev.ts, reason);
                    }
                }
            }
        }
        if let Some(next) = ev.next_tid.filter(|&n| n != 0) {
            if let Some(t) = self.threads.get_mut(&next) {
                t.clock.switched_in(ev.ts);
                if t.resumed == i64::MAX {
                    t.resumed = ev.ts;
                    if t.first_preempted.resumed == i64::MAX {
                        t.first_preempted.resumed = ev.ts;
                    }
                }
            }
        }
    }

    pub(crate) fn on_wakeup(&mut self, ev: &Event) {
        let Some(target) = ev.wake_tid.filter(|&w| w != 0 && w != ev.tid) else {
            return;
        };
        if !ev.irq && ev.tid != 0 {
            self.reply_woke(ev.tid, target, ev.ts);
        }
        let worker = self
            .threads
            .get(&target)
            .filter(|t| t.worker)
            .and_then(|t| t.bracket.as_ref())
            .is_some_and(|b| b.signal_wait);
        let waker = if ev.irq || ev.tid == 0 {
            None
        } else {
            let mut w = self.threads.get_mut(&ev.tid);
            if let Some(b) = w.as_deref_mut().and_then(|t| t.bracket.as_mut()) {
                b.woke = Some(target);
                b.woke_worker |= worker;
            }
            w.and_then(|t| t.current)
        };
        let t = self
            .threads
            .entry(target)
            .or_insert_with(|| Thread::new(None, 0, ev.ts));
        let sleeps = t.bracket.as_ref().and_then(|b| b.sys).is_some_and(|s| {
            matches!(
                s,
                Sys::Wait | Sys::Recv | Sys::Futex | Sys::Accept | Sys::Connect
            )
        });
        if sleeps {
            t.clock.woken_from_untraced_sleep(ev.ts);
        }
        t.clock.woken(ev.ts);
        if let (Some(tag), None, false) = (waker, t.current, t.unknown) {
            t.handoff = Some((tag, Rule::Wakeup, ev.ts));
        }
    }
}

fn block_reason(
    b: Option<&Bracket>,
    st: PrevState,
    fds: &HashMap<(i32, i64), Tuple>,
    tgid: Option<i32>,
) -> BlockReason {
    let Some(b) = b else {
        return BlockReason::Other;
    };
    let is_socket =
        b.fd.zip(tgid)
            .is_some_and(|(fd, g)| fds.contains_key(&(g, fd)));
    match b.sys {
        Some(Sys::Wait | Sys::Accept | Sys::Connect) => BlockReason::Network,
        Some(Sys::Recv | Sys::Send) if is_socket => BlockReason::Network,
        Some(Sys::Recv | Sys::Send) if st == PrevState::DiskSleep => BlockReason::Disk,
        Some(Sys::Futex) => BlockReason::Lock,
        _ if st == PrevState::DiskSleep => BlockReason::Disk,
        _ => BlockReason::Other,
    }
}
