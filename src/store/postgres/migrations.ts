/**
 * Versioned schema for the PostgreSQL store.
 *
 * Why it is built this way:
 * - Same tables and columns as the SQLite store's schema (v1 to v3: runs with budget/cost and
 *   fairness/concurrency columns, steps, events, workflow_versions, workers, model_calls,
 *   model_cache, service buckets and slots), so the two stores are one design with two SQL
 *   dialects. PostgreSQL v1 is SQLite v1+v2+v3 at once: no PostgreSQL store predates them.
 * - Epoch-ms times are BIGINT; stored JSON stays TEXT, because the engine passes serialised JSON
 *   and splices it into other JSON (an output into an event), which JSONB would re-format.
 * - `runs.last_seq` numbers each run's events: an append does
 *   `UPDATE runs SET last_seq = last_seq + n RETURNING last_seq`, which allocates gap-free seqs
 *   and serialises concurrent appends to one run on its row lock (MAX(seq) + 1 would race
 *   between two workers). `runs.ord` breaks created_at ties for queued runs (SQLite's rowid).
 * - Migrations run at open, in one transaction guarded by `pg_advisory_xact_lock`, so several
 *   workers starting at once migrate once; a database from a newer Baton is refused untouched.
 *   Each applied version also leaves a `migrated_<v>` row (a plain INSERT: applying a version
 *   twice would fail loudly rather than pass silently).
 */
import pg from 'pg';
import { BatonError } from '../../errors.js';

