//! Moving whole ring-buffer pages out of `trace_pipe_raw` many at a time, through a pipe.
//!
//! `splice(2)` from `trace_pipe_raw` hands over only pages the kernel has finished writing,
//! up to a pipe's capacity per call, where `read(2)` returns one page per call. A reader's own
//! calls are recorded too when the profile traces `read` (they are left out when decoding), so
//! this cuts both the system calls and the events they add: a `read` of the pipe per MiB moved
//! instead of one per page.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

/// Pipe capacity asked for: the largest an unprivileged pipe may have by default.
const PIPE_BYTES: i32 = 1 << 20;

/// A pipe to splice pages through.
#[derive(Debug)]
pub(crate) struct Splicer {
    read_end: File,
    write_end: OwnedFd,
    /// Bytes one call may move: the pipe's capacity in whole pages.
    max: usize,
    page_size: usize,
}

impl Splicer {
    /// A pipe for pages of `page_size` bytes; None if the system refuses one.
    pub(crate) fn new(page_size: usize) -> Option<Self> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        let cap = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES))
            .or_else(|_| fcntl(&w, FcntlArg::F_GETPIPE_SZ))
            .ok()?;
        let max = usize::try_from(cap).ok()? / page_size.max(1) * page_size;
        (max > 0).then(|| Self {
            read_end: File::from(r),
            write_end: w,
            max,
            page_size,
        })
    }

    /// Move finished pages from `from` to the end of `to`, as many whole pages as its spare
    /// capacity holds (it never grows); returns the bytes moved, 0 when no finished page is
    /// waiting or there is no room.
    pub(crate) fn move_pages(&self, from: &impl AsFd, to: &mut Vec<u8>) -> std::io::Result<usize> {
        let room = to.capacity() - to.len();
        let len = self.max.min(room / self.page_size * self.page_size);
        if len == 0 {
            return Ok(0);
        }
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        let n = loop {
            match splice(from, None, &self.write_end, None, len, flags) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        };
        let at = to.len();
        // The kernel splices whole pages; pad anything else to one, as reads are.
        to.resize(at + n.div_ceil(self.page_size) * self.page_size, 0);
        (&self.read_end).read_exact(&mut to[at..at + n])?;
        Ok(n)
    }
}
