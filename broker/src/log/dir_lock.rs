//! The exclusive lock on a log directory: a `.lock` file held with `flock` for as long as the
//! broker runs, as Kafka's `LogManager` does, so that a second broker pointed at the same
//! directory exits before it reads, repairs or deletes anything in it.
//!
//! The lock belongs to the open file description: it is released when the process exits,
//! however it exits (kill -9 included), and never outlives it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

pub const LOCK_FILE: &str = ".lock";

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` without waiting. Fails with `WouldBlock` and a message naming
    /// the directory when another process holds it.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "log directory {} is in use by another broker process (it holds {}); \
                     stop that broker or choose another log.dirs",
                    dir.display(),
                    path.display()
                ),
            )),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot lock {}: {e}", path.display()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = DirLock::acquire(dir.path())?;
        let second = DirLock::acquire(dir.path());
        let err = second
            .err()
            .ok_or_else(|| io::Error::other("second lock taken"))?;
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        drop(first);
        DirLock::acquire(dir.path())?;
        Ok(())
    }
}