export const PG_MIGRATIONS: string[] = [
  // 1: everything SQLite's v1..v3 has, plus runs.last_seq / runs.ord
  `
  CREATE TABLE workflow_versions (
    version_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    seq INTEGER NOT NULL,
    document TEXT NOT NULL,
    source TEXT,
    created_at BIGINT NOT NULL,
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
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    budget DOUBLE PRECISION,
    cost_spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_reserved DOUBLE PRECISION NOT NULL DEFAULT 0,
    namespace TEXT NOT NULL DEFAULT 'default',
    priority INTEGER NOT NULL DEFAULT 0,
    concurrency_key TEXT,
    concurrency_limit INTEGER,
    last_seq BIGINT NOT NULL DEFAULT 0,
    ord BIGINT GENERATED ALWAYS AS IDENTITY
  );
  CREATE INDEX runs_status ON runs (status, created_at);
  CREATE INDEX runs_created ON runs (created_at);
  CREATE INDEX runs_workflow ON runs (workflow, created_at);
  CREATE INDEX runs_concurrency ON runs (concurrency_key, status, created_at) WHERE concurrency_key IS NOT NULL;
  CREATE TABLE steps (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step_id TEXT NOT NULL,
    idx INTEGER,
    parent_key TEXT,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    due_at BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    pending_deps INTEGER NOT NULL DEFAULT 0,
    live_deps INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    error TEXT,
    state TEXT,
    wait_key TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    namespace TEXT NOT NULL DEFAULT 'default',
    priority INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
  );
  CREATE INDEX steps_ready ON steps (due_at) WHERE status = 'scheduled' AND owner IS NULL;
  CREATE INDEX steps_timeouts ON steps (due_at) WHERE status = 'waiting' AND due_at > 0 AND owner IS NULL;
  -- Each namespace's best ready steps in claim order (run_id, key break ties deterministically).
  CREATE INDEX steps_fair ON steps (namespace, priority DESC, due_at, run_id, key) WHERE status = 'scheduled' AND owner IS NULL;
  -- No index on owner (as in SQLite): it would cost an index write per claim; only releasing a
  -- dead or stopping worker's claims looks steps up by owner.
  CREATE INDEX steps_wait ON steps (wait_key) WHERE wait_key IS NOT NULL;
  CREATE INDEX steps_children ON steps (run_id, parent_key, idx) WHERE parent_key IS NOT NULL;
  CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    step_key TEXT,
    at BIGINT NOT NULL,
    data TEXT,
    PRIMARY KEY (run_id, seq)
  );
  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL
  );
  CREATE TABLE model_calls (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
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
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    latency_ms BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
  );
  CREATE INDEX model_calls_service ON model_calls (service, at);
  CREATE INDEX model_calls_workflow ON model_calls (workflow, at);
  CREATE TABLE model_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE TABLE service_buckets (
    name TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE TABLE service_slots (
    name TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (name, holder)
  );
  `,
  // 2: gateway API keys (hashed), runs listed by namespace
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    namespaces TEXT NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX runs_namespace ON runs (namespace, created_at);
  `,
  // 3: cron schedules: one row per schedule trigger of a workflow's latest version
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
    next_fire_at BIGINT,
    last_fired_at BIGINT,
    last_run_id TEXT,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    last_error TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE INDEX schedules_workflow ON schedules (workflow);
  CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;
  `,
  // 4: external tasks (`task` steps), leased to workers that poll for them
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
    lease_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at BIGINT,
    available_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  -- What a poll looks at: pending tasks by availability, leased ones by expiry, per type.
  CREATE INDEX tasks_pending ON tasks (type, available_at) WHERE status = 'pending';
  CREATE INDEX tasks_leased ON tasks (type, lease_expires_at) WHERE status = 'leased';
  CREATE INDEX tasks_run ON tasks (run_id, step_key);
  `,
  // 5: event inbox (events nobody waited for, kept for a lookback) and outbox (emitted CloudEvents)
  `
  CREATE TABLE event_inbox (
    seq BIGSERIAL PRIMARY KEY,
    wait_key TEXT NOT NULL,
    event_id TEXT,
    payload TEXT NOT NULL,
    arrived_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT,
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
    created_at BIGINT NOT NULL,
    dispatched_at BIGINT
  );
  CREATE INDEX event_outbox_pending ON event_outbox (created_at) WHERE dispatched_at IS NULL;
  `,
  // 6: how many times a run was retried (a worker's cached view of an earlier life is stale)
  `
  ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
  `,
  // 7: human approvals (`approval` steps), decided by people through the API or the CLI
  `
  CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_key TEXT NOT NULL,
    step_attempt INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    approvers TEXT NOT NULL,
    evidence TEXT NOT NULL,
    evidence_hash TEXT NOT NULL,
    summary TEXT,
    form TEXT NOT NULL,
    deadline_at BIGINT,
    on_expiry TEXT,
    reminders TEXT,
    next_reminder_at BIGINT,
    notify TEXT,
    decided_by TEXT,
    decided_at BIGINT,
    answer TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE INDEX approvals_open ON approvals (namespace, created_at) WHERE status IN ('pending', 'escalated');
  CREATE INDEX approvals_run ON approvals (run_id, step_key);
  `,
  // 8: replay runs: the run each replays (engine/replay.ts)
  `
  ALTER TABLE runs ADD COLUMN replay_of TEXT;
  `,
  // 9: the run's trace context (W3C traceparent of its run span, then the caller's span id): see observability/telemetry.ts
  `
  ALTER TABLE runs ADD COLUMN trace TEXT;
  `,
  // 10: governance — pinned AI configuration per run, workflow stages, service status history, lineage index
  `
  -- Content-addressed snapshots of the services a run depends on (no credentials, only their env names).
  CREATE TABLE service_configs (
    hash TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );
  ALTER TABLE runs ADD COLUMN config_hash TEXT;
  CREATE INDEX runs_version ON runs (version_id, created_at);
  -- Promotions of versions through stages (append-only: the latest row per name and stage holds it).
  CREATE TABLE workflow_stages (
    seq BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version_id TEXT NOT NULL,
    promoted_by TEXT,
    reason TEXT,
    at BIGINT NOT NULL
  );
  CREATE INDEX workflow_stages_name ON workflow_stages (name, stage, seq);
  -- Governance status changes of services (append-only: the latest row per service wins over the config file).
  CREATE TABLE service_status (
    seq BIGSERIAL PRIMARY KEY,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    changed_by TEXT,
    at BIGINT NOT NULL
  );
  CREATE INDEX service_status_service ON service_status (service, seq);
  -- Lineage: which runs called service X (version Y).
  CREATE INDEX model_calls_lineage ON model_calls (service, version, at);
  `,
  // 11: audit: hash-chained events (computed in the statement that allocates seqs), the anchor chain, purged runs
  `
  ALTER TABLE events ADD COLUMN hash TEXT;
  -- The run's chain head, and (scratch) the head before the statement's append, which the
  -- statement's RETURNING needs to hash its events (UPDATE ... RETURNING sees only new values).
  ALTER TABLE runs ADD COLUMN last_hash TEXT;
  ALTER TABLE runs ADD COLUMN chain_base TEXT;
  -- The event chain link of store/audit-chain.ts: hashes of events base+1.. after prev.
  CREATE FUNCTION baton_chain(prev TEXT, run_id TEXT, base BIGINT, contents TEXT[]) RETURNS TEXT[]
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
  DECLARE
    h TEXT := COALESCE(prev, '');
    out TEXT[] := '{}';
  BEGIN
    FOR i IN 1 .. COALESCE(cardinality(contents), 0) LOOP
      h := encode(sha256(convert_to(h || '|' || run_id || '|' || (base + i)::text || '|' || contents[i], 'UTF8')), 'hex');
      out := out || h;
    END LOOP;
    RETURN out;
  END
  $fn$;
  CREATE TABLE audit_anchors (
    seq BIGINT PRIMARY KEY,
    run_id TEXT NOT NULL,
    run_final_hash TEXT NOT NULL,
    prev_anchor_hash TEXT NOT NULL,
    anchor_hash TEXT NOT NULL,
    at BIGINT NOT NULL
  );
  -- The anchor chain's head. Its row lock serialises appends cluster-wide; held to COMMIT,
  -- so run ends are anchored in batches by a sweep (anchorPending), not each in its own
  -- transaction: one lock and one commit per batch instead of per run.
  CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
  );
  -- Set by the statement that ends a run, cleared by the sweep that anchors it.
  ALTER TABLE runs ADD COLUMN anchor_pending BOOLEAN NOT NULL DEFAULT FALSE;
  CREATE INDEX runs_anchor_pending ON runs (finished_at) WHERE anchor_pending;
  INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
  CREATE TABLE audit_purged (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    final_hash TEXT,
    purged_at BIGINT NOT NULL,
    mode TEXT NOT NULL,
    archive TEXT
  );
  CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
  `,
  // 12: a task's most hand-outs (its step's retry.max_attempts), so the store neither hands out
  // a task whose last lease expired nor needs a poll to notice it (TaskQueue's sweep fails it)
  `
  ALTER TABLE tasks ADD COLUMN max_attempts INTEGER;
  CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE status = 'leased';
  `,
  // 13: a buffered event's namespace (an emit's event is taken by waits of its run's namespace only; NULL: any)
  `
  ALTER TABLE event_inbox ADD COLUMN namespace TEXT;
  `,
  // 14: how many emits passed on the event that started a run (its emits count on from there: a loop is cut)
  `
  ALTER TABLE runs ADD COLUMN event_hops INTEGER;
  `,
  // 15: tasks stored without max_attempts (before 12, or by an older Baton still running during
  // an upgrade) get their step's, by the rule written out at SQLite's migration that does the same.
  `
  UPDATE tasks t SET max_attempts = COALESCE(
           (x.step -> 'retry' ->> 'max_attempts')::int,
           CASE WHEN x.step ? 'retry' OR (x.doc -> 'defaults') ? 'retry'
                THEN COALESCE((x.doc -> 'defaults' -> 'retry' ->> 'max_attempts')::int, 1)
                ELSE 3 END)
    FROM (SELECT o.id, d.doc, CASE WHEN strpos(o.step_key, '[') > 0 THEN s.value -> 'step' ELSE s.value END AS step
            FROM tasks o
            JOIN runs r ON r.id = o.run_id
            JOIN workflow_versions v ON v.version_id = r.version_id
            CROSS JOIN LATERAL (SELECT v.document::jsonb AS doc) d
            CROSS JOIN LATERAL jsonb_array_elements(d.doc -> 'steps') s
           WHERE o.max_attempts IS NULL AND o.status IN ('pending', 'leased')
             AND s.value ->> 'id' = split_part(o.step_key, '[', 1)) x
   WHERE t.id = x.id;
  `,
  // 16: an event id is unique within the namespace it was sent to (NULL: every namespace, a scope
  // of its own), not across them: one team's id neither hid another team's event nor told it the
  // id was taken.
  `
  ALTER TABLE event_inbox DROP CONSTRAINT event_inbox_wait_key_event_id_key;
  CREATE UNIQUE INDEX event_inbox_event ON event_inbox (wait_key, event_id, COALESCE(namespace, ''));
  `,
];

/** Arbitrary constant key of the advisory lock that serialises migrations of one database. */
const MIGRATION_LOCK = 0x62a70e01;

export interface MigrateResult {
  /** Schema version found. */
  from: number;
  /** Schema version now. */
  to: number;
}

/**
 * Applies pending migrations on `client` (not inside a transaction) under the advisory lock.
 * Throws BATON_STORE_SCHEMA_NEWER, changing nothing, if the database is ahead of this code.
 */
export async function applyMigrations(client: pg.ClientBase, location: string): Promise<MigrateResult> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS baton_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = (await client.query<{ value: string }>(`SELECT value FROM baton_meta WHERE key = 'schema_version'`)).rows[0];
    const from = row ? Number(row.value) : 0;
    if (from > PG_MIGRATIONS.length) {
      throw new BatonError('BATON_STORE_SCHEMA_NEWER', { path: location, found: from, supported: PG_MIGRATIONS.length });
    }
    for (let v = from; v < PG_MIGRATIONS.length; v++) {
      await client.query(PG_MIGRATIONS[v]);
      await client.query(`INSERT INTO baton_meta (key, value) VALUES ('migrated_' || $1, $2)`, [String(v + 1), String(Date.now())]);
    }
    if (from < PG_MIGRATIONS.length) {
      await client.query(
        `INSERT INTO baton_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(PG_MIGRATIONS.length)],
      );
    }
    await client.query('COMMIT');
    return { from, to: PG_MIGRATIONS.length };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/**
 * `baton migrate`: brings the database at `url` up to this code's schema (workers also do it
 * when they open the store). Retries a database that is away like the store does.
 */
export async function migrate(url: string, opts: { retryForMs?: number } = {}): Promise<MigrateResult> {
  const { PostgresStore } = await import('./postgres-store.js');
  const store = await PostgresStore.open(url, { poolSize: 1, retryForMs: opts.retryForMs, applicationName: 'baton migrate' });
  try {
    return store.migrated;
  } finally {
    await store.close();
  }
}
