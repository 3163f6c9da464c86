//! Throttled backfills (issue 19): a job runs inside the proxy, updating a
//! table in key-range batches on a connection of its own, paced so that the
//! other clients' latency on the table stays near its level before the job
//! (DESIGN section 6). The console, the HTTP API and `ddlguard backfill`
//! share this one engine.

mod conn;
pub mod error;
pub mod job;
mod runner;
pub mod settings;
pub mod signals;
pub mod sql;
pub mod store;
pub mod throttle;

pub use error::BackfillError;
pub use job::{Action, BackfillRequest, Job, JobState};
pub use settings::{BackfillSettings, Percent};

use crate::catalog::ServiceLogin;
use crate::net::upstream::Upstream;
use crate::usage::store::StoreSpec;
use crate::usage::{now_ms, UsageRegistry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use store::JobStore;
use tokio::sync::{watch, OnceCell};
use tracing::{info, warn};

/// The pause before the next attempt to open or read the job store grows
/// by this much per attempt.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// What a runner is told between batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Run,
    /// Stop; RESUME starts a new runner.
    Pause,
    /// Stop for good.
    Cancel,
    /// The proxy stops: leave the job as it is (running jobs resume at
    /// the next start).
    Stop,
}

/// One job and its control channel.
pub struct Cell {
    job: Mutex<Job>,
    /// What the runner obeys.
    pub control: watch::Sender<Control>,
    running: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cell {
    fn new(job: Job) -> Arc<Cell> {
        Arc::new(Cell {
            job: Mutex::new(job),
            control: watch::channel(Control::Run).0,
            running: Mutex::new(None),
        })
    }

    /// The job, locked.
    pub fn lock(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_runner(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }
}

/// Where jobs connect and how far they may go; replaced on reload (jobs
/// started before keep what they started with).
#[derive(Clone)]
pub struct Context {
    /// The upstream.
    pub upstream: Arc<Upstream>,
    /// `[upstream] user`: jobs run as the service login.
    pub login: Option<ServiceLogin>,
    /// `[backfill]`.
    pub settings: BackfillSettings,
}

/// The engine: every job of this proxy, the store, and the runtime the
/// runners run on (the proxy's, whichever front end asks).
pub struct Backfills {
    runtime: tokio::runtime::Handle,
    ctx: RwLock<Context>,
    usage: Arc<UsageRegistry>,
    store_spec: StoreSpec,
    store: OnceCell<Arc<JobStore>>,
    jobs: Mutex<BTreeMap<u64, Arc<Cell>>>,
    /// This proxy's listen address: the owner of the jobs it starts.
    owner: String,
    /// True once the stored jobs are loaded (or loading failed).
    loaded: watch::Sender<bool>,
}

impl Backfills {
    /// An engine on the current tokio runtime; nothing runs until
    /// [`Backfills::start`] or a request.
    pub fn new(
        ctx: Context,
        usage: Arc<UsageRegistry>,
        store_spec: StoreSpec,
        owner: String,
    ) -> Arc<Backfills> {
        Arc::new(Backfills {
            runtime: tokio::runtime::Handle::current(),
            ctx: RwLock::new(ctx),
            usage,
            store_spec,
            store: OnceCell::new(),
            jobs: Mutex::new(BTreeMap::new()),
            owner,
            loaded: watch::channel(false).0,
        })
    }

    /// Applies reloaded settings to jobs started from now on.
    pub fn configure(&self, ctx: Context) {
        match self.ctx.write() {
            Ok(mut c) => *c = ctx,
            Err(p) => *p.into_inner() = ctx,
        }
    }

    fn context(&self) -> Context {
        match self.ctx.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Cell>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store, opened on first use (a store that cannot be opened
    /// leaves jobs in memory, and the log says so).
    async fn store(&self) -> Arc<JobStore> {
        self.store
            .get_or_init(|| async {
                // A store left locked by a crashed process can make an open
                // wait: each attempt is bounded, a few are made. And a new
                // SQLite file that the usage store sets up at the same moment
                // answers "database is locked" at once (SQLite skips the busy
                // timeout where waiting could deadlock): the next attempt
                // comes after a pause, when that setup is over.
                let mut last = String::new();
                for attempt in 1..=3 {
                    let open = JobStore::open(&self.store_spec);
                    match tokio::time::timeout(std::time::Duration::from_secs(10), open).await {
                        Ok(Ok(s)) => return Arc::new(s),
                        Ok(Err(e)) => last = e.to_string(),
                        Err(_) => last = "opening the store took longer than 10 s".into(),
                    }
                    warn!(attempt, "cannot open the backfill job store: {last}");
                    if attempt < 3 {
                        tokio::time::sleep(RETRY_PAUSE * attempt).await;
                    }
                }
                warn!("backfill jobs kept in memory only: {last}");
                Arc::new(JobStore::Memory(std::sync::atomic::AtomicU64::new(1)))
            })
            .await
            .clone()
    }

    /// Loads the stored jobs and resumes this proxy's running ones from
    /// their last committed key.
    pub async fn start(self: Arc<Self>) {
        self.load().await;
        self.loaded.send_replace(true);
    }

    /// Waits (at most 5 s) until the stored jobs are loaded, so a request
    /// right after a restart sees them.
    pub async fn ready(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            rx.wait_for(|loaded| *loaded),
        )
        .await;
    }

    async fn load(self: &Arc<Self>) {
        let store = self.store().await;
        let mut jobs = None;
        // Bounded like the open: a read that waits on a store a crashed
        // process left busy is tried again.
        for attempt in 1..=3 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), store.load()).await {
                Ok(Ok(found)) => {
                    jobs = Some(found);
                    break;
                }
                Ok(Err(e)) => warn!(attempt, "cannot read stored backfill jobs: {e}"),
                Err(_) => warn!(
                    attempt,
                    "reading stored backfill jobs took longer than 10 s"
                ),
            }
            if attempt < 3 {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
        }
        let Some(jobs) = jobs else {
            warn!("stored backfill jobs not loaded; running jobs of this proxy do not resume");
            return;
        };
        let (mut mine, mut resumed) = (0, 0);
        for job in jobs {
            if job.owner != self.owner {
                continue;
            }
            mine += 1;
            resumed += usize::from(job.state == JobState::Running);
            let (id, running) = (job.id, job.state == JobState::Running);
            let cell = Cell::new(job);
            self.jobs().insert(id, cell.clone());
            if running {
                info!(job = id, "resuming backfill after a restart");
                self.spawn_runner(&cell);
            }
        }
        info!(jobs = mine, resumed, "backfill jobs loaded from the store");
    }

    /// Tells every runner to stop after its batch (the proxy shuts down);
    /// running jobs stay `running` in the store.
    pub fn stop(&self) {
        for cell in self.jobs().values() {
            if *cell.control.borrow() == Control::Run {
                cell.control.send_replace(Control::Stop);
            }
        }
    }

    fn spawn_runner(self: &Arc<Self>, cell: &Arc<Cell>) {
        cell.control.send_replace(Control::Run);
        let runner = runner::Runner {
            cell: cell.clone(),
            ctx: self.context(),
            usage: self.usage.clone(),
            store: match self.store.get() {
                Some(s) => s.clone(),
                None => Arc::new(JobStore::Memory(std::sync::atomic::AtomicU64::new(1))),
            },
        };
        let handle = self.runtime.spawn(runner.run());
        *cell.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Every job, by id.
    pub fn list(&self) -> Vec<Job> {
        self.jobs().values().map(|c| c.lock().clone()).collect()
    }

    /// One job.
    pub fn get(&self, id: u64) -> Result<Job, BackfillError> {
        self.jobs()
            .get(&id)
            .map(|c| c.lock().clone())
            .ok_or(BackfillError::NoJob(id))
    }

    /// Checks a request against the table and starts the job (on the
    /// proxy's runtime, whichever runtime calls).
    pub async fn create(self: &Arc<Self>, req: BackfillRequest) -> Result<Job, BackfillError> {
        let me = self.clone();
        self.runtime
            .spawn(async move { me.create_here(req).await })
            .await
            .map_err(|_| BackfillError::Stopped)?
    }

    async fn create_here(self: Arc<Self>, req: BackfillRequest) -> Result<Job, BackfillError> {
        self.ready().await;
        let ctx = self.context();
        let login = ctx.login.clone().ok_or_else(|| {
            BackfillError::Upstream("no service login configured for backfills".into())
        })?;
        if req.table.trim().is_empty() {
            return Err(BackfillError::Invalid {
                message: "which table? the backfill names none".into(),
                hint: "ddlguard backfill users --set \"email_lower = lower(email)\"".into(),
            });
        }
        if let Some(rate) = req.max_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(BackfillError::Invalid {
                    message: format!("invalid max rate {rate}"),
                    hint: "--max-rate takes rows per second above 0, e.g. --max-rate 5000".into(),
                });
            }
        }
        if req.batch == Some(0) {
            return Err(BackfillError::Invalid {
                message: "a batch of 0 rows".into(),
                hint: "--batch takes rows per batch, at least 1".into(),
            });
        }
        let parsed = sql::parse(&req.set, req.where_clause.as_deref(), req.allow_subquery)?;
        let database = match &req.database {
            Some(d) if !d.is_empty() => d.clone(),
            _ => self.database_of(&req.table)?,
        };
        let client =
            conn::connect(&ctx.upstream, &login, &database, "ddlguard backfill check").await?;
        let info = conn::inspect(&client, &req.table, req.key.as_deref()).await?;
        for t in &parsed.targets {
            if !info.columns.contains(t) {
                return Err(BackfillError::Missing {
                    code: "42703",
                    message: format!(
                        "column {t:?} of {}.{} does not exist",
                        info.schema, info.table
                    ),
                });
            }
            if *t == info.key {
                return Err(BackfillError::Unsafe {
                    message: format!("the backfill assigns the key column {t} it walks by"),
                    hint: "walk another unique key with --key, or change the key with a migration"
                        .into(),
                });
            }
        }
        // The statement the first batch runs, planned (not run) now: a bad
        // expression or filter is refused before a job exists.
        let shape = sql::BatchShape {
            schema: &info.schema,
            table: &info.table,
            key: &info.key,
            key_type: &info.key_type,
            set_sql: &parsed.set_sql,
            where_sql: &parsed.where_sql,
        };
        // (The first batch's form: it has no key parameter to fold.)
        let explain = format!("EXPLAIN {}", sql::batch_sql(&shape, true, 1));
        client
            .query(explain.as_str(), &[])
            .await
            .map_err(|e| match BackfillError::server(&e) {
                BackfillError::Server { code, message } => BackfillError::Server {
                    code,
                    message: format!(
                        "the backfill's statement is refused by Postgres: {}",
                        runner::redact(&message)
                    ),
                },
                other => other,
            })?;
        let settings = &ctx.settings;
        let mut latency = signals::TableLatency::new(self.usage.clone(), &info.schema, &info.table);
        let now = now_ms();
        let max_batch = req.batch.unwrap_or(settings.batch_size).max(1) as u64;
        let mut job = Job {
            id: 0,
            database,
            schema: info.schema,
            table: info.table,
            key: info.key,
            key_type: info.key_type,
            set: parsed.set_sql,
            where_clause: parsed.where_sql,
            max_batch,
            max_rate: req.max_rate.unwrap_or(0.0),
            state: JobState::Running,
            rows_done: 0,
            rows_scanned: 0,
            rows_estimated: info.rows_estimated,
            current_key: None,
            rate: 0.0,
            eta_seconds: None,
            batch_size: (max_batch / 4).max(1),
            pause_ms: 0,
            throttle_reason: throttle::Reason::Calm.describe(),
            baseline_p95_ms: latency.baseline_p95_us(now).map(|us| us as f64 / 1000.0),
            traffic_p95_ms: None,
            error: None,
            created_ms: now,
            updated_ms: now,
            owner: self.owner.clone(),
        };
        let store = self.store().await;
        job.id = store
            .insert(&job)
            .await
            .map_err(|e| BackfillError::Upstream(format!("cannot store the job: {e}")))?;
        info!(job = job.id, table = %job.qualified_table(), key = %job.key, "backfill created");
        let cell = Cell::new(job.clone());
        self.jobs().insert(job.id, cell.clone());
        self.spawn_runner(&cell);
        Ok(job)
    }

