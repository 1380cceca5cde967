//! The snapshot cache: a migrated PostgreSQL cluster kept once per [`Key`], so that later local
//! runs copy it instead of running `initdb` and the migrations again.
//!
//! A template is a directory `<key>/` holding `data/` (a stopped cluster) and `template.json`
//! (its [`Meta`]). It is filled under a hidden `.incoming-*` name and renamed into place once
//! complete, so a reader never sees half of one, whatever happens to the writer; two writers
//! of one key race on the rename and the loser discards its copy. Readers copy under a shared
//! lock that pruning takes exclusively.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::InfraError;

/// The version of a template's layout and of what its key covers.
pub const FORMAT: &str = "xtask.pg-template/1";

/// The file inside a template naming what it holds.
const META: &str = "template.json";
/// The name prefix of templates being written.
const INCOMING: &str = ".incoming-";

/// One migration file a template has applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Its goose version.
    pub version: i64,
    /// Its file name.
    pub name: String,
    /// The checksum recorded in the tracking table.
    pub checksum: String,
}

/// Everything a template's contents depend on: two runs with equal keys would build equal
/// databases, so one may start from the other's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// [`FORMAT`].
    pub format: String,
    /// The server's version line (`postgres --version`): major and minor version.
    pub postgres: String,
    /// The directory of the server binaries.
    pub bindir: String,
    /// The superuser and the `initdb` options that shape a cluster.
    pub initdb: Vec<String>,
    /// The service's login role.
    pub user: String,
    /// The service's database.
    pub database: String,
    /// The suite's migration selection (`all`, or `tables:a,b`).
    pub selection: String,
    /// The migrations the selection applies to an empty database, with their checksums.
    pub migrations: Vec<Applied>,
    /// The UTC day: a migration may depend on the date (the audit partitions are created
    /// around the current month), so a template is only used on the day it was made.
    pub day: String,
}

impl Key {
    /// The key of `selection` from `dir` applied as `user` to `database` by the binaries in
    /// `bin`, today.
    pub fn new(
        bin: &pgserver::Binaries,
        user: &str,
        database: &str,
        dir: &Path,
        selection: &migrations::Selection,
    ) -> Result<Self, InfraError> {
        let set = migrations::MigrationSet::load(dir).map_err(|e| InfraError::Invalid(e.to_string()))?;
        let wanted = selection.resolve(&set).map_err(|e| InfraError::Invalid(e.to_string()))?;
        let migrations = set
            .migrations
            .iter()
            .filter(|m| wanted.contains_key(&m.version))
            .map(|m| Applied { version: m.version, name: m.name.clone(), checksum: m.checksum.clone() })
            .collect();
        Ok(Self {
            user: user.into(),
            database: database.into(),
            selection: match selection {
                migrations::Selection::All => "all".into(),
                migrations::Selection::Tables(t) => format!("tables:{}", t.join(",")),
            },
            migrations,
            day: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            ..Self::new_unmigrated(bin)?
        })
    }

    /// The key of a fresh cluster (`initdb` only, the superuser without a password) made by the
    /// same binaries with the same options: what a run whose migrations have no template yet
    /// starts from.
    pub fn initdb(&self) -> Self {
        Self {
            user: String::new(),
            database: String::new(),
            selection: "initdb".into(),
            migrations: Vec::new(),
            day: String::new(),
            ..self.clone()
        }
    }

    fn new_unmigrated(bin: &pgserver::Binaries) -> Result<Self, InfraError> {
        Ok(Self {
            format: FORMAT.into(),
            postgres: bin.version().map_err(|e| InfraError::Invalid(e.to_string()))?,
            bindir: bin.dir().display().to_string(),
            initdb: std::iter::once(format!("--username={}", pgserver::SUPERUSER))
                .chain(pgserver::INITDB_OPTIONS.iter().map(|o| o.to_string()))
                .collect(),
            user: String::new(),
            database: String::new(),
            selection: String::new(),
            migrations: Vec::new(),
            day: String::new(),
        })
    }

