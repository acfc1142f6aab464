//! The lock that tests which trace hold.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

/// Held while a test traces; released when dropped.
#[derive(Debug)]
pub struct TracefsLock {
    _lock: Flock<File>,
}

/// Wait for, then take, the lock tests hold while they create tracefs instances or trace. It
/// is an `flock` on a file in the system's temporary directory, so it serialises threads of
/// one test binary and separate binaries alike (a starting recorder removes instances left by
/// dead processes, which a kill -9 test must observe itself).
pub fn tracefs_lock() -> TracefsLock {
    let path = std::env::temp_dir().join("kreq-tests-tracefs.lock");
    loop {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return TracefsLock { _lock: lock },
            Err((_, nix::errno::Errno::EINTR)) => continue,
            Err((_, e)) => panic!("{}: flock: {e}", path.display()),
        }
    }
}
