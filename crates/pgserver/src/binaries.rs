//! Finding the PostgreSQL server binaries (`initdb`, `postgres`, `psql`) on this machine.

use std::path::{Path, PathBuf};

use crate::Error;

/// Environment variable that points at a directory holding `initdb` and `postgres`.
pub const BINDIR_ENV: &str = "PG_BINDIR";

/// The directory of one PostgreSQL installation's server binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds the server binaries: `$PG_BINDIR`, then `PATH`, then Debian's `/usr/lib/postgresql/<newest>/bin`.
    ///
    /// Debian does not put `initdb` on `PATH`, which is why its versioned directories are searched.
    pub fn locate() -> Result<Self, Error> {
        if let Some(dir) = std::env::var_os(BINDIR_ENV) {
            let dir = PathBuf::from(dir);
            return if has_server(&dir) {
                Ok(Self { dir })
            } else {
                Err(Error::BinariesNotFound {
                    searched: format!("{BINDIR_ENV}={} (no initdb and postgres there)", dir.display()),
                })
            };
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(dir) = on_path.iter().find(|d| has_server(d)) {
            // Symlinks such as /usr/local/bin/initdb point into the real installation, which also
            // holds psql and the server of the same version.
            let real = std::fs::canonicalize(dir.join("initdb")).ok();
            let dir = real.and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| dir.clone());
            return Ok(Self { dir });
        }
        if let Some(dir) = newest_debian_bindir(Path::new("/usr/lib/postgresql")) {
            return Ok(Self { dir });
        }
        Err(Error::BinariesNotFound {
            searched: format!("${BINDIR_ENV}, PATH and /usr/lib/postgresql/*/bin"),
        })
    }

    /// Uses the binaries in `dir` without checking for them.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory holding the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of one binary of this installation, e.g. `initdb`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server's version line, e.g. `postgres (PostgreSQL) 16.4`: what a data directory made by
    /// these binaries is compatible with.
    pub fn version(&self) -> Result<String, Error> {
        let postgres = self.tool("postgres");
        let failed = |why: String| Error::Io {
            action: format!("asking {} for its version", postgres.display()),
            source: std::io::Error::other(why),
        };
        let sh = xshell::Shell::new().map_err(|e| failed(e.to_string()))?;
        let out =
            xshell::cmd!(sh, "{postgres} --version").quiet().read().map_err(|e| failed(e.to_string()))?;
        Ok(out.trim().to_string())
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn newest_debian_bindir(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_debian_version_wins_and_incomplete_dirs_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        for (v, complete) in [("13", true), ("16", true), ("17", false), ("notaversion", true)] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), "").unwrap();
            if complete {
                std::fs::write(bin.join("postgres"), "").unwrap();
            }
        }
        let found = newest_debian_bindir(root.path()).unwrap();
        assert_eq!(found, root.path().join("16").join("bin"));
    }
}
