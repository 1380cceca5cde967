//! The Redis-stream dead-letter queue: batches PostgreSQL could not take wait here, and a
//! background task replays them once it can, acknowledging an entry only after its commit.
//!
//! Nothing is ever trimmed away: a batch is added only while the stream holds fewer than
//! `dlq_max_len` entries (checked and added atomically by a script, so `MAXLEN` never has
//! anything to cut), and a replayed entry is deleted after `XACK`, so the length counts exactly
//! the batches still waiting. A full queue refuses the batch and the client is told.

use std::time::Duration;

use datastorage::{Credentials, RedisConfig};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use tokio::sync::Mutex;

use crate::db::Db;
use crate::event::AuditEvent;

/// How long connecting to Redis or one command may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// The consumer name replays run under. Fixed, so entries a previous run of the server read but
/// did not acknowledge are read again (as this consumer's pending entries) after a restart.
pub const CONSUMER: &str = "datastorage-replayer";

/// Entries read per replay round.
const REPLAY_BATCH: usize = 50;

/// Adds `ARGV[2]` unless the stream already holds `ARGV[1]` entries; returns the id or nil.
const ENQUEUE_SCRIPT: &str = r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'batch', ARGV[2])
";

/// Why a batch could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Redis could not be reached or answered with an error.
    #[error("dead-letter queue unavailable: {0}")]
    Unavailable(String),
    /// The stream already holds `dlq_max_len` batches.
    #[error("dead-letter queue full ({0} batches waiting)")]
    Full(u64),
}

impl DlqError {
    /// What a client may be told: the kind of failure, never Redis's own words.
    pub fn summary(&self) -> String {
        match self {
            DlqError::Unavailable(_) => "the dead-letter queue is unavailable".into(),
            full @ DlqError::Full(_) => full.to_string(),
        }
    }
}

impl From<redis::RedisError> for DlqError {
    fn from(e: redis::RedisError) -> Self {
        DlqError::Unavailable(e.to_string())
    }
}

/// What one replay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Batches committed and acknowledged.
    pub batches: usize,
    /// Events in them.
    pub events: usize,
    /// Entries skipped because they are not a batch of events (left pending).
    pub corrupt: usize,
}

/// The stream holding audit batches PostgreSQL could not take. The current service fixes its
/// names in code (no config key since `dlqStreamName` was retired), so this server does too.
pub const STREAM: &str = "audit:dlq:events";
/// The consumer group that replays [`STREAM`] into PostgreSQL.
pub const GROUP: &str = "audit-dlq-replay";

/// The dead-letter queue in Redis.
pub struct Dlq {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    stream: String,
    group: String,
    max_len: u64,
    script: redis::Script,
}

impl Dlq {
    /// A queue for the configured stream; connects lazily, so Redis need not be up yet.
    pub fn new(cfg: &RedisConfig, credentials: &Credentials) -> Result<Self, crate::Error> {
        let auth = if credentials.redis_password.is_empty() {
            String::new()
        } else {
            format!(":{}@", percent_encode(&credentials.redis_password))
        };
        let url = format!("redis://{auth}{}/0", cfg.addr);
        // The URL carries the password: only the address goes into an error.
        let client = redis::Client::open(url)
            .map_err(|e| crate::Error::Unsupported(format!("redis.addr `{}`: {:?}", cfg.addr, e.kind())))?;
        Ok(Self {
            client,
            conn: Mutex::new(None),
            stream: STREAM.to_string(),
            group: GROUP.to_string(),
            max_len: cfg.dlq_max_len,
            script: redis::Script::new(ENQUEUE_SCRIPT),
        })
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The cached connection, or a new one when there is none or the last one failed.
    async fn connection(&self) -> Result<MultiplexedConnection, DlqError> {
        let mut cached = self.conn.lock().await;
        if let Some(conn) = cached.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `op` on a connection; on failure the connection is dropped so the next call makes a new one.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, DlqError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match op(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
                {
                    *self.conn.lock().await = None;
                }
                Err(e.into())
            }
        }
    }

