/**
 * Versioned schema for the SQLite store. Each entry runs once, in order, inside a
 * transaction; `meta.schema_version` records how far a database has come. A database from a
 * newer Baton (higher version) is refused rather than touched.
 */
export const SQLITE_MIGRATIONS: string[] = [
  // 1: the initial schema
  `
  CREATE TABLE workflow_versions (
    version_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    seq INTEGER NOT NULL,
    document TEXT NOT NULL,
    source TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (name, seq)
  );
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    version_id TEXT NOT NULL REFERENCES workflow_versions(version_id),
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    error TEXT,
    parent_run_id TEXT,
    parent_step_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE INDEX runs_status ON runs (status, created_at);
  CREATE INDEX runs_created ON runs (created_at);
  CREATE INDEX runs_workflow ON runs (workflow, created_at);
  CREATE TABLE steps (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step_id TEXT NOT NULL,
    idx INTEGER,
    parent_key TEXT,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    due_at INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    pending_deps INTEGER NOT NULL DEFAULT 0,
    live_deps INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    error TEXT,
    state TEXT,
    wait_key TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX steps_ready ON steps (due_at) WHERE status = 'scheduled' AND owner IS NULL;
  CREATE INDEX steps_timeouts ON steps (due_at) WHERE status = 'waiting' AND due_at > 0 AND owner IS NULL;
  -- No index on owner: it would cost a page write per step; only reclaiming a dead worker's
  -- claims looks steps up by owner, and that is rare.
  CREATE INDEX steps_wait ON steps (wait_key) WHERE wait_key IS NOT NULL;
  CREATE INDEX steps_children ON steps (run_id, parent_key, idx) WHERE parent_key IS NOT NULL;
  -- Clustered by run: a step's events land on its run's page (one page write, no index).
  -- seq is per run, 1, 2, 3... in order; it is the event id the API and CLI show.
  CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    step_key TEXT,
    at INTEGER NOT NULL,
    data TEXT,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
  );
  `,
  // 2: model calls, cost and budgets, the response cache
  `
  ALTER TABLE runs ADD COLUMN budget REAL;
  ALTER TABLE runs ADD COLUMN cost_spent REAL NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN cost_reserved REAL NOT NULL DEFAULT 0;
  -- One row per model call, beside its event (same run_id, seq): the event is the history,
  -- this row is what cost reports aggregate without parsing JSON.
  CREATE TABLE model_calls (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    step_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    service TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    operation TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  CREATE INDEX model_calls_service ON model_calls (service, at);
  CREATE INDEX model_calls_workflow ON model_calls (workflow, at);
  CREATE TABLE model_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 3: fairness (namespace, priority), concurrency keys, shared service limits
  `
  ALTER TABLE runs ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
  ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
  ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER;
  CREATE INDEX runs_concurrency ON runs (concurrency_key, status, created_at) WHERE concurrency_key IS NOT NULL;
  -- Copied from the run so that a claim finds each namespace's best ready steps by index.
  ALTER TABLE steps ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
  ALTER TABLE steps ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX steps_fair ON steps (namespace, priority DESC, due_at) WHERE status = 'scheduled' AND owner IS NULL;
  CREATE TABLE service_buckets (
    name TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE service_slots (
    name TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (name, holder)
  ) WITHOUT ROWID;
  `,
  // 4: gateway API keys (hashed), runs listed by namespace
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    namespaces TEXT NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX runs_namespace ON runs (namespace, created_at);
  `,
  // 5: cron schedules: one row per schedule trigger of a workflow's latest version
  `
  CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    namespace TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    missed TEXT NOT NULL,
    max_catch_up INTEGER NOT NULL,
    next_fire_at INTEGER,
    last_fired_at INTEGER,
    last_run_id TEXT,
    paused INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX schedules_workflow ON schedules (workflow);
  CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;
  `,
  // 6: external tasks (`task` steps), leased to workers that poll for them
  `
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_key TEXT NOT NULL,
    step_attempt INTEGER NOT NULL,
    type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    input TEXT NOT NULL,
    -- pending | leased | completed | failed
    status TEXT NOT NULL,
    lease_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at INTEGER,
    available_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  -- What a poll looks at: pending tasks by availability, leased ones by expiry, per type.
  CREATE INDEX tasks_pending ON tasks (type, available_at) WHERE status = 'pending';
  CREATE INDEX tasks_leased ON tasks (type, lease_expires_at) WHERE status = 'leased';
  CREATE INDEX tasks_run ON tasks (run_id, step_key);
  `,
  // 7: event inbox (events nobody waited for, kept for a lookback) and outbox (emitted CloudEvents)
  `
  CREATE TABLE event_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wait_key TEXT NOT NULL,
    event_id TEXT,
    payload TEXT NOT NULL,
    arrived_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER,
    consumed_by TEXT,
    UNIQUE (wait_key, event_id)
  );
  CREATE INDEX event_inbox_open ON event_inbox (wait_key, arrived_at) WHERE consumed_at IS NULL;
  CREATE INDEX event_inbox_expiry ON event_inbox (expires_at);
  -- CloudEvents recorded by emit steps' commits, dispatched after (and again after a crash).
  CREATE TABLE event_outbox (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dispatched_at INTEGER
  );
  CREATE INDEX event_outbox_pending ON event_outbox (created_at) WHERE dispatched_at IS NULL;
  `,
  // 8: how many times a run was retried (a worker's cached view of an earlier life is stale)
  `
  ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
  `,
  // 9: human approvals (`approval` steps), decided by people through the API or the CLI
  `
  CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_key TEXT NOT NULL,
    step_attempt INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    workflow TEXT NOT NULL,
    -- pending | approved | rejected | expired | escalated
    status TEXT NOT NULL,
    approvers TEXT NOT NULL,
    evidence TEXT NOT NULL,
    evidence_hash TEXT NOT NULL,
    summary TEXT,
    form TEXT NOT NULL,
    deadline_at INTEGER,
    on_expiry TEXT,
    reminders TEXT,
    next_reminder_at INTEGER,
    notify TEXT,
    decided_by TEXT,
    decided_at INTEGER,
    answer TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX approvals_open ON approvals (namespace, created_at) WHERE status IN ('pending', 'escalated');
  CREATE INDEX approvals_run ON approvals (run_id, step_key);
  `,
  // 10: replay runs: the run each replays (engine/replay.ts)
  `
  ALTER TABLE runs ADD COLUMN replay_of TEXT;
  `,
  // 11: the run's trace context (W3C traceparent of its run span, then the caller's span id): see observability/telemetry.ts
  `
  ALTER TABLE runs ADD COLUMN trace TEXT;
  `,
  // 12: governance — pinned AI configuration per run, workflow stages, service status history, lineage index
  `
  -- Content-addressed snapshots of the services a run depends on (no credentials, only their env names).
  CREATE TABLE service_configs (
    hash TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  ALTER TABLE runs ADD COLUMN config_hash TEXT;
  CREATE INDEX runs_version ON runs (version_id, created_at);
  -- Promotions of versions through stages (append-only: the latest row per name and stage holds it).
  CREATE TABLE workflow_stages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version_id TEXT NOT NULL,
    promoted_by TEXT,
    reason TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX workflow_stages_name ON workflow_stages (name, stage, seq);
  -- Governance status changes of services (append-only: the latest row per service wins over the config file).
  CREATE TABLE service_status (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    changed_by TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX service_status_service ON service_status (service, seq);
  -- Lineage: which runs called service X (version Y).
  CREATE INDEX model_calls_lineage ON model_calls (service, version, at);
  `,
  // 13: audit: hash-chained events, the store-wide anchor chain, runs purged by retention
  `
  ALTER TABLE events ADD COLUMN hash TEXT;
  -- One row per run end: the run's last event hash, chained store-wide (see store/audit-chain.ts).
  CREATE TABLE audit_anchors (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    run_final_hash TEXT NOT NULL,
    prev_anchor_hash TEXT NOT NULL,
    anchor_hash TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  -- Runs removed by a retention policy: their anchors stay, so verification still passes.
  CREATE TABLE audit_purged (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    final_hash TEXT,
    purged_at INTEGER NOT NULL,
    mode TEXT NOT NULL,
    archive TEXT
  );
  CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
  `,
  // 14: a task's most hand-outs (its step's retry.max_attempts), so the store neither hands out
  // a task whose last lease expired nor needs a poll to notice it (TaskQueue's sweep fails it)
  `
  ALTER TABLE tasks ADD COLUMN max_attempts INTEGER;
  CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE status = 'leased';
  `,
  // 15: a buffered event's namespace (an emit's event is taken by waits of its run's namespace only; NULL: any)
  `
  ALTER TABLE event_inbox ADD COLUMN namespace TEXT;
  `,
  // 16: how many emits passed on the event that started a run (its emits count on from there: a loop is cut)
  `
  ALTER TABLE runs ADD COLUMN event_hops INTEGER;
  `,
  // 17: tasks stored without max_attempts (before 14, or by an older Baton still running during
  // an upgrade) get their step's, so that they too are not handed out again after their last
  // lease and their step fails when it runs out. The value is the one spec/compile.ts gives the
  // step of the run's version: its retry.max_attempts; else, when the step or the workflow's
  // defaults have a retry, defaults.retry.max_attempts or 1; else the task kind's 3. A map
  // item's task (key "id[i]") is the map's sub-step. Only live tasks: an ended one is never
  // handed out again. A task whose run is gone keeps NULL (TaskQueue judges it after a poll).
  `
  UPDATE tasks SET max_attempts = (
    SELECT COALESCE(
             json_extract(s.value, x.at || '.retry.max_attempts'),
             CASE WHEN json_type(s.value, x.at || '.retry') IS NOT NULL OR json_type(v.document, '$.defaults.retry') IS NOT NULL
                  THEN COALESCE(json_extract(v.document, '$.defaults.retry.max_attempts'), 1)
                  ELSE 3 END)
      FROM runs r
      JOIN workflow_versions v ON v.version_id = r.version_id
      JOIN (SELECT CASE WHEN instr(tasks.step_key, '[') > 0 THEN '$.step' ELSE '$' END AS at,
                   CASE WHEN instr(tasks.step_key, '[') > 0 THEN substr(tasks.step_key, 1, instr(tasks.step_key, '[') - 1) ELSE tasks.step_key END AS id) x
      JOIN json_each(v.document, '$.steps') s ON json_extract(s.value, '$.id') = x.id
     WHERE r.id = tasks.run_id)
  WHERE max_attempts IS NULL AND status IN ('pending', 'leased');
  `,
  // 18: an event id is unique within the namespace it was sent to (NULL: every namespace, a scope
  // of its own), not across them: one team's id neither hid another team's event nor told it the
  // id was taken. SQLite drops a table's UNIQUE constraint only by building the table anew
  // (https://www.sqlite.org/lang_altertable.html#otheralter): its columns are those of 7 and 15.
  `
  CREATE TABLE event_inbox_18 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wait_key TEXT NOT NULL,
    event_id TEXT,
    payload TEXT NOT NULL,
    arrived_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER,
    consumed_by TEXT,
    namespace TEXT
  );
  INSERT INTO event_inbox_18 (seq, wait_key, event_id, payload, arrived_at, expires_at, consumed_at, consumed_by, namespace)
    SELECT seq, wait_key, event_id, payload, arrived_at, expires_at, consumed_at, consumed_by, namespace FROM event_inbox;
  DROP TABLE event_inbox;
  ALTER TABLE event_inbox_18 RENAME TO event_inbox;
  CREATE INDEX event_inbox_open ON event_inbox (wait_key, arrived_at) WHERE consumed_at IS NULL;
  CREATE INDEX event_inbox_expiry ON event_inbox (expires_at);
  CREATE UNIQUE INDEX event_inbox_event ON event_inbox (wait_key, event_id, COALESCE(namespace, ''));
  `,
];
