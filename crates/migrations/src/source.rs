//! Discovering migration files in a folder: `NNN_name.sql`, numeric order, one file per version.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::parse::{Parsed, parse};

/// One migration file as found on disk, not yet parsed.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The version: the number before the first `_` of the file name.
    pub version: i64,
    /// The file name, e.g. `003_create_workflow_catalog.sql`.
    pub name: String,
    /// The path as found under the migrations folder.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

/// A parsed migration.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// The version.
    pub version: i64,
    /// The file name.
    pub name: String,
    /// The path as found under the migrations folder.
    pub path: PathBuf,
    /// SHA-256 of the file with line endings normalised to `\n`, as lowercase hex.
    pub checksum: String,
    /// The parsed content.
    #[serde(skip)]
    pub parsed: Parsed,
}

/// All migrations of a folder, in version order.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    /// The folder they came from.
    pub dir: PathBuf,
    /// The migrations, sorted by version.
    pub migrations: Vec<Migration>,
}

impl MigrationSet {
    /// Discovers and parses every migration in `dir`; the first problem found is the error.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let files = scan(dir)?;
        check_unique(&files)?;
        let migrations = files.into_iter().map(SourceFile::parse).collect::<Result<_, _>>()?;
        Ok(Self { dir: dir.to_path_buf(), migrations })
    }

    /// The migration with this version.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }
}

impl SourceFile {
    /// Parses the file, naming it in the error.
    pub fn parse(self) -> Result<Migration, Error> {
        let parsed = parse(&self.text).map_err(|source| Error::Parse { file: self.path.clone(), source })?;
        Ok(Migration {
            version: self.version,
            checksum: checksum(&self.text),
            name: self.name,
            path: self.path,
            parsed,
        })
    }
}

/// SHA-256 of `text` with CRLF line endings normalised, so a Windows checkout does not look edited.
pub fn checksum(text: &str) -> String {
    let normalised = text.replace("\r\n", "\n");
    let digest = Sha256::digest(normalised.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lists the migration files directly in `dir` (sub-folders such as `testdata/` are not searched,
/// as goose does not search them), sorted by version; duplicates are kept for [`check_unique`].
pub fn scan(dir: &Path) -> Result<Vec<SourceFile>, Error> {
    if !dir.is_dir() {
        return Err(Error::DirNotFound { dir: dir.to_path_buf() });
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).max_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Io {
            path: e.path().unwrap_or(dir).to_path_buf(),
            source: e.into_io_error().unwrap_or_else(|| std::io::Error::other("file system loop")),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str() else { continue };
        let Some(version) = version_of(name) else { continue };
        let path = entry.path().to_path_buf();
        let version = version.map_err(|reason| Error::BadVersion { file: path.clone(), reason })?;
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        files.push(SourceFile { version, name: name.to_string(), path, text });
    }
    files.sort_by_key(|f| f.version);
    Ok(files)
}

/// Fails on the first version held by two files, naming both.
pub fn check_unique(files: &[SourceFile]) -> Result<(), Error> {
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(Error::DuplicateVersion {
                version: pair[0].version,
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    Ok(())
}

/// `None` when the name is not a migration at all; `Some(Err)` when it looks like one but its
/// version is unusable.
fn version_of(name: &str) -> Option<Result<i64, String>> {
    let stem = name.strip_suffix(".sql")?;
    let (digits, rest) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
        return None;
    }
    Some(match digits.parse::<i64>() {
        Ok(0) => Err("version 0 is reserved by goose for its own bookkeeping row".to_string()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("version {digits} does not fit a 64-bit integer")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_names() {
        assert_eq!(version_of("001_init.sql"), Some(Ok(1)));
        assert_eq!(version_of("20240101120000_big.sql"), Some(Ok(20240101120000)));
        assert_eq!(version_of("10_x_y.sql"), Some(Ok(10)));
        for not_a_migration in
            ["README.md", "init.sql", "_x.sql", "1a_x.sql", "001_.sql", "001.sql", "001_x.sql.bak"]
        {
            assert_eq!(version_of(not_a_migration), None, "{not_a_migration}");
        }
        assert!(version_of("000_x.sql").unwrap().is_err());
        assert!(version_of("99999999999999999999_x.sql").unwrap().is_err());
    }

    #[test]
    fn numeric_order_duplicates_and_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let up = "-- +goose Up\nSELECT 1;\n";
        for name in ["10_ten.sql", "9_nine.sql", "notes.txt", "testdata/1_fixture.sql"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, up).unwrap();
        }
        let set = MigrationSet::load(dir.path()).unwrap();
        let versions: Vec<i64> = set.migrations.iter().map(|m| m.version).collect();
        assert_eq!(versions, vec![9, 10]);

        std::fs::write(dir.path().join("009_again.sql"), up).unwrap();
        let err = MigrationSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("version 9") && err.contains("009_again.sql") && err.contains("9_nine.sql"),
            "{err}"
        );
    }

    #[test]
    fn checksum_ignores_line_endings_but_not_content() {
        assert_eq!(checksum("a\nb\n"), checksum("a\r\nb\r\n"));
        assert_ne!(checksum("a\nb\n"), checksum("a\nc\n"));
    }
}