    /// Whether Redis answers `PING`.
    pub async fn ping(&self) -> Result<(), DlqError> {
        self.with_conn(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }

    /// How many batches wait to be replayed.
    pub async fn waiting(&self) -> Result<u64, DlqError> {
        let stream = self.stream.clone();
        self.with_conn(|mut c| async move { c.xlen(stream).await }).await
    }

    /// Queues a batch; returns the stream entry id.
    pub async fn enqueue(&self, events: &[AuditEvent]) -> Result<String, DlqError> {
        let payload = serde_json::to_string(events).expect("audit events serialise to JSON");
        let (stream, max_len) = (self.stream.clone(), self.max_len);
        let script = self.script.clone();
        let id: Option<String> = self
            .with_conn(|mut c| async move {
                script.key(stream).arg(max_len).arg(payload).invoke_async(&mut c).await
            })
            .await?;
        id.ok_or(DlqError::Full(self.max_len))
    }

    async fn ensure_group(&self) -> Result<(), DlqError> {
        let (stream, group) = (self.stream.clone(), self.group.clone());
        let created = self
            .with_conn(
                |mut c| async move { c.xgroup_create_mkstream::<_, _, _, ()>(stream, group, "0").await },
            )
            .await;
        match created {
            Err(DlqError::Unavailable(e)) if e.contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn read(&self, from: &str) -> Result<Vec<StreamId>, DlqError> {
        let (stream, group, from) = (self.stream.clone(), self.group.clone(), from.to_string());
        let reply: StreamReadReply = self
            .with_conn(|mut c| async move {
                let opts = StreamReadOptions::default().group(group, CONSUMER).count(REPLAY_BATCH);
                c.xread_options(&[stream], &[from], &opts).await
            })
            .await?;
        Ok(reply.keys.into_iter().flat_map(|k| k.ids).collect())
    }

    /// Replays waiting batches into PostgreSQL until the queue is empty or a write fails.
    ///
    /// Entries this consumer already read but did not acknowledge (a crash or a failed write)
    /// come first, then new ones. Each batch is committed, then acknowledged and deleted; the
    /// insert skips events already stored, so a batch replayed twice is stored once. An entry
    /// that is not a batch is logged and left pending for a person to inspect, never deleted.
    pub async fn replay(&self, db: &Db) -> Result<Replayed, ReplayError> {
        let mut done = Replayed::default();
        if self.waiting().await? == 0 {
            return Ok(done);
        }
        self.ensure_group().await?;
        // Pending entries are read from just after the last one handled, so a corrupt entry
        // left pending does not stop the ones behind it.
        let mut after = "0".to_string();
        loop {
            let mut entries = self.read(&after).await?;
            if entries.is_empty() {
                entries = self.read(">").await?;
            }
            if entries.is_empty() {
                return Ok(done);
            }
            for entry in entries {
                after = entry.id.clone();
                let batch = entry.get::<String>("batch");
                let events: Vec<AuditEvent> = match batch.as_deref().map(serde_json::from_str) {
                    Some(Ok(events)) => events,
                    other => {
                        let reason = match other {
                            Some(Err(e)) => e.to_string(),
                            _ => "no `batch` field".to_string(),
                        };
                        tracing::error!(stream = %self.stream, id = %entry.id, %reason, "dead-letter entry is not a batch of audit events; left pending");
                        done.corrupt += 1;
                        continue;
                    }
                };
                db.insert(&events).await.map_err(ReplayError::Database)?;
                let (stream, group, id) = (self.stream.clone(), self.group.clone(), entry.id.clone());
                self.with_conn(|mut c| async move {
                    redis::pipe()
                        .atomic()
                        .xack(&stream, &group, &[&id])
                        .xdel(&stream, &[&id])
                        .query_async::<()>(&mut c)
                        .await
                })
                .await?;
                done.batches += 1;
                done.events += events.len();
            }
        }
    }
}

/// Why a replay round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] DlqError),
    /// PostgreSQL did not take the batch; it stays queued.
    #[error("replaying into the database: {0}")]
    Database(crate::db::DbError),
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a URL's userinfo.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_a_password_inside_the_userinfo() {
        assert_eq!(super::percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(super::percent_encode("p@ss:w/rd%"), "p%40ss%3Aw%2Frd%25");
    }
}
