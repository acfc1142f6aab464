//! Per-CPU readers of `trace_pipe_raw`, woken in batches by the instance's `buffer_percent`.
//!
//! A reader sleeps in `poll(2)` until the kernel says its CPU buffer is `buffer_percent` full,
//! or [`Wake::max_wait`] has passed, or the recording stops; it then reads every whole
//! sub-buffer available without blocking. It is never woken per event, so an idle machine
//! costs a few wakeups per second rather than one per traced event.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{Error, Result};
use crate::splice::Splicer;
use kreq_ingest::binary::format::PageHeader;
use kreq_ingest::binary::page::Page;

/// Told to the readers when the recording stops: an eventfd that becomes readable once.
#[derive(Debug, Clone)]
pub(crate) struct Wake {
    stop: std::sync::Arc<EventFd>,
    /// Longest a page may wait in the kernel buffer below the `buffer_percent` mark.
    pub max_wait: Duration,
}

impl Wake {
    pub(crate) fn new(max_wait: Duration) -> Result<Self> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| Error::Tracefs(format!("eventfd: {e}")))?;
        Ok(Self {
            stop: std::sync::Arc::new(fd),
            max_wait,
        })
    }

    /// Wake every reader for the final drain (they then read until the buffer is empty).
    pub(crate) fn stop(&self) -> Result<()> {
        self.stop
            .write(1)
            .map(|_| ())
            .map_err(|e| Error::Tracefs(format!("eventfd write: {e}")))
    }

    fn stopped(&self) -> bool {
        let mut fds = [PollFd::new(self.stop.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Sleep until `file` has data past the mark, the stop flag, or `max_wait`.
    fn sleep(&self, file: &impl AsFd) -> std::io::Result<()> {
        let timeout = PollTimeout::try_from(self.max_wait).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(file.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// How a reader spent its time (for the record summary and the overhead study).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReaderStats {
    /// Times the reader returned from `poll(2)`.
    pub wakeups: u64,
    /// Sub-buffers read.
    pub pages: u64,
    /// Of those, finished ones moved by `splice(2)`, many per call.
    pub spliced: u64,
}

/// Sub-buffers read from one CPU in one go, each padded to the sub-buffer size.
#[derive(Debug)]
pub(crate) struct Pages {
    /// Index of the CPU in the recording's CPU list.
    pub cpu_index: usize,
    /// Whole sub-buffers, back to back; a short read is padded with zeros.
    pub data: Vec<u8>,
    /// Bytes the kernel returned (without the padding).
    pub bytes: usize,
}

/// Page buffers, handed back by the recorder once their pages are written and reused by the
/// readers. Fresh memory costs a page fault and zeroing per page (2 MiB at a time where
/// transparent huge pages are on): on the testbed that was most of the recorder's CPU time
/// while the load ran, more than reading the pages.
#[derive(Debug, Clone, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// A pool holding `count` buffers of `capacity` bytes, written once so the memory is
    /// faulted in now, before tracing starts, rather than in the traced workload's time.
    pub(crate) fn prefilled(count: usize, capacity: usize) -> Self {
        let free = (0..count)
            .map(|_| {
                // Zeroed memory is only reserved; a write to each page faults it in.
                let mut v = vec![0u8; capacity];
                v.iter_mut().step_by(4096).for_each(|b| *b = 1);
                std::hint::black_box(&mut v).clear();
                v
            })
            .collect();
        Self(Arc::new(Mutex::new(free)))
    }

    /// An empty buffer of at least `capacity` bytes, reused when one is free.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let free = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match free {
            Some(v) if v.capacity() >= capacity => v,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// Append whole pages of `page_size` bytes to `runs`, filling its last buffer before
    /// taking the next from the pool; no buffer grows past its capacity, so none is moved.
    pub(crate) fn append(&self, runs: &mut Vec<Vec<u8>>, mut pages: &[u8], page_size: usize) {
        let page = page_size.max(1);
        while !pages.is_empty() {
            let room = runs
                .last()
                .map_or(0, |v| (v.capacity() - v.len()) / page * page);
            if room == 0 {
                runs.push(self.take(BATCH_BYTES + page));
                continue;
            }
            let n = room.min(pages.len());
            if let Some(v) = runs.last_mut() {
                v.extend_from_slice(&pages[..n]);
            }
            pages = &pages[n..];
        }
    }

    /// Give a buffer back for reuse.
    pub(crate) fn put(&self, mut v: Vec<u8>) {
        v.clear();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(v);
    }
}

/// Pages are handed on in batches of about this many bytes (or when a drain ends), so the
/// encoder is woken once per batch rather than once per page.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// Read one CPU's `trace_pipe_raw` until the recording stops and the buffer is empty:
/// finished pages are spliced (see [`Splicer`]), the rest read a page at a time.
///
/// A drain ends at the first page less than half full unless the recording is stopping: that
/// was the page the kernel was still writing. Reading on would return the few events written
/// since, among them this reader's own `read` calls (the kernel records them; they are left
/// out when decoding), so a reader could keep itself busy with near-empty pages.
pub(crate) fn read_cpu(
    path: &Path,
    index: usize,
    (page_size, header): (usize, PageHeader),
    wake: &Wake,
    out: &mpsc::Sender<Pages>,
    pool: &BufferPool,
) -> Result<ReaderStats> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut stats = ReaderStats::default();
    let new_batch = || Pages {
        cpu_index: index,
        data: pool.take(BATCH_BYTES + page_size),
        bytes: 0,
    };
    let mut batch = new_batch();
    // Hand the batch on; false once the recorder has gone.
    let send = |batch: &mut Pages| out.send(std::mem::replace(batch, new_batch())).is_ok();
    let mut splicer = Splicer::new(page_size);
    loop {
        // Checked before draining: pages read after the stop flag are the final drain.
        let stopping = wake.stopped();
        // Finished pages first, many per call; then page by page, up to the unfinished one.
        while let Some(sp) = &splicer {
            if batch.data.capacity() - batch.data.len() < page_size {
                if !send(&mut batch) {
                    return Ok(stats);
                }
                continue;
            }
            match sp.move_pages(&f, &mut batch.data) {
                Ok(0) => break,
                Ok(n) => {
                    let pages = n.div_ceil(page_size) as u64;
                    stats.pages += pages;
                    stats.spliced += pages;
                    batch.bytes += n;
                }
                // Not spliceable here (an unusual kernel or file system): read instead.
                Err(_) => splicer = None,
            }
        }
        loop {
            let at = batch.data.len();
            batch.data.resize(at + page_size, 0);
            let n = match f.read(&mut batch.data[at..]) {
                // 0: empty once tracing is off; WouldBlock: empty while tracing.
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    batch.data.truncate(at);
                    continue;
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            if n == 0 {
                batch.data.truncate(at);
                break;
            }
            stats.pages += 1;
            batch.bytes += n;
            let partial = Page::parse(&batch.data[at..], &header)
                .is_ok_and(|p| 2 * p.data_len < page_size.saturating_sub(header.data_offset));
            if batch.data.len() >= BATCH_BYTES && !send(&mut batch) {
                return Ok(stats);
            }
            if partial && !stopping {
                break;
            }
        }
        if !batch.data.is_empty() && !send(&mut batch) {
            return Ok(stats);
        }
        if stopping {
            return Ok(stats);
        }
        wake.sleep(&f).map_err(|e| Error::io(path, e))?;
        stats.wakeups += 1;
    }
}

/// Unix-epoch ns minus `clock` ns now, for the trace clocks user space can read
/// (`mono` = CLOCK_MONOTONIC, `boot` = CLOCK_BOOTTIME); `None` for the others.
pub(crate) fn epoch_offset_ns(clock: &str) -> Option<i64> {
    use nix::time::{clock_gettime, ClockId};
    let id = match clock {
        "mono" => ClockId::CLOCK_MONOTONIC,
        "boot" => ClockId::CLOCK_BOOTTIME,
        _ => return None,
    };
    let ns = |t: nix::sys::time::TimeSpec| t.tv_sec() * 1_000_000_000 + t.tv_nsec();
    let before = clock_gettime(id).ok()?;
    let wall = clock_gettime(ClockId::CLOCK_REALTIME).ok()?;
    let after = clock_gettime(id).ok()?;
    Some(ns(wall) - (ns(before) + ns(after)) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_pages_fill_buffers_in_order_without_moving_them() {
        let page = 4096;
        let pool = BufferPool::prefilled(2, BATCH_BYTES + page);
        let mut runs = Vec::new();
        let mut all = Vec::new();
        // Batches of 1, 300, 2, 256 and 1 pages; every page's bytes name it.
        for (k, n) in [1usize, 300, 2, 256, 1].into_iter().enumerate() {
            let batch: Vec<u8> = (0..n * page).map(|i| (k * 31 + i / page) as u8).collect();
            pool.append(&mut runs, &batch, page);
            all.extend_from_slice(&batch);
        }
        assert_eq!(runs.concat(), all);
        assert_eq!(
            runs.len(),
            3,
            "560 pages fill 2 buffers of 257 and start a third"
        );
        for v in &runs {
            assert_eq!(v.capacity(), BATCH_BYTES + page, "a buffer was reallocated");
        }
        assert!(runs[..2].iter().all(|v| v.len() == 257 * page));
        // Buffers given back are handed out again rather than allocated.
        let given: Vec<*const u8> = runs.iter().map(|v| v.as_ptr()).collect();
        for v in runs.drain(..) {
            pool.put(v);
        }
        pool.append(&mut runs, &all[..page], page);
        assert!(given.contains(&runs[0].as_ptr()));
        assert_eq!(runs[0], all[..page]);
        assert_eq!(pool.0.lock().map(|f| f.len()).ok(), Some(2));
    }
}