    /// The key's name: a hash of all of it, 16 hex digits.
    pub fn id(&self) -> String {
        hash(&serde_json::to_vec(self).expect("a key serializes"))
    }

    /// The hash of everything but the day: templates of one lineage from earlier days can
    /// never be used again.
    pub fn lineage(&self) -> String {
        let mut undated = self.clone();
        undated.day.clear();
        undated.id()
    }
}

fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What `template.json` says about a template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The key's id (the directory's name).
    pub id: String,
    /// [`Key::lineage`].
    pub lineage: String,
    /// The key in full.
    pub key: Key,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The run that made it.
    pub run: String,
}

impl Meta {
    /// The metadata of a template of `key` that run `run` makes now.
    pub fn new(key: Key, run: &str) -> Self {
        Meta {
            id: key.id(),
            lineage: key.lineage(),
            key,
            created: chrono::Utc::now().to_rfc3339(),
            run: run.to_string(),
        }
    }
}

/// A template in the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it holds.
    pub meta: Meta,
    /// Its directory.
    pub dir: PathBuf,
    /// The bytes of its files.
    pub bytes: u64,
    /// How long ago it was made.
    pub age: std::time::Duration,
}

/// What [`Cache::store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The template is in place, this many bytes.
    New(u64),
    /// Another run stored this key first; ours was discarded.
    AlreadyThere,
}

