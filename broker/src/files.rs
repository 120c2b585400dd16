//! Small files written durably (checkpoints, `meta.properties`, the metadata file): a leaf
//! every room may use, so that `metadata/` does not borrow from the storage engine.

use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
