//! Where events were lost, as time intervals, to decide which requests are complete.
//!
//! A report says CPU `c` lost events at some point between the last event recorded on `c`
//! before it and the first event recorded on `c` after it: trace_pipe prints
//! `CPU:c [LOST n EVENTS]` (stamped with the previous line's time) before `c`'s next event, and
//! a page flagged with missed events is stamped with its first event. A request is complete
//! only if no such interval overlaps it. Reports not reached yet count from the last event seen
//! on their CPU, so a request is never declared complete before a loss that may touch it is
//! known. A report without a time (per-CPU `stats` counters) on a CPU that has no timed report
//! could be anywhere: every request is then incomplete.

/// Loss intervals, fed events in time order through [`Losses::see`].
#[derive(Debug, Default)]
pub(crate) struct Losses {
    /// Timed reports `(ts, cpu)`, sorted; `next` is the first not reached yet.
    reports: Vec<(i64, u16)>,
    next: usize,
    /// Reports not reached yet, per CPU.
    pending: Vec<u32>,
    /// Last event time seen per CPU.
    last: Vec<Option<i64>>,
    /// Per CPU, the start of a loss whose end (the CPU's next event) is not seen yet.
    open: Vec<Option<i64>>,
    /// Closed intervals `(from, to)`, in order of `to`.
    closed: Vec<(i64, i64)>,
    /// A loss with no time at all.
    anywhere: bool,
}

impl Losses {
    /// Reports as `(ts, cpu)`; `None` for a report without a time.
    pub(crate) fn new(reports: impl IntoIterator<Item = (Option<i64>, u16)>) -> Self {
        let mut timed = Vec::new();
        let mut untimed = Vec::new();
        for (ts, cpu) in reports {
            match ts {
                Some(t) => timed.push((t, cpu)),
                None => untimed.push(cpu),
            }
        }
        timed.sort_unstable();
        let cpus = timed.iter().map(|r| r.1 as usize + 1).max().unwrap_or(0);
        let mut pending = vec![0; cpus];
        for &(_, c) in &timed {
            pending[c as usize] += 1;
        }
        let anywhere = untimed
            .iter()
            .any(|&c| pending.get(c as usize).is_none_or(|&n| n == 0));
        Self {
            reports: timed,
            pending,
            last: vec![None; cpus],
            open: vec![None; cpus],
            anywhere,
            ..Self::default()
        }
    }

    /// An event at `ts` on `cpu` (events come in time order). Returns whether a loss report
    /// was reached: the events before it may lack some that were lost.
    pub(crate) fn see(&mut self, ts: i64, cpu: u16) -> bool {
        let reached = self.next;
        while let Some(&(_, c)) = self.reports.get(self.next).filter(|r| r.0 <= ts) {
            let c = c as usize;
            let from = self.last[c].unwrap_or(i64::MIN);
            self.open[c] = Some(self.open[c].map_or(from, |o| o.min(from)));
            self.pending[c] -= 1;
            self.next += 1;
        }
        let c = cpu as usize;
        if let Some(from) = self.open.get_mut(c).and_then(Option::take) {
            self.closed.push((from, ts));
        }
        if let Some(l) = self.last.get_mut(c) {
            *l = Some(l.map_or(ts, |v| v.max(ts)));
        }
        self.next > reached
    }

    /// Whether events may have been lost while a request ran from `start` to `end`.
    pub(crate) fn touches(&self, start: i64, end: i64) -> bool {
        if self.anywhere {
            return true;
        }
        // Closed intervals ending before `start` cannot touch it; they are sorted by end.
        let first = self.closed.partition_point(|&(_, to)| to < start);
        if self.closed[first..].iter().any(|&(from, _)| from <= end) {
            return true;
        }
        let cpus = self.open.iter().zip(&self.pending).zip(&self.last);
        cpus.into_iter().any(|((open, &pending), last)| {
            open.is_some_and(|from| from <= end) || (pending > 0 && last.is_none_or(|l| l <= end))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(l: &mut Losses, evs: &[(i64, u16)]) {
        for &(t, c) in evs {
            l.see(t, c);
        }
    }

    #[test]
    fn a_loss_spans_from_the_cpus_last_event_to_its_next() {
        // trace_pipe: the report is stamped with the previous line (t=50, CPU 1's event); CPU 0
        // lost events somewhere between its events at 10 and 100.
        let mut l = Losses::new([(Some(50), 0)]);
        feed(&mut l, &[(10, 0), (50, 1), (100, 0), (200, 0)]);
        assert!(
            l.touches(20, 30),
            "inside the gap, before the report's stamp"
        );
        assert!(l.touches(60, 90), "inside the gap, after the stamp");
        assert!(l.touches(0, 15), "overlaps the gap's start");
        assert!(
            !l.touches(0, 5),
            "ended before CPU 0's last event before the loss"
        );
        assert!(!l.touches(120, 190), "started after CPU 0's next event");
    }

    #[test]
    fn a_page_flag_ends_at_the_pages_first_event() {
        // Binary pages: the report carries the time of the page's first event.
        let mut l = Losses::new([(Some(100), 1)]);
        feed(&mut l, &[(10, 1), (40, 0), (100, 1), (150, 0)]);
        assert!(l.touches(20, 30));
        assert!(!l.touches(110, 140));
    }

    #[test]
    fn a_report_not_reached_yet_counts_from_the_cpus_last_event() {
        // CPU 1 is idle after 20; its loss is reported at 1000. A request collected at 500 may
        // have lost events on CPU 1 already.
        let mut l = Losses::new([(Some(1000), 1)]);
        feed(&mut l, &[(20, 1), (300, 0), (500, 0)]);
        assert!(l.touches(300, 400));
        assert!(!l.touches(5, 15), "ended before CPU 1's last event");
    }

    #[test]
    fn an_untimed_report_covers_everything_unless_its_cpu_has_timed_ones() {
        let mut l = Losses::new([(None, 0)]);
        feed(&mut l, &[(10, 0)]);
        assert!(l.touches(1, 2));
        let mut l = Losses::new([(None, 0), (Some(100), 0)]);
        feed(&mut l, &[(10, 0), (100, 0), (200, 0)]);
        assert!(
            !l.touches(150, 160),
            "the stats count is the flagged page's loss"
        );
        assert!(l.touches(50, 60));
        let l = Losses::new([]);
        assert!(!l.touches(i64::MIN, i64::MAX));
    }
}