/// The templates under `<state dir>/cache/postgres`.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// A held lock on the cache; released when dropped.
pub struct Lock(#[allow(dead_code)] Flock<File>);

impl Cache {
    /// The cache of the state directory that holds `runs`.
    pub fn new(runs: &crate::state::Runs) -> Self {
        Self { dir: runs.base().parent().unwrap_or(runs.base()).join("cache").join("postgres") }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory of the complete template for `id`, if there is one: one whose
    /// metadata reads and names it.
    pub fn lookup(&self, id: &str) -> Option<PathBuf> {
        let dir = self.dir.join(id);
        read_meta(&dir).ok().map(|_| dir.join("data"))
    }

    fn lock(&self, how: FlockArg) -> Result<Lock, InfraError> {
        fs::create_dir_all(&self.dir).map_err(InfraError::io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(InfraError::io(format!("opening {}", path.display())))?;
        Flock::lock(file, how)
            .map(Lock)
            .map_err(|(_, errno)| InfraError::io(format!("locking {}", path.display()))(errno.into()))
    }

    /// A shared lock: templates are not removed while it is held (held while copying one).
    pub fn reading(&self) -> Result<Lock, InfraError> {
        self.lock(FlockArg::LockShared)
    }

    /// Stores the stopped cluster `data` (moved, or copied when it is on another file system)
    /// as the template of `meta.id`, atomically.
    pub fn store(&self, meta: &Meta, data: &Path) -> Result<Stored, InfraError> {
        fs::create_dir_all(&self.dir).map_err(InfraError::io(format!("creating {}", self.dir.display())))?;
        self.remove_abandoned()?;
        let final_dir = self.dir.join(&meta.id);
        if final_dir.join(META).is_file() {
            return Ok(Stored::AlreadyThere);
        }
        // Unique per writer: the pid (so leftovers of dead ones can be told apart) and a nonce.
        let nonce = pgserver::random_password()[..6].to_lowercase();
        let incoming = self.dir.join(format!("{INCOMING}{}-{}-{nonce}", std::process::id(), &meta.id));
        let result = (|| {
            fs::create_dir(&incoming).map_err(InfraError::io(format!("creating {}", incoming.display())))?;
            let target = incoming.join("data");
            match fs::rename(data, &target) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                    pgserver::copy_cluster(data, &target).map_err(|e| InfraError::Invalid(e.to_string()))?;
                }
                Err(e) => return Err(InfraError::io(format!("moving {} into the cache", data.display()))(e)),
            }
            let text = serde_json::to_string_pretty(meta).expect("meta serializes");
            crate::report::write_atomic(&incoming.join(META), &text)
                .map_err(|e| InfraError::Invalid(format!("writing the template's {META}: {e}")))?;
            Ok(size_of(&incoming))
        })();
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_dir_all(&incoming);
                return Err(e);
            }
        };
        match fs::rename(&incoming, &final_dir) {
            Ok(()) => {}
            // Another run renamed its copy into place first (the target is a non-empty directory).
            Err(_) if final_dir.join(META).is_file() => {
                fs::remove_dir_all(&incoming)
                    .map_err(InfraError::io(format!("removing {}", incoming.display())))?;
                return Ok(Stored::AlreadyThere);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&incoming);
                return Err(InfraError::io(format!("moving {} into place", final_dir.display()))(e));
            }
        }
        // Earlier days' templates of this lineage can never be used again.
        if let Ok(_lock) = self.lock(FlockArg::LockExclusiveNonblock) {
            for entry in self.list()? {
                if entry.meta.lineage == meta.lineage && entry.meta.id != meta.id {
                    let _ = fs::remove_dir_all(&entry.dir);
                }
            }
        }
        Ok(Stored::New(bytes))
    }

    /// A private directory for making the template `id` in, named like a writer's staging
    /// (`.incoming-<pid>-<id>-work-*`): what a killed maker leaves is removed with the leftovers
    /// of other dead writers. Remove it with [`Cache::remove_workdir`].
    pub fn workdir(&self, id: &str) -> Result<PathBuf, InfraError> {
        fs::create_dir_all(&self.dir).map_err(InfraError::io(format!("creating {}", self.dir.display())))?;
        let nonce = pgserver::random_password()[..6].to_lowercase();
        let dir = self.dir.join(format!("{INCOMING}{}-{id}-work-{nonce}", std::process::id()));
        fs::create_dir(&dir).map_err(InfraError::io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    /// Removes a [`Cache::workdir`] or a writer's leftovers, with the data of any cluster in it
    /// kept elsewhere (a tmpfs; see `pgserver::DATA_POINTER`).
    pub fn remove_workdir(&self, dir: &Path) -> Result<(), InfraError> {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pgserver::remove_data(&entry.path()).map_err(|e| InfraError::Invalid(e.to_string()))?;
            }
        }
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(InfraError::io(format!("removing {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes what writers that died left behind (`.incoming-<pid>-*` of a pid that is gone).
    fn remove_abandoned(&self) -> Result<(), InfraError> {
        for path in self.incoming()? {
            let pid = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(INCOMING))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|p| !procs::pid_alive(p)) {
                self.remove_workdir(&path)?;
            }
        }
        Ok(())
    }

    fn incoming(&self) -> Result<Vec<PathBuf>, InfraError> {
        Ok(self
            .read_dir()?
            .into_iter()
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(INCOMING)))
            .collect())
    }

    fn read_dir(&self) -> Result<Vec<PathBuf>, InfraError> {
        match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(InfraError::io(format!("reading {}", self.dir.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(InfraError::io(format!("reading {}", self.dir.display()))(e)),
        }
    }

    /// Template directories whose metadata does not read (edited, truncated, another
    /// version's), with why: no run uses them, and [`Cache::prune`] removes them.
    pub fn broken(&self) -> Result<Vec<(PathBuf, String)>, InfraError> {
        let mut broken = Vec::new();
        for dir in self.read_dir()? {
            if dir.join(META).exists()
                && let Err(why) = read_meta(&dir)
            {
                broken.push((dir, why));
            }
        }
        Ok(broken)
    }

    /// The complete templates, newest first (those whose metadata does not read are
    /// [`Cache::broken`]).
    pub fn list(&self) -> Result<Vec<Entry>, InfraError> {
        let mut entries = Vec::new();
        for dir in self.read_dir()? {
            let Ok(meta) = read_meta(&dir) else { continue };
            let age = chrono::DateTime::parse_from_rfc3339(&meta.created)
                .ok()
                .and_then(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().ok())
                .unwrap_or_default();
            entries.push(Entry { bytes: size_of(&dir), dir, meta, age });
        }
        entries.sort_by_key(|e| e.age);
        Ok(entries)
    }

    /// Removes the templates `doomed` picks, what dead writers left and broken templates;
    /// waits for runs copying a template to finish. Returns the templates removed.
    pub fn prune(&self, doomed: impl Fn(&Entry) -> bool) -> Result<Vec<Entry>, InfraError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        self.remove_abandoned()?;
        for (dir, _) in self.broken()? {
            fs::remove_dir_all(&dir).map_err(InfraError::io(format!("removing {}", dir.display())))?;
        }
        let mut removed = Vec::new();
        for entry in self.list()? {
            if doomed(&entry) {
                // The metadata first: a template without it is no template, even half removed.
                fs::remove_file(entry.dir.join(META))
                    .map_err(InfraError::io(format!("removing {}", entry.dir.display())))?;
                fs::remove_dir_all(&entry.dir)
                    .map_err(InfraError::io(format!("removing {}", entry.dir.display())))?;
                removed.push(entry);
            }
        }
        Ok(removed)
    }
}

