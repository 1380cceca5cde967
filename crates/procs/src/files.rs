//! The files a process layer writes and reads: private files (a secret is never readable by
//! others, not even for a moment) and the tails of logs that go into error messages.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// Where a process we start keeps its files: a fresh temporary directory, removed when this
/// value is dropped, or a directory of the caller's, kept.
#[derive(Debug)]
pub enum Workdir {
    /// Created for the process under the system temporary directory; removed on drop.
    Temp(tempfile::TempDir),
    /// The caller's; never removed.
    Kept(PathBuf),
}

impl Workdir {
    /// A new temporary directory whose name starts with `prefix`.
    pub fn temp(prefix: &str) -> Result<Self, Error> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir();
        Ok(Self::Temp(dir.map_err(|source| Error::Dir { path: std::env::temp_dir(), source })?))
    }

    /// The caller's `dir`, created if missing.
    pub fn kept(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|source| Error::Dir { path: dir.to_path_buf(), source })?;
        Ok(Self::Kept(dir.to_path_buf()))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

/// Writes `contents` to `path` with `mode` from the file's creation on (0600 for a secret is
/// never readable by others, not even for a moment), creating parent directories.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(err)?;
    // An existing file keeps its old mode through `open`: set it before writing.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    // On disk before anyone is told it is there (a rename, a server started on it).
    file.sync_all().map_err(err)
}

/// Like [`write_file`], but readers see the old contents or the new, never a half-written file:
/// the contents go to a fresh `<name>.tmp` beside `path`, which is then renamed over it.
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    // A leftover from a crash may belong to someone else or be a link: start from nothing.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Write { path: tmp, source: e });
        }
        _ => {}
    }
    write_file(&tmp, contents, mode)?;
    fs::rename(&tmp, path).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// The last `n` non-blank lines of `text`, joined with newlines: the end of a log or of a
/// command's stderr, for an error message (blank lines carry nothing there).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` non-blank lines of the log file at `path`; empty when it cannot be read (a
/// process that died before writing one), since a tail only adds to an error already reported.
pub fn log_tail(path: &Path, n: usize) -> String {
    tail(&String::from_utf8_lossy(&fs::read(path).unwrap_or_default()), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_0600_even_over_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret");
        write_file(&path, b"old", 0o644).unwrap();
        write_file(&path, b"new secret", 0o600).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"new secret");
    }

    #[test]
    fn an_unwritable_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = write_file(&file.join("below-a-file"), b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("below-a-file"), "{err}");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_with_its_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        // A world-readable leftover must not lend its mode to the new file.
        let leftover = dir.path().join("state.json.tmp");
        fs::write(&leftover, "stale").unwrap();
        fs::set_permissions(&leftover, fs::Permissions::from_mode(0o666)).unwrap();
        write_file_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!leftover.exists());
    }

    #[test]
    fn a_temporary_workdir_goes_with_its_value_and_a_kept_one_stays() {
        let temp = Workdir::temp("procs-test-").unwrap();
        let path = temp.path().to_path_buf();
        assert!(path.is_dir() && path.file_name().unwrap().to_string_lossy().starts_with("procs-test-"));
        drop(temp);
        assert!(!path.exists());
        let parent = tempfile::tempdir().unwrap();
        let kept = Workdir::kept(&parent.path().join("a/b")).unwrap();
        let path = kept.path().to_path_buf();
        drop(kept);
        assert!(path.is_dir());
    }

    #[test]
    fn a_tail_keeps_the_last_non_blank_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}  \n\n")).collect();
        let tail = tail(&text, 20);
        assert_eq!(tail.lines().count(), 20);
        assert!(tail.starts_with("line 11\n") && tail.ends_with("line 30"), "{tail}");
        assert_eq!(super::tail("only\n", 20), "only");
        assert_eq!(super::tail("", 5), "");
    }

    #[test]
    fn a_log_tail_reads_the_file_and_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        fs::write(&log, "starting\n\nready\nbye\n").unwrap();
        assert_eq!(log_tail(&log, 2), "ready\nbye");
        assert_eq!(log_tail(&dir.path().join("missing.log"), 2), "");
    }
}