    /// The one database where clients used `table`, from the usage seen.
    fn database_of(&self, table: &str) -> Result<String, BackfillError> {
        let name = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
        let shapes: BTreeSet<u64> = self
            .usage
            .shapes()
            .into_iter()
            .filter(|(_, a)| a.relations.iter().any(|r| r.relation.name == name))
            .map(|(fp, _)| fp)
            .collect();
        let databases: BTreeSet<String> = self
            .usage
            .statements()
            .into_iter()
            .filter(|r| shapes.contains(&r.fingerprint_id))
            .map(|r| r.client.database)
            .collect();
        let mut it = databases.iter();
        match (it.next(), it.next()) {
            (Some(db), None) => Ok(db.clone()),
            (None, _) => Err(BackfillError::Invalid {
                message: format!(
                    "no client used {table} through this proxy yet, so its database is unknown"
                ),
                hint: "name it: --database D (console: DATABASE d; API: \"database\")".into(),
            }),
            (Some(_), Some(_)) => Err(BackfillError::Invalid {
                message: format!(
                    "{table} was used in several databases ({})",
                    databases.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                hint: "name one: --database D (console: DATABASE d; API: \"database\")".into(),
            }),
        }
    }

    /// Pauses, resumes or cancels a job; answers the job as it is after.
    pub async fn act(self: &Arc<Self>, id: u64, action: Action) -> Result<Job, BackfillError> {
        self.ready().await;
        let cell = self
            .jobs()
            .get(&id)
            .cloned()
            .ok_or(BackfillError::NoJob(id))?;
        let job = {
            let mut job = cell.lock();
            job.state = action.apply(id, job.state)?;
            if action == Action::Resume {
                job.error = None;
                job.throttle_reason = throttle::Reason::Calm.describe();
            }
            job.updated_ms = now_ms();
            job.clone()
        };
        info!(
            job = id,
            action = action.as_str(),
            "backfill {}",
            job.state.as_str()
        );
        match action {
            Action::Pause => {
                cell.control.send_replace(Control::Pause);
            }
            Action::Cancel => {
                cell.control.send_replace(Control::Cancel);
            }
            Action::Resume => {
                let me = self.clone();
                let cell = cell.clone();
                // A runner still finishing its last batch is waited for:
                // two runners never walk one job.
                self.runtime
                    .spawn(async move {
                        let old = cell
                            .running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .take();
                        if let Some(old) = old {
                            let _ = old.await;
                        }
                        if cell.lock().state == JobState::Running {
                            me.spawn_runner(&cell);
                        }
                    })
                    .await
                    .map_err(|_| BackfillError::Stopped)?;
            }
        }
        if !cell.has_runner() || action == Action::Resume {
            let store = self.store().await;
            if let Err(e) = store.update(&job).await {
                warn!(job = id, "backfill state not stored: {e}");
            }
        }
        let after = cell.lock().clone();
        Ok(after)
    }
}