/// The metadata of the template directory `dir`, or why it does not read.
fn read_meta(dir: &Path) -> Result<Meta, String> {
    let path = dir.join(META);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if meta.id != name {
        return Err(format!("{}: names template {}, not {name}", path.display(), meta.id));
    }
    Ok(meta)
}

/// The bytes of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            format: FORMAT.into(),
            postgres: "postgres (PostgreSQL) 16.4".into(),
            bindir: "/usr/lib/postgresql/16/bin".into(),
            initdb: vec!["--username=postgres".into(), "--locale=C".into()],
            user: "slm_user".into(),
            database: "action_history".into(),
            selection: "all".into(),
            migrations: vec![Applied { version: 1, name: "001_a.sql".into(), checksum: "c1".into() }],
            day: "2026-11-24".into(),
        }
    }

    fn meta(key: &Key) -> Meta {
        Meta::new(key.clone(), "test")
    }

    /// A stand-in for a stopped cluster: what matters here is that it moves whole.
    fn data(dir: &Path, name: &str) -> PathBuf {
        let d = dir.join(name);
        fs::create_dir_all(d.join("base/1")).unwrap();
        fs::write(d.join("PG_VERSION"), "16\n").unwrap();
        fs::write(d.join("base/1/1259"), vec![7u8; 8192]).unwrap();
        d
    }

    #[test]
    fn every_part_of_the_key_names_another_template_and_the_day_keeps_the_lineage() {
        let base = key();
        type Change = Box<dyn Fn(&mut Key)>;
        let changes: Vec<(&str, Change)> = vec![
            ("postgres", Box::new(|k| k.postgres = "postgres (PostgreSQL) 17.0".into())),
            ("bindir", Box::new(|k| k.bindir = "/opt/pg/bin".into())),
            ("initdb", Box::new(|k| k.initdb.push("--wal-segsize=1".into()))),
            ("user", Box::new(|k| k.user = "other".into())),
            ("database", Box::new(|k| k.database = "other".into())),
            ("selection", Box::new(|k| k.selection = "tables:audit_events".into())),
            ("checksum", Box::new(|k| k.migrations[0].checksum = "c2".into())),
            (
                "added",
                Box::new(|k| {
                    k.migrations.push(Applied { version: 2, name: "002_b.sql".into(), checksum: "c".into() })
                }),
            ),
            ("removed", Box::new(|k| k.migrations.clear())),
            ("day", Box::new(|k| k.day = "2026-11-25".into())),
        ];
        for (what, change) in changes {
            let mut k = base.clone();
            change(&mut k);
            assert_ne!(k.id(), base.id(), "a different {what} is a different template");
            assert_eq!(k.lineage() == base.lineage(), what == "day", "{what}");
        }
        assert_eq!(key().id(), base.id(), "the same key names the same template");
        assert_eq!(base.id().len(), 16);
    }

    #[test]
    fn a_stored_template_is_found_whole_and_a_second_store_of_its_key_is_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache { dir: tmp.path().join("cache") };
        let k = key();
        assert_eq!(cache.lookup(&k.id()), None);
        let stored = cache.store(&meta(&k), &data(tmp.path(), "one")).unwrap();
        assert!(matches!(stored, Stored::New(b) if b > 8192), "{stored:?}");
        let found = cache.lookup(&k.id()).unwrap();
        assert_eq!(fs::read(found.join("base/1/1259")).unwrap(), vec![7u8; 8192]);
        assert!(!tmp.path().join("one").exists(), "the data was moved, not copied");
        let two = data(tmp.path(), "two");
        assert_eq!(cache.store(&meta(&k), &two).unwrap(), Stored::AlreadyThere);
        assert_eq!(cache.list().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_stores_of_one_key_leave_one_template() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache { dir: tmp.path().join("cache") };
        let k = key();
        let sources: Vec<PathBuf> = (0..6).map(|i| data(tmp.path(), &format!("src{i}"))).collect();
        let barrier = std::sync::Barrier::new(sources.len());
        let results: Vec<Stored> = std::thread::scope(|s| {
            let handles: Vec<_> = sources
                .iter()
                .map(|src| {
                    let (cache, m, barrier) = (&cache, meta(&k), &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let mut m = m;
                        m.run = src.display().to_string();
                        cache.store(&m, src).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| matches!(r, Stored::New(_))).count(), 1, "{results:?}");
        let names: Vec<_> = fs::read_dir(&cache.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(cache.list().unwrap().len(), 1);
        assert!(
            names.iter().all(|n| !n.to_string_lossy().starts_with(INCOMING)),
            "no half-written template is left: {names:?}"
        );
    }

    #[test]
    fn what_a_killed_writer_left_is_no_template_and_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache { dir: tmp.path().join("cache") };
        let k = key();
        // A writer killed after copying the data but before writing the metadata and renaming.
        let mut dead = procs::spawn(procs::command("true"), procs::Tie::Detached).unwrap();
        let pid = dead.id();
        dead.wait().unwrap();
        let abandoned = cache.dir.join(format!("{INCOMING}{pid}-{}", k.id()));
        fs::create_dir_all(&abandoned).unwrap();
        fs::rename(data(tmp.path(), "half"), abandoned.join("data")).unwrap();
        // And one killed while a template was being removed: its metadata goes first.
        fs::create_dir_all(cache.dir.join("0123456789abcdef/data")).unwrap();
        assert_eq!(cache.lookup(&k.id()), None);
        assert!(cache.list().unwrap().is_empty());
        assert!(cache.prune(|_| true).unwrap().is_empty());
        assert!(!abandoned.exists(), "pruning removes a dead writer's leftovers");
    }

    #[test]
    fn a_template_whose_metadata_does_not_read_is_used_by_no_run_listed_as_broken_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache { dir: tmp.path().join("cache") };
        let (k, other) = (key(), Key { database: "other".into(), ..key() });
        cache.store(&meta(&k), &data(tmp.path(), "a")).unwrap();
        cache.store(&meta(&other), &data(tmp.path(), "b")).unwrap();
        fs::write(cache.dir.join(k.id()).join(META), "{\"id\": ").unwrap();
        // Metadata naming another template is as wrong as none (a copied directory).
        let moved = cache.dir.join("feedfacefeedface");
        fs::create_dir_all(&moved).unwrap();
        fs::copy(cache.dir.join(other.id()).join(META), moved.join(META)).unwrap();
        assert_eq!(cache.lookup(&k.id()), None, "no run copies it");
        assert_eq!(cache.lookup("feedfacefeedface"), None);
        let listed: Vec<String> = cache.list().unwrap().into_iter().map(|e| e.meta.id).collect();
        assert!(
            listed.contains(&other.id()) && !listed.contains(&k.id()),
            "the rest still lists: {listed:?}"
        );
        let mut broken = cache.broken().unwrap();
        broken.sort();
        assert_eq!(broken.len(), 2, "{broken:?}");
        let why: Vec<&str> = broken.iter().map(|(_, why)| why.as_str()).collect();
        assert!(why.iter().all(|w| w.contains(META)), "each names its file: {why:?}");
        assert!(why.iter().any(|w| w.contains("EOF")), "{why:?}");
        assert!(
            why.iter().any(|w| w.contains(&format!("names template {}, not feedfacefeedface", other.id())))
        );
        // Storing again still works beside it, and pruning the other one removes it too.
        cache.store(&meta(&Key { user: "u2".into(), ..key() }), &data(tmp.path(), "c")).unwrap();
        let removed = cache.prune(|e| e.meta.id == other.id()).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(!cache.dir.join(k.id()).exists() && !moved.exists(), "the broken ones went with the prune");
        assert!(cache.broken().unwrap().is_empty());
    }

    #[test]
    fn a_new_days_template_replaces_the_earlier_days_of_its_lineage_only() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache { dir: tmp.path().join("cache") };
        let yesterday = Key { day: "2026-11-23".into(), ..key() };
        let other = Key { database: "other".into(), day: "2026-11-23".into(), ..key() };
        cache.store(&meta(&yesterday), &data(tmp.path(), "a")).unwrap();
        cache.store(&meta(&other), &data(tmp.path(), "b")).unwrap();
        cache.store(&meta(&key()), &data(tmp.path(), "c")).unwrap();
        let mut left: Vec<String> = cache.list().unwrap().into_iter().map(|e| e.meta.id).collect();
        left.sort();
        let mut want = vec![key().id(), other.id()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn the_key_covers_the_checksums_of_the_selected_migrations_only() {
        let Ok(bin) = pgserver::Binaries::locate() else {
            eprintln!("skipped: no PostgreSQL binaries on this machine (apt-get install postgresql)");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let write = |name: &str, sql: &str| fs::write(dir.join(name), sql).unwrap();
        write("001_a.sql", "-- +goose Up\nCREATE TABLE a (x int);\n-- +goose Down\nDROP TABLE a;\n");
        write("002_b.sql", "-- +goose Up\nCREATE TABLE b (x int);\n-- +goose Down\nDROP TABLE b;\n");
        let all = migrations::Selection::All;
        let only_a = migrations::Selection::Tables(vec!["a".into()]);
        let key = |s: &migrations::Selection| Key::new(&bin, "u", "d", dir, s).unwrap();
        let (all0, a0) = (key(&all), key(&only_a));
        assert_eq!(all0.migrations.len(), 2);
        assert_eq!(a0.migrations.len(), 1);
        write("002_b.sql", "-- +goose Up\nCREATE TABLE b (y int);\n-- +goose Down\nDROP TABLE b;\n");
        assert_ne!(key(&all).id(), all0.id(), "an edited migration is another template");
        assert_eq!(key(&only_a).id(), a0.id(), "an edit to a migration the selection skips is not");
        write("003_c.sql", "-- +goose Up\nCREATE TABLE c (x int);\n-- +goose Down\nDROP TABLE c;\n");
        let added = key(&all);
        assert_eq!(added.migrations.len(), 3, "an added migration is in the key");
        fs::remove_file(dir.join("001_a.sql")).unwrap();
        assert_ne!(key(&all).id(), added.id(), "so is a removed one");
    }
}
