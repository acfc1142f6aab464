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
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{Error, Result};

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

/// Pages are handed on in batches of about this many bytes (or when a drain ends), so the
/// encoder is woken once per batch rather than once per page.
const BATCH_BYTES: usize = 1 << 20;

/// Read one CPU's `trace_pipe_raw` until the recording stops and the buffer is empty.
pub(crate) fn read_cpu(
    path: &Path,
    index: usize,
    page_size: usize,
    wake: &Wake,
    out: &mpsc::Sender<Pages>,
) -> Result<ReaderStats> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut stats = ReaderStats::default();
    let new_batch = || Pages {
        cpu_index: index,
        data: Vec::with_capacity(BATCH_BYTES + page_size),
        bytes: 0,
    };
    let mut batch = new_batch();
    // Hand the batch on; false once the recorder has gone.
    let send = |batch: &mut Pages| out.send(std::mem::replace(batch, new_batch())).is_ok();
    loop {
        // Checked before draining: pages read after the stop flag are the final drain.
        let stopping = wake.stopped();
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
            if batch.data.len() >= BATCH_BYTES && !send(&mut batch) {
                return Ok(stats);
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
