/**
 * The cluster store: PostgreSQL through a `pg.Pool`, for several workers on several hosts.
 *
 * Why it is built this way:
 * - Same semantics as the SQLite store, statement for statement where possible; what SQLite
 *   gets from its single writer, this store gets from row locks. Every step commit first locks
 *   its run's row (`SELECT ... FOR UPDATE` inside the first statement), so commits of one run
 *   are serialised (a join is scheduled exactly once; the "is the run idle?" probe sees every
 *   other commit of the run) while commits of different runs run in parallel. Lock order is
 *   always run row, then step rows, which keeps deadlocks out of the common paths; the rare
 *   one PostgreSQL detects is retried with the whole transaction.
 * - Round trips are what a commit costs here, so statements are folded with data-modifying
 *   CTEs: the run lock, the fenced step update, the events (seqs allocated from
 *   `runs.last_seq`) and the dependents' countdown are one statement. A plain step success is
 *   BEGIN + 1 statement + COMMIT (+ 1 idle probe when it scheduled nothing); single-statement
 *   writes (admitRun, markStarted, claims, recordModelCall) run without BEGIN at all.
 * - Claims use `FOR UPDATE SKIP LOCKED`: concurrent workers never claim one step twice and
 *   never wait for each other. Namespaces take turns (a recursive CTE walks the namespaces by
 *   index, a LATERAL takes each one's best steps) exactly as SQLite's claim does.
 * - Writes that make an unowned step claimable call `pg_notify('baton_work', '')` in their
 *   transaction; `listen` turns those into wake-ups so idle workers need not poll.
 * - The database may go away (restart, failover, network): every method retries
 *   connection-level failures with exponential backoff and jitter for `retryForMs`, then throws
 *   BATON_STORE_BUSY. A step commit whose COMMIT was sent but not acknowledged is retried too;
 *   its fence then fails, so the retry checks whether the step already is where the commit
 *   wanted it and, if so, answers `ok` with the successors the first attempt claimed.
 */
import pg from 'pg';
import { BatonError } from '../../errors.js';
import type { RunStatus, StepStatus } from '../../engine/states.js';
import type {
  ApiKeyRecord, ClaimedStep, LineageQuery, LineageRecord, ServiceStatusRecord, StageRecord, CommitResult, CostLine, CostQuery, DeliveryResult, EventDelivery, EventRecord, OutboxRecord, Fence, FinishRun, ModelCallRecord, NewEvent, NewRun, RetryRun, RunFilter,
  ApprovalChange, ApprovalFilter, ApprovalOpResult, ApprovalRecord, NewSchedule, RunRecord, SchedulePatch, ScheduleRecord, StepCommit, StepRecord, Store, TaskFinish, TaskLease, TaskOpResult, TaskPoll, TaskRecord, VersionRecord, WorkerInfo,
} from '../store.js';
import { applyMigrations, type MigrateResult } from './migrations.js';
import { anchorHash, chainHashes, eventContentHash, eventDataText, type AnchorRecord, type AuditEventRow, type PurgedRunRecord } from '../audit-chain.js';
import { approvalChangeValues, checkApproval, checkLease, parseJsonColumn, toApproval, schedulePatchSql, toAnchor, toApiKey, toAuditEvent, toPurged, toEvent, toLineage, toRun, toSchedule, toServiceStatus, toStage, toStep, toTask, toVersion, LATEST_VERSIONS, type Row } from '../rows.js';

type Q = pg.PoolClient;

const statementNames = new Map<string, string>();

/**
 * The client with every parameterised statement prepared: PostgreSQL parses and plans each
 * distinct statement once per connection instead of on every call. The commit statements are
 * CTE chains whose planning otherwise costs more than running them; their text depends only
 * on the commit's shape (how many events, countdowns...), so few distinct statements exist.
 */
function preparing(client: Q): Q {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver) as unknown;
      return (text: unknown, values?: unknown[]) => {
        if (typeof text !== 'string' || !values || values.length === 0) return target.query(text as string, values);
        let name = statementNames.get(text);
        if (!name) {
          name = `b${statementNames.size.toString(36)}`;
          if (statementNames.size < 10_000) statementNames.set(text, name);
          else return target.query(text, values);
        }
        return target.query({ name, text, values });
      };
    },
  });
}

export interface PostgresStoreOptions {
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** How long to keep retrying a database that is away before BATON_STORE_BUSY. Default 60 000 ms. */
  retryForMs?: number;
  /** Shown in `pg_stat_activity`. Default `baton`. */
  applicationName?: string;
  /**
   * Fault injection for tests: called after a step commit's COMMIT succeeded, before it is
   * acknowledged to the caller; throwing a connection error there is a lost acknowledgement.
   */
  afterCommitHook?: () => void | Promise<void>;
}

const ACTIVE_RUN = `('running', 'waiting', 'pending')`;
const NOT_FINISHED = `('completed', 'failed', 'cancelled')`;
const CHANNEL = 'baton_work';
/** SQL: the task's step still waits for it (not timed out, cancelled or finished). */
const TASK_AWAITED = `EXISTS (SELECT 1 FROM steps s WHERE s.run_id = t.run_id AND s.key = t.step_key AND s.status = 'waiting' AND s.wait_key = 'task:' || t.id)`;
/** SQL: the approval's step still waits for it (not cancelled or finished). */
const APPROVAL_AWAITED = `EXISTS (SELECT 1 FROM steps s WHERE s.run_id = a.run_id AND s.key = a.step_key AND s.status = 'waiting' AND s.wait_key = 'approval:' || a.id)`;

/** int8 and numeric as JS numbers (ms times, counts, sums), for this pool only. */
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 || oid === 1700 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Per-transaction context handed to the body of `run`. */
interface Attempt {
  /** An earlier attempt of this write sent COMMIT and lost the connection before the answer. */
  maybeCommitted: boolean;
  /** Send `pg_notify('baton_work', '')` with the COMMIT. */
  notify: boolean;
}

/** Builds `$n` placeholders. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

function eventArrays(events: NewEvent[]): [string[], Array<string | null>, number[], Array<string | null>] {
  return [
    events.map((e) => e.type),
    events.map((e) => e.stepKey ?? null),
    events.map((e) => e.at),
    events.map((e) => e.dataJson ?? (e.data === undefined ? null : JSON.stringify(e.data))),
  ];
}

/**
 * `INSERT INTO events` numbering `events` from `baseExpr` + 1, for each row of `fromSql`, with
 * the hashes in the text[] `hashesExpr` (by default `r.hashes`, from `chainSql`'s RETURNING).
 */
function eventsInsert(p: Params, runIdExpr: string, baseExpr: string, fromSql: string, events: NewEvent[], hashesExpr = 'r.hashes'): string {
  const [types, keys, ats, datas] = eventArrays(events);
  return `INSERT INTO events (run_id, seq, type, step_key, at, data, hash)
    SELECT ${runIdExpr}, ${baseExpr} + t.n, t.type, t.step_key, t.at, t.data, (${hashesExpr})[t.n]
    FROM ${fromSql}, unnest(${p.add(types)}::text[], ${p.add(keys)}::text[], ${p.add(ats)}::bigint[], ${p.add(datas)}::text[])
      WITH ORDINALITY AS t(type, step_key, at, data, n)`;
}

/**
 * The hash chain of `events` (store/audit-chain.ts), for the UPDATE of runs that allocates their
 * seqs: `set` moves `last_hash` on (SET reads the old row: old last_hash and last_seq) and keeps
 * the old head in `chain_base`; `ret` (RETURNING sees the new row) gives the events' hashes.
 * The content hashes are computed here; the links by `baton_chain` in the same statement.
 */
function chainSql(p: Params, events: NewEvent[]): { set: string; ret: string } {
  const chs = `${p.add(events.map((e) => eventContentHash(e.type, e.stepKey, e.at, eventDataText(e))))}::text[]`;
  const n = events.length;
  return {
    set: `chain_base = runs.last_hash, last_hash = COALESCE((baton_chain(runs.last_hash, runs.id, runs.last_seq, ${chs}))[${n}], runs.last_hash)`,
    ret: `baton_chain(runs.chain_base, runs.id, runs.last_seq - ${n}, ${chs}) AS hashes`,
  };
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly location: string;
  /** What opening did to the schema. */
  migrated: MigrateResult = { from: 0, to: 0 };
  private readonly pool: pg.Pool;
  private readonly retryForMs: number;
  private readonly config: pg.ClientConfig;
  private readonly listeners = new Set<() => Promise<void>>();
  private closed = false;

  private constructor(location: string, config: pg.ClientConfig, private readonly opts: PostgresStoreOptions) {
    this.location = location;
    this.config = config;
    this.retryForMs = opts.retryForMs ?? 60_000;
    this.pool = new pg.Pool({ ...config, max: opts.poolSize ?? 10 });
    // An idle client whose connection dies emits here; the pool drops it and the next use reconnects.
    this.pool.on('error', () => undefined);
    // A checked-out client whose connection dies emits too; the failure reaches the caller
    // through its pending query, and `run` retries on a new connection.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const location = maskUrl(url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new BatonError('BATON_STORE_OPEN', { path: location, detail: 'not a valid URL: expected postgres://user[:password]@host[:port]/database' });
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
      throw new BatonError('BATON_STORE_OPEN', { path: location, detail: `unsupported scheme "${parsed.protocol}": expected postgres://user[:password]@host[:port]/database` });
    }
    if (!parsed.hostname && !parsed.searchParams.get('host')) {
      throw new BatonError('BATON_STORE_OPEN', { path: location, detail: 'the URL names no host: expected postgres://user[:password]@host[:port]/database' });
    }
    const config: pg.ClientConfig = {
      connectionString: url,
      application_name: opts.applicationName ?? 'baton',
      types: TYPES,
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    };
    const store = new PostgresStore(location, config, opts);
    try {
      store.migrated = await store.run((c) => applyMigrations(c, location), { tx: false });
    } catch (e) {
      await store.pool.end().catch(() => undefined);
      throw openError(e, location, parsed);
    }
    return store;
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * Runs `fn` on one pooled client, in `BEGIN ... COMMIT` unless `tx: false` (a single
   * statement is its own transaction). Connection-level failures are retried with backoff for
   * `retryForMs`; deadlocks and serialisation failures are retried a few times.
   */
  private async run<T>(fn: (c: Q, a: Attempt) => Promise<T>, o: { tx?: boolean; commitHook?: boolean } = {}): Promise<T> {
    const tx = o.tx !== false;
    const deadline = Date.now() + this.retryForMs;
    const attempt: Attempt = { maybeCommitted: false, notify: false };
    let delay = 25;
    let conflicts = 0;
    for (;;) {
      if (this.closed) throw new Error(`The store at ${this.location} is closed`);
      attempt.notify = false;
      let client: Q | undefined;
      let commitSent = false;
      try {
        client = await this.pool.connect();
        if (tx) await client.query('BEGIN');
        const out = await fn(preparing(client), attempt);
        if (tx) {
          commitSent = true;
          await client.query(attempt.notify ? `SELECT pg_notify('${CHANNEL}', ''); COMMIT` : 'COMMIT');
          if (o.commitHook && this.opts.afterCommitHook) await this.opts.afterCommitHook();
        }
        client.release();
        return out;
      } catch (e) {
        if (isConnectionError(e)) {
          client?.release(true);
          if (commitSent) attempt.maybeCommitted = true;
          const left = deadline - Date.now();
          if (left <= 0) {
            throw new BatonError('BATON_STORE_BUSY', { path: this.location, detail: `database unreachable for ${this.retryForMs} ms; last error: ${describe(e)}` }, { cause: e });
          }
          const wait = Math.min(left, delay / 2 + Math.random() * delay);
          delay = Math.min(delay * 2, 2000);
          await sleep(wait);
          continue;
        }
        if (client) {
          if (tx) await client.query('ROLLBACK').catch(() => undefined);
          client.release();
        }
        const code = (e as { code?: string }).code;
        if ((code === '40P01' || code === '40001') && conflicts++ < 10) {
          await sleep(Math.random() * 20);
          continue;
        }
        throw e;
      }
    }
  }

  /** Retries `fn` on connection-level failures like `run`, without a pooled client. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    let delay = 25;
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (!isConnectionError(e)) throw e;
        const left = deadline - Date.now();
        if (left <= 0) throw new BatonError('BATON_STORE_BUSY', { path: this.location, detail: `database unreachable for ${this.retryForMs} ms; last error: ${describe(e)}` }, { cause: e });
        await sleep(Math.min(left, delay / 2 + Math.random() * delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** One read statement, retried like every other call. */
  private async rows<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.run(async (c) => (await c.query<R>(sql, params)).rows, { tx: false });
  }

  // ---------------------------------------------------------------- versions

  async putVersion(v: Omit<VersionRecord, 'seq' | 'createdAt'>, check?: (latest: VersionRecord[]) => void): Promise<VersionRecord> {
    return this.run(async (c) => {
      // Checked inserts take one store-wide lock (always before a name's), held to the commit:
      // what `check` reads cannot change before this insert is visible to the next one.
      if (check) await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:checked-versions', 0))`);
      await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:version:' || $1, 0))`, [v.name]);
      const existing = (await c.query('SELECT * FROM workflow_versions WHERE version_id = $1', [v.versionId])).rows[0];
      if (existing) {
        if (existing.hash !== v.hash) throw new BatonError('BATON_VERSION_CONFLICT', { versionId: v.versionId });
        return toVersion(existing);
      }
      check?.((await c.query(LATEST_VERSIONS)).rows.map(toVersion));
      const r = await c.query(
        `INSERT INTO workflow_versions (version_id, name, hash, seq, document, source, created_at)
         SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6 FROM workflow_versions WHERE name = $2 RETURNING *`,
        [v.versionId, v.name, v.hash, v.document, v.source ?? null, Date.now()],
      );
      return toVersion(r.rows[0]);
    });
  }

  async getVersion(versionId: string): Promise<VersionRecord | undefined> {
    const r = (await this.rows('SELECT * FROM workflow_versions WHERE version_id = $1', [versionId]))[0];
    return r && toVersion(r);
  }

  async latestVersion(name: string): Promise<VersionRecord | undefined> {
    const r = (await this.rows('SELECT * FROM workflow_versions WHERE name = $1 ORDER BY seq DESC LIMIT 1', [name]))[0];
    return r && toVersion(r);
  }

  async latestVersions(): Promise<VersionRecord[]> {
    return (await this.rows(LATEST_VERSIONS)).map(toVersion);
  }

  async listVersions(name?: string): Promise<VersionRecord[]> {
    const rows = name
      ? await this.rows('SELECT * FROM workflow_versions WHERE name = $1 ORDER BY seq', [name])
      : await this.rows('SELECT * FROM workflow_versions ORDER BY name, seq');
    return rows.map(toVersion);
  }

  // ---------------------------------------------------------------- runs

  async admitRun(run: NewRun): Promise<{ created: boolean; queued?: boolean }> {
    // Without a concurrency key, admission is one statement (no BEGIN/COMMIT round trips).
    const r = await this.run((c) => this.insertRun(c, run, true), { tx: run.concurrency !== undefined });
    return r.queued ? { created: true, queued: true } : { created: r.created };
  }

  /**
   * Inserts the run, its steps and events in one statement. With a concurrency key, the key's
   * advisory lock (held to the end of the transaction) makes "how many are active" exact.
   */
  private async insertRun(c: Q, run: NewRun, notifyInline: boolean): Promise<{ created: boolean; queued?: boolean; unowned?: boolean }> {
    const p = new Params();
    const id = `${p.add(run.id)}::text`;
    let status = `'running'`;
    if (run.concurrency) {
      await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:ck:' || $1, 0))`, [run.concurrency.key]);
      status = `CASE WHEN (SELECT COUNT(*) FROM runs WHERE concurrency_key = ${p.add(run.concurrency.key)} AND status IN ('running', 'waiting', 'paused', 'pending'))
                  >= ${p.add(run.concurrency.limit)} THEN 'queued' ELSE 'running' END`;
    }
    const s = run.steps;
    const hashes = chainHashes('', run.id, 0, run.events);
    const sql = `WITH r AS (
        INSERT INTO runs (id, version_id, workflow, status, input, parent_run_id, parent_step_key, created_at, updated_at, budget,
          namespace, priority, concurrency_key, concurrency_limit, last_seq, replay_of, trace, config_hash, last_hash, event_hops)
        VALUES (${id}, ${p.add(run.versionId)}, ${p.add(run.workflow)}, ${status}, ${p.add(run.inputJson)}, ${p.add(run.parentRunId ?? null)},
          ${p.add(run.parentStepKey ?? null)}, ${p.add(run.createdAt)}, ${p.add(run.createdAt)}, ${p.add(run.budget ?? null)},
          ${p.add(run.namespace ?? 'default')}, ${p.add(run.priority ?? 0)}, ${p.add(run.concurrency?.key ?? null)},
          ${p.add(run.concurrency?.limit ?? null)}, ${p.add(run.events.length)}, ${p.add(run.replayOf ?? null)}, ${p.add(run.trace ?? null)}, ${p.add(run.configHash ?? null)}, ${p.add(hashes.at(-1) ?? null)}, ${p.add(run.eventHops ?? null)})
        ON CONFLICT (id) DO NOTHING
        RETURNING id, status, namespace, priority),
      s AS (
        INSERT INTO steps (run_id, key, step_id, idx, parent_key, status, due_at, owner, pending_deps, state, namespace, priority)
        SELECT r.id, t.key, t.step_id, t.idx, t.parent_key, t.status, t.due_at, CASE WHEN r.status = 'queued' THEN NULL ELSE t.owner END,
          t.pending_deps, t.state, r.namespace, r.priority
        FROM r, unnest(${p.add(s.map((x) => x.key))}::text[], ${p.add(s.map((x) => x.stepId))}::text[], ${p.add(s.map((x) => x.index ?? null))}::int[],
          ${p.add(s.map((x) => x.parentKey ?? null))}::text[], ${p.add(s.map((x) => x.status))}::text[], ${p.add(s.map((x) => x.dueAt ?? 0))}::bigint[],
          ${p.add(s.map((x) => x.owner ?? null))}::text[], ${p.add(s.map((x) => x.pendingDeps))}::int[],
          ${p.add(s.map((x) => (x.state === undefined ? null : JSON.stringify(x.state))))}::text[])
          AS t(key, step_id, idx, parent_key, status, due_at, owner, pending_deps, state)
        RETURNING status, owner),
      e AS (${eventsInsert(p, 'r.id', '0', 'r', run.events, `${p.add(hashes)}::text[]`)}),
      nt AS (SELECT pg_notify('${CHANNEL}', '') FROM r WHERE ${notifyInline ? 'TRUE' : 'FALSE'} AND r.status = 'running'
               AND EXISTS (SELECT 1 FROM s WHERE s.status = 'scheduled' AND s.owner IS NULL))
      SELECT r.status, (SELECT COUNT(*) FROM nt) AS notified,
        EXISTS (SELECT 1 FROM s WHERE s.status = 'scheduled' AND s.owner IS NULL) AS unowned
      FROM r`;
    const row = (await c.query(sql, p.values)).rows[0] as { status: string; unowned: boolean } | undefined;
    if (!row) return { created: false };
    if (row.status === 'queued') return { created: true, queued: true };
    return { created: true, unowned: row.unowned };
  }

  /**
   * After a run with a concurrency key ended (in this transaction): starts the oldest queued
   * runs with that key while fewer than its limit are active. Returns how many started.
   */
  private async promoteQueued(c: Q, runId: string, key: string, limit: number, now: number): Promise<number> {
    await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:ck:' || $1, 0))`, [key]);
    const r = await c.query(
      `WITH q AS (
         SELECT id FROM runs WHERE concurrency_key = $1 AND status = 'queued' ORDER BY created_at, ord
         LIMIT GREATEST(0, $2::int - (SELECT COUNT(*) FROM runs WHERE concurrency_key = $1 AND status IN ('running', 'waiting', 'paused', 'pending')))
         FOR UPDATE),
       u AS (UPDATE runs SET status = 'running', updated_at = $3, last_seq = last_seq + 1,
               last_hash = (baton_chain(runs.last_hash, runs.id, runs.last_seq, ARRAY[$5::text]))[1]
             FROM q WHERE runs.id = q.id AND runs.status = 'queued'
             RETURNING runs.id, runs.last_seq, runs.last_hash),
       e AS (INSERT INTO events (run_id, seq, type, step_key, at, data, hash) SELECT id, last_seq, 'run.dequeued', NULL, $3, $4, last_hash FROM u)
       SELECT COUNT(*) AS n FROM u`,
      [key, limit, now, JSON.stringify({ after: runId }), eventContentHash('run.dequeued', null, now, JSON.stringify({ after: runId }))],
    );
    return r.rows[0].n as number;
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const r = (await this.rows('SELECT * FROM runs WHERE id = $1', [runId]))[0];
    return r && toRun(r);
  }

  async listRuns(f: RunFilter = {}): Promise<RunRecord[]> {
    const p = new Params();
    const where: string[] = [];
    if (f.status?.length) where.push(`status = ANY(${p.add(f.status)}::text[])`);
    if (f.workflow) where.push(`workflow = ${p.add(f.workflow)}`);
    if (f.before !== undefined && f.beforeId !== undefined) {
      const at = p.add(f.before);
      where.push(`(created_at < ${at} OR (created_at = ${at} AND id < ${p.add(f.beforeId)}))`);
    } else if (f.before !== undefined) where.push(`created_at < ${p.add(f.before)}`);
    if (f.finishedBefore !== undefined) where.push(`finished_at IS NOT NULL AND finished_at < ${p.add(f.finishedBefore)}`);
    if (f.namespaces && !f.namespaces.includes('*')) where.push(`namespace = ANY(${p.add(f.namespaces)}::text[])`);
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ${p.add(f.limit ?? 50)}`;
    return (await this.rows(sql, p.values)).map(toRun);
  }

  async getSteps(runId: string): Promise<StepRecord[]> {
    return (await this.rows('SELECT * FROM steps WHERE run_id = $1 ORDER BY parent_key IS NOT NULL, parent_key, idx, key', [runId])).map(toStep);
  }

  async getStep(runId: string, key: string): Promise<StepRecord | undefined> {
    const r = (await this.rows('SELECT * FROM steps WHERE run_id = $1 AND key = $2', [runId, key]))[0];
    return r && toStep(r);
  }

  async getOutputs(runId: string, keys?: string[]): Promise<Map<string, unknown>> {
    const rows = keys
      ? await this.rows<{ key: string; output: string | null }>('SELECT key, output FROM steps WHERE run_id = $1 AND key = ANY($2::text[])', [runId, keys])
      : await this.rows<{ key: string; output: string | null }>('SELECT key, output FROM steps WHERE run_id = $1 AND output IS NOT NULL', [runId]);
    const byKey = new Map(rows.map((r) => [r.key, r.output]));
    const out = new Map<string, unknown>();
    for (const k of keys ?? rows.map((r) => r.key)) {
      const v = byKey.get(k);
      if (v !== null && v !== undefined) out.set(k, JSON.parse(v));
    }
    return out;
  }

  async getEvents(runId: string, afterId = 0): Promise<EventRecord[]> {
    return (await this.rows('SELECT * FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq', [runId, afterId])).map(toEvent);
  }

  async appendEvents(runId: string, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.run((c) => this.insertEvents(c, runId, events), { tx: false });
  }

  /** Appends at the run's next seqs (allocated from runs.last_seq, which serialises appenders). */
  private async insertEvents(c: Q, runId: string, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    const p = new Params();
    const id = `${p.add(runId)}::text`;
    const n = `${p.add(events.length)}::int`;
    const ch = chainSql(p, events);
    await c.query(
      `WITH r AS (UPDATE runs SET last_seq = last_seq + ${n}, ${ch.set} WHERE id = ${id} RETURNING last_seq - ${n} AS base, ${ch.ret})
       ${eventsInsert(p, id, 'r.base', 'r', events)}`,
      p.values,
    );
  }

  // ---------------------------------------------------------------- run control

  async setRunStatus(runId: string, from: RunStatus[], to: RunStatus, events: NewEvent[]): Promise<boolean> {
    return this.run(async (c) => {
      const p = new Params();
      const id = `${p.add(runId)}::text`;
      const n = `${p.add(events.length)}::int`;
      const ch = chainSql(p, events);
      const r = await c.query(
        `WITH r AS (UPDATE runs SET status = ${p.add(to)}, updated_at = ${p.add(Date.now())}, last_seq = last_seq + ${n}, ${ch.set}
                    WHERE id = ${id} AND status = ANY(${p.add(from)}::text[]) RETURNING last_seq - ${n} AS base, ${ch.ret}),
         e AS (${eventsInsert(p, id, 'r.base', 'r', events)}),
         nt AS (SELECT pg_notify('${CHANNEL}', '') FROM r WHERE ${to === 'running' ? 'TRUE' : 'FALSE'})
         SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM nt) AS notified FROM r`,
        p.values,
      );
      return (r.rows[0].n as number) === 1;
    }, { tx: false });
  }

  async cancelRun(runId: string, events: NewEvent[]): Promise<boolean> {
    return this.run(async (c, a) => {
      const now = Date.now();
      const ended = await this.endRun(c, runId, 'cancelled', null, null, events, now, true, true);
      if (!ended) return false;
      if (ended.key && (await this.promoteQueued(c, runId, ended.key, ended.limit ?? 1, now)) > 0) a.notify = true;
      return true;
    });
  }

  finishRun(f: FinishRun): Promise<boolean> {
    return this.run((c, a) => this.finishTx(c, a, f));
  }

  private async finishTx(c: Q, a: Attempt, f: FinishRun): Promise<boolean> {
    const now = Date.now();
    const ended = await this.endRun(c, f.runId, f.status, f.outputJson ?? null, f.error ? JSON.stringify(f.error) : null, f.events, now, f.status === 'failed', true);
    if (!ended) return false;
    if (f.parent && (await this.wake(c, f.parent.runId, f.parent.key, f.parent.state, f.parent.events, now))) a.notify = true;
    if (ended.key && (await this.promoteQueued(c, f.runId, ended.key, ended.limit ?? 1, now)) > 0) a.notify = true;
    return true;
  }

  /** Records a run's end (and cancels its active steps) in one statement; undefined if it had ended. */
  private async endRun(
    c: Q, runId: string, status: string, output: string | null, error: string | null, events: NewEvent[], now: number, cancelSteps: boolean, onlyIfActive: boolean,
  ): Promise<{ key: string | null; limit: number | null } | undefined> {
    const p = new Params();
    const id = `${p.add(runId)}::text`;
    const n = `${p.add(events.length)}::int`;
    const nowP = `${p.add(now)}::bigint`;
    const ch = chainSql(p, events);
    const r = await c.query(
      `WITH r AS (UPDATE runs SET status = ${p.add(status)}, output = ${p.add(output)}, error = ${p.add(error)}, updated_at = ${nowP}, finished_at = ${nowP},
                    last_seq = last_seq + ${n}, ${ch.set}, anchor_pending = TRUE
                  WHERE id = ${id} ${onlyIfActive ? `AND status NOT IN ${NOT_FINISHED}` : ''}
                  RETURNING last_seq - ${n} AS base, concurrency_key, concurrency_limit, ${ch.ret}),
       c AS (UPDATE steps SET status = 'cancelled', owner = NULL, wait_key = NULL, finished_at = ${nowP}
             WHERE run_id = ${id} AND ${cancelSteps ? 'TRUE' : 'FALSE'} AND status IN ('pending', 'scheduled', 'running', 'waiting') AND EXISTS (SELECT 1 FROM r)),
       e AS (${eventsInsert(p, id, 'r.base', 'r', events)})
       SELECT concurrency_key, concurrency_limit FROM r`,
      p.values,
    );
    const row = r.rows[0] as { concurrency_key: string | null; concurrency_limit: number | null } | undefined;
    return row && { key: row.concurrency_key, limit: row.concurrency_limit };
  }

  async retryRun(x: RetryRun): Promise<{ ok: boolean; status?: 'running' | 'queued' }> {
    return this.run(async (c, a) => {
      // Run row first (the lock order of every commit), then the concurrency key's lock as admission takes it.
      const r = (await c.query('SELECT status, finished_at, concurrency_key, concurrency_limit FROM runs WHERE id = $1 FOR UPDATE', [x.runId])).rows[0] as
        | { status: RunStatus; finished_at: number | null; concurrency_key: string | null; concurrency_limit: number | null } | undefined;
      // The plan was read outside this transaction: it holds only if the run is still as it saw it.
      if (!r || !x.from.includes(r.status) || (r.finished_at ?? undefined) !== x.finishedAt) return { ok: false };
      if (x.deleteChildrenOf.length) await c.query('DELETE FROM steps WHERE run_id = $1 AND parent_key = ANY($2::text[])', [x.runId, x.deleteChildrenOf]);
      if (x.reset.length) {
        const rs = x.reset;
        await c.query(
          `UPDATE steps s SET status = t.status, attempt = t.attempt, pending_deps = t.pending_deps, live_deps = t.live_deps,
             due_at = CASE WHEN t.status = 'scheduled' THEN $2::bigint ELSE 0 END, owner = NULL, output = NULL, error = NULL, state = t.state,
             wait_key = NULL, started_at = NULL, finished_at = NULL
           FROM unnest($3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::text[]) AS t(key, status, attempt, pending_deps, live_deps, state)
           WHERE s.run_id = $1 AND s.key = t.key`,
          [x.runId, x.at, rs.map((st) => st.key), rs.map((st) => st.status), rs.map((st) => st.attempt), rs.map((st) => st.pendingDeps), rs.map((st) => st.liveDeps),
            rs.map((st) => (st.state === null || st.state === undefined ? null : JSON.stringify(st.state)))],
        );
      }
      // Back in line behind its concurrency key like a new admission (this run, ended, is not counted).
      let status: 'running' | 'queued' = 'running';
      if (r.concurrency_key !== null) {
        await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:ck:' || $1, 0))`, [r.concurrency_key]);
        const n = (await c.query(`SELECT COUNT(*) AS n FROM runs WHERE concurrency_key = $1 AND status IN ('running', 'waiting', 'paused', 'pending')`, [r.concurrency_key])).rows[0].n as number;
        if (n >= (r.concurrency_limit ?? 1)) status = 'queued';
      }
      await c.query('UPDATE runs SET status = $2, output = NULL, error = NULL, finished_at = NULL, updated_at = $3, retries = retries + 1 WHERE id = $1', [x.runId, status, x.at]);
      await this.insertEvents(c, x.runId, x.events);
      if (status === 'running' && x.reset.some((st) => st.status === 'scheduled')) a.notify = true;
      return { ok: true, status };
    });
  }

  async idleRuns(limit: number): Promise<string[]> {
    return (await this.rows<{ id: string }>(
      `SELECT r.id FROM runs r WHERE r.status IN ('running', 'waiting')
       AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.status IN ('scheduled', 'running', 'waiting')) LIMIT $1`,
      [limit],
    )).map((r) => r.id);
  }

  // ---------------------------------------------------------------- workers and claims

  async registerWorker(w: WorkerInfo, leaseMs: number): Promise<void> {
    await this.rows(
      `INSERT INTO workers (id, pid, host, started_at, lease_until) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, lease_until = excluded.lease_until`,
      [w.id, w.pid, w.host, w.startedAt, Date.now() + leaseMs],
    );
  }

  async heartbeat(workerId: string, leaseMs: number): Promise<void> {
    await this.rows('UPDATE workers SET lease_until = $1 WHERE id = $2', [Date.now() + leaseMs, workerId]);
  }

  async unregisterWorker(workerId: string): Promise<void> {
    await this.releaseWorkers([workerId], [], 0);
  }

  async releaseDeadWorkers(now: number, isAlive: (w: WorkerInfo) => boolean | undefined): Promise<number> {
    const workers = await this.rows<{ id: string; pid: number; host: string; started_at: number; lease_until: number }>('SELECT * FROM workers');
    const gone: string[] = [];
    const expired: string[] = [];
    for (const w of workers) {
      // `isAlive` answers for workers it can see (the engine's: same host); others live by their lease.
      const alive = isAlive({ id: w.id, pid: w.pid, host: w.host, startedAt: w.started_at });
      if (alive === false) gone.push(w.id);
      else if (alive === undefined && w.lease_until <= now) expired.push(w.id);
    }
    if (gone.length === 0 && expired.length === 0) return 0;
    return this.releaseWorkers(gone, expired, now);
  }

  /**
   * Deletes workers `gone` and those of `expired` whose lease is still expired (re-checked in
   * the statement: a late heartbeat saves them), and frees their claims, in one statement.
   */
  private async releaseWorkers(gone: string[], expired: string[], now: number): Promise<number> {
    const r = await this.rows<{ n: number }>(
      `WITH d AS (DELETE FROM workers WHERE id = ANY($1::text[]) OR (id = ANY($2::text[]) AND lease_until <= $3) RETURNING id),
       u AS (UPDATE steps SET owner = NULL, status = CASE WHEN status = 'running' THEN 'scheduled' ELSE status END
             WHERE owner IN (SELECT id FROM d UNION ALL SELECT unnest($1::text[])) RETURNING 1),
       nt AS (SELECT pg_notify('${CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM u))
       SELECT (SELECT COUNT(*) FROM u) AS n, (SELECT COUNT(*) FROM nt) AS notified`,
      [gone, expired, now],
    );
    return r[0].n;
  }

  async claimSteps(workerId: string, limit: number, now: number): Promise<ClaimedStep[]> {
    if (limit <= 0) return [];
    // Each namespace's best ready steps (a recursive CTE finds the namespaces by index seeks),
    // locked with SKIP LOCKED, then ranked round robin; one statement claims them.
    const rows = await this.rows<{ run_id: string; key: string; attempt: number; state: string | null; rn: number; namespace: string; retries: number }>(
      `WITH RECURSIVE ns AS (
         (SELECT namespace FROM steps WHERE status = 'scheduled' AND owner IS NULL AND due_at <= $2 ORDER BY namespace LIMIT 1)
         UNION ALL
         SELECT (SELECT s.namespace FROM steps s WHERE s.status = 'scheduled' AND s.owner IS NULL AND s.due_at <= $2 AND s.namespace > ns.namespace
                 ORDER BY s.namespace LIMIT 1)
         FROM ns WHERE ns.namespace IS NOT NULL),
       cand AS (
         SELECT c.run_id, c.key, ns.namespace, c.rn FROM ns CROSS JOIN LATERAL (
           SELECT s.run_id, s.key, row_number() OVER () AS rn FROM (
             SELECT s.run_id, s.key FROM steps s JOIN runs r ON r.id = s.run_id
             WHERE s.namespace = ns.namespace AND s.status = 'scheduled' AND s.owner IS NULL AND s.due_at <= $2 AND r.status IN ${ACTIVE_RUN}
             ORDER BY s.priority DESC, s.due_at, s.run_id, s.key LIMIT $3
             FOR UPDATE OF s SKIP LOCKED) s) c
         WHERE ns.namespace IS NOT NULL
         ORDER BY c.rn, ns.namespace LIMIT $3)
       UPDATE steps s SET owner = $1 FROM cand WHERE s.run_id = cand.run_id AND s.key = cand.key
       RETURNING s.run_id, s.key, s.attempt, s.state, cand.rn, cand.namespace, (SELECT retries FROM runs WHERE id = s.run_id) AS retries`,
      [workerId, now, limit],
    );
    rows.sort((a, b) => a.rn - b.rn || (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));
    const out: ClaimedStep[] = rows.map((r) => ({ runId: r.run_id, key: r.key, attempt: r.attempt, state: parseJsonColumn(r.state), retries: r.retries }));
    if (out.length < limit) {
      // Waiting steps whose time-out passed come last.
      const timed = await this.rows<{ run_id: string; key: string; attempt: number; state: string | null; due_at: number; retries: number }>(
        `UPDATE steps s SET owner = $1 FROM (
           SELECT s.run_id, s.key FROM steps s JOIN runs r ON r.id = s.run_id
           WHERE s.status = 'waiting' AND s.due_at > 0 AND s.owner IS NULL AND s.due_at <= $2 AND r.status IN ${ACTIVE_RUN}
           ORDER BY s.due_at LIMIT $3 FOR UPDATE OF s SKIP LOCKED) t
         WHERE s.run_id = t.run_id AND s.key = t.key RETURNING s.run_id, s.key, s.attempt, s.state, s.due_at, (SELECT retries FROM runs WHERE id = s.run_id) AS retries`,
        [workerId, now, limit - out.length],
      );
      timed.sort((a, b) => a.due_at - b.due_at);
      for (const r of timed) out.push({ runId: r.run_id, key: r.key, attempt: r.attempt, state: parseJsonColumn(r.state), retries: r.retries });
    }
    return out;
  }

  async listen(onWork: () => void): Promise<() => Promise<void>> {
    let client: pg.Client | undefined;
    let stopped = false;
    let reconnectTimer: NodeJS.Timeout | undefined;
    const connect = async (): Promise<void> => {
      const cl = new pg.Client(this.config);
      cl.on('notification', () => onWork());
      cl.on('error', () => undefined);
      cl.on('end', () => {
        if (stopped || this.closed || client !== cl) return;
        client = undefined;
        // Reconnect with backoff; after it, wake the worker once (notifications may have been missed).
        let delay = 100;
        const again = (): void => {
          reconnectTimer = setTimeout(() => {
            if (stopped || this.closed) return;
            connect().then(() => onWork(), () => {
              delay = Math.min(delay * 2, 5000);
              again();
            });
          }, delay / 2 + Math.random() * delay);
          reconnectTimer.unref();
        };
        again();
      });
      try {
        await cl.connect();
        await cl.query(`LISTEN ${CHANNEL}`);
      } catch (e) {
        await cl.end().catch(() => undefined);
        throw e;
      }
      if (stopped || this.closed) {
        await cl.end().catch(() => undefined);
        return;
      }
      client = cl;
    };
    // The first connection retries like any call, then fails with BATON_STORE_BUSY.
    await this.retrying(connect);
    const stop = async (): Promise<void> => {
      stopped = true;
      clearTimeout(reconnectTimer);
      this.listeners.delete(stop);
      const cl = client;
      client = undefined;
      await cl?.end().catch(() => undefined);
    };
    this.listeners.add(stop);
    return stop;
  }

  async releaseClaims(workerId: string, keys?: Array<{ runId: string; key: string }>): Promise<void> {
    if (!keys) {
      await this.releaseWorkerClaims(workerId);
      return;
    }
    if (keys.length === 0) return;
    await this.rows(
      `WITH u AS (UPDATE steps s SET owner = NULL, status = CASE WHEN s.status = 'running' THEN 'scheduled' ELSE s.status END
                  FROM unnest($2::text[], $3::text[]) AS k(run_id, key)
                  WHERE s.run_id = k.run_id AND s.key = k.key AND s.owner = $1 RETURNING 1),
       nt AS (SELECT pg_notify('${CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM u))
       SELECT (SELECT COUNT(*) FROM nt) AS notified`,
      [workerId, keys.map((k) => k.runId), keys.map((k) => k.key)],
    );
  }

  private async releaseWorkerClaims(workerId: string): Promise<void> {
    await this.rows(
      `WITH u AS (UPDATE steps SET owner = NULL, status = CASE WHEN status = 'running' THEN 'scheduled' ELSE status END WHERE owner = $1 RETURNING 1),
       nt AS (SELECT pg_notify('${CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM u))
       SELECT (SELECT COUNT(*) FROM nt) AS notified`,
      [workerId],
    );
  }

  async queueStats(now: number): Promise<{ ready: number; oldestDueAt?: number }> {
    const r = await this.rows<{ n: string | number; oldest: number | null }>(
      `SELECT COUNT(*) AS n, MIN(s.due_at) AS oldest FROM steps s JOIN runs r ON r.id = s.run_id
       WHERE s.status = 'scheduled' AND s.owner IS NULL AND s.due_at <= $1 AND r.status IN ${ACTIVE_RUN}`,
      [now],
    );
    const ready = Number(r[0].n);
    return r[0].oldest === null ? { ready } : { ready, oldestDueAt: Number(r[0].oldest) };
  }

  async nextDueAt(): Promise<number | undefined> {
    const r = await this.rows<{ due: number | null }>(
      `SELECT MIN(s.due_at) AS due FROM steps s JOIN runs r ON r.id = s.run_id
       WHERE ((s.status = 'scheduled') OR (s.status = 'waiting' AND s.due_at > 0)) AND s.owner IS NULL AND r.status IN ${ACTIVE_RUN}`,
    );
    return r[0].due ?? undefined;
  }

  async markStarted(fence: Fence, at: number, events: NewEvent[]): Promise<boolean> {
    const p = new Params();
    const id = `${p.add(fence.runId)}::text`;
    const n = `${p.add(events.length)}::int`;
    const ch = chainSql(p, events);
    const r = await this.rows<{ ok: number }>(
      `WITH f AS (UPDATE steps SET status = 'running', started_at = ${p.add(at)}
                  WHERE run_id = ${id} AND key = ${p.add(fence.key)} AND owner = ${p.add(fence.owner)} AND attempt = ${p.add(fence.attempt)} AND status = 'scheduled'
                  RETURNING 1),
       r AS (UPDATE runs SET last_seq = last_seq + ${n}, ${ch.set} WHERE id = ${id} AND ${n} > 0 AND EXISTS (SELECT 1 FROM f) RETURNING last_seq - ${n} AS base, ${ch.ret}),
       e AS (${eventsInsert(p, id, 'r.base', 'r', events)})
       SELECT COUNT(*) AS ok FROM f`,
      p.values,
    );
    return r[0].ok === 1;
  }

  // ---------------------------------------------------------------- the step commit

  async commit(c: StepCommit): Promise<CommitResult> {
    return this.run((cl, a) => (a.maybeCommitted ? this.commitRetry(cl, a, c) : this.commitTx(cl, a, c)), { commitHook: true });
  }

  /**
   * The one transaction per step attempt: lock the run, record the outcome (fenced on the
   * claim), append events, count down dependents (scheduling and claiming those that reach
   * zero), then the rarer parts, each one statement when present.
   */
  private async commitTx(cl: Q, a: Attempt, c0: StepCommit): Promise<CommitResult> {
    const now = Date.now();
    // A wait arming with a lookback takes a buffered event instead of parking. The key's lock
    // (taken before the run row, as deliverEvent does) orders this against any delivery: a
    // delivery either committed before (its event is read here) or waits and sees this step.
    let consumed: number | undefined;
    let c = c0;
    if (c0.inbox && c0.update.status === 'waiting' && c0.update.waitKey) {
      await cl.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:wait:' || $1, 0))`, [c0.update.waitKey]);
      const row = (await cl.query(
        `SELECT seq, payload, arrived_at FROM event_inbox WHERE wait_key = $1 AND (namespace IS NULL OR namespace = $4) AND consumed_at IS NULL AND arrived_at >= $2 AND expires_at > $3
         ORDER BY arrived_at, seq LIMIT 1 FOR UPDATE`,
        [c0.update.waitKey, c0.inbox.since, now, c0.inbox.namespace],
      )).rows[0] as { seq: string; payload: string; arrived_at: string } | undefined;
      if (row) {
        consumed = Number(row.seq);
        const r = c0.inbox.resume(JSON.parse(row.payload) as unknown, Number(row.arrived_at));
        c = { ...c0, update: { ...c0.update, status: 'scheduled', waitKey: null, owner: c0.fence.owner, dueAt: now, state: r.state }, events: [...c0.events, ...r.events] };
      }
    }
    const { fence, update: u } = c;
    const p = new Params();
    const id = `${p.add(fence.runId)}::text`;
    const owner = `${p.add(fence.owner)}::text`;
    const plainSuccess = u.status === 'succeeded' && !u.error && u.state === undefined && u.pendingDeps === undefined && !u.owner;
    const set = plainSuccess
      ? `status = 'succeeded', output = ${p.add(u.outputJson ?? null)}, owner = NULL, due_at = 0, wait_key = NULL,
         started_at = ${p.add(u.startedAt ?? null)}::bigint, finished_at = ${p.add(u.finishedAt ?? null)}::bigint`
      : `status = ${p.add(u.status)}, output = ${p.add(u.outputJson ?? null)}, error = ${p.add(u.error ? JSON.stringify(u.error) : null)},
         attempt = ${p.add(u.attempt ?? fence.attempt)}, due_at = ${p.add(u.dueAt ?? 0)}, owner = ${p.add(u.owner === undefined ? null : u.owner)},
         state = COALESCE(${p.add(u.state === undefined ? null : JSON.stringify(u.state))}, state), wait_key = ${p.add(u.waitKey ?? null)},
         pending_deps = COALESCE(${p.add(u.pendingDeps ?? null)}::int, pending_deps), started_at = COALESCE(${p.add(u.startedAt ?? null)}::bigint, started_at),
         finished_at = ${p.add(u.finishedAt ?? null)}::bigint`;
    // Countdowns go into the first statement unless new steps are inserted first (they might be counted down).
    const dec = groupDecrements(c.decrement);
    const decInline = dec.keys.length > 0 && !c.insert?.length;
    const n = `${p.add(c.events.length)}::int`;
    const ch = chainSql(p, c.events);
    const sql = `WITH r0 AS (SELECT status FROM runs WHERE id = ${id} FOR UPDATE),
      f AS (UPDATE steps SET ${set}
            WHERE run_id = ${id} AND key = ${p.add(fence.key)} AND owner = ${owner} AND attempt = ${p.add(fence.attempt)}
              AND status IN ('scheduled', 'running', 'waiting') AND EXISTS (SELECT 1 FROM r0)
            RETURNING 1),
      r AS (UPDATE runs SET last_seq = last_seq + ${n}, ${ch.set} WHERE id = ${id} AND ${n} > 0 AND EXISTS (SELECT 1 FROM f) RETURNING last_seq - ${n} AS base, ${ch.ret}),
      e AS (${eventsInsert(p, id, 'r.base', 'r', c.events)})
      ${decInline ? `, d AS (${decrementSql(p, id, owner, `${p.add(now)}::bigint`, dec, '(SELECT status FROM r0)', 'EXISTS (SELECT 1 FROM f)')})` : ''}
      SELECT (SELECT status FROM r0) AS run_status, (SELECT COUNT(*) FROM f) AS ok
        ${decInline ? ', (SELECT json_agg(json_build_object(\'key\', key, \'pending_deps\', pending_deps, \'status\', status, \'owner\', owner, \'attempt\', attempt)) FROM d) AS dec' : ''}`;
    const first = (await cl.query(sql, p.values)).rows[0] as { run_status: RunStatus | null; ok: number; dec?: DecRow[] | null };
    if (first.ok !== 1) return { ok: false, ready: [], runIdle: false };
    if (c.task) {
      // Idempotent on the id: a commit retried after a lost COMMIT answer inserts nothing twice.
      const t = c.task;
      await cl.query(
        `INSERT INTO tasks (id, run_id, step_key, step_attempt, type, namespace, input, status, lease_ms, max_attempts, available_at, attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $10, $9, 0, $9, $9) ON CONFLICT (id) DO NOTHING`,
        [t.id, fence.runId, fence.key, fence.attempt, t.type, t.namespace, t.inputJson, t.leaseMs, t.createdAt, t.maxAttempts ?? null],
      );
    }
    if (c.approval) {
      // Idempotent on the id, like a task.
      const ap = c.approval;
      await cl.query(
        `INSERT INTO approvals (id, run_id, step_key, step_attempt, namespace, workflow, status, approvers, evidence, evidence_hash, summary, form,
           deadline_at, on_expiry, reminders, next_reminder_at, notify, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1, $17, $17) ON CONFLICT (id) DO NOTHING`,
        [ap.id, fence.runId, fence.key, fence.attempt, ap.namespace, ap.workflow, JSON.stringify(ap.approvers), ap.evidenceJson, ap.evidenceHash, ap.summary ?? null,
          ap.formJson, ap.deadlineAt ?? null, ap.onExpiryJson ?? null, ap.remindersJson ?? null, ap.nextReminderAt ?? null, ap.notify ?? null, ap.createdAt],
      );
    }
    const paused = first.run_status === 'paused';
    // Steps made ready now: claimed for this worker, or (paused run) left unowned and unclaimable.
    const newOwner = paused ? null : fence.owner;
    const ready: string[] = [];
    if (consumed !== undefined) {
      await cl.query('UPDATE event_inbox SET consumed_at = $1, consumed_by = $2 WHERE seq = $3', [now, `${fence.runId}/${fence.key}`, consumed]);
      ready.push(fence.key);
    }
    if (c.outbox?.length) {
      const ob = c.outbox;
      await cl.query(
        `INSERT INTO event_outbox (id, run_id, namespace, event, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, run_id, namespace, event), (SELECT $5::bigint) AS n(created_at)
         ON CONFLICT (id) DO NOTHING`,
        [ob.map((o) => o.id), ob.map((o) => o.runId), ob.map((o) => o.namespace), ob.map((o) => o.eventJson), now],
      );
    }
    let attempts: Record<string, number> | undefined;
    if (u.status === 'scheduled' && !u.owner) a.notify = true;
    if (u.status === 'waiting' && !u.owner && (u.dueAt ?? 0) > 0) a.notify = true;

    if (c.insert?.length) {
      const q = new Params();
      const ins = c.insert;
      const rows = (await cl.query(
        `INSERT INTO steps (run_id, key, step_id, idx, parent_key, status, due_at, owner, pending_deps, state, namespace, priority)
         SELECT r.id, t.key, t.step_id, t.idx, t.parent_key, t.status, t.due_at,
           CASE WHEN ${q.add(paused)} THEN NULL ELSE t.owner END, t.pending_deps, t.state, r.namespace, r.priority
         FROM runs r, unnest(${q.add(ins.map((x) => x.key))}::text[], ${q.add(ins.map((x) => x.stepId))}::text[], ${q.add(ins.map((x) => x.index ?? null))}::int[],
           ${q.add(ins.map((x) => x.parentKey ?? null))}::text[], ${q.add(ins.map((x) => x.status))}::text[], ${q.add(ins.map((x) => x.dueAt ?? 0))}::bigint[],
           ${q.add(ins.map((x) => x.owner ?? null))}::text[], ${q.add(ins.map((x) => x.pendingDeps))}::int[],
           ${q.add(ins.map((x) => (x.state === undefined ? null : JSON.stringify(x.state))))}::text[])
           AS t(key, step_id, idx, parent_key, status, due_at, owner, pending_deps, state)
         WHERE r.id = ${q.add(fence.runId)}
         RETURNING key, status, owner`,
        q.values,
      )).rows as Array<{ key: string; status: string; owner: string | null }>;
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const st of ins) {
        const r = byKey.get(st.key);
        if (r?.status === 'scheduled' && st.owner === fence.owner && !paused) ready.push(st.key);
        if (r?.status === 'scheduled' && r.owner === null && !paused) a.notify = true;
      }
    }
    if (c.childRun) {
      if ((await this.insertRun(cl, c.childRun, false)).unowned) a.notify = true;
    }
    if (dec.keys.length) {
      let rows: DecRow[];
      if (decInline) rows = first.dec ?? [];
      else {
        const q = new Params();
        const qid = `${q.add(fence.runId)}::text`;
        const qo = `${q.add(fence.owner)}::text`;
        const qn = `${q.add(now)}::bigint`;
        rows = (await cl.query(decrementSql(q, qid, qo, qn, dec, `${q.add(first.run_status)}::text`, 'TRUE'), q.values)).rows as DecRow[];
      }
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const key of dec.keys) {
        const r = byKey.get(key);
        if (r && r.pending_deps === 0 && r.status === 'scheduled' && r.owner === fence.owner) {
          ready.push(key);
          if (r.attempt !== 1) (attempts ??= {})[key] = r.attempt;
        }
      }
    }
    if (c.schedule?.length) {
      const rows = (await cl.query(
        `UPDATE steps SET status = 'scheduled', owner = $1, due_at = $2, wait_key = NULL
         WHERE run_id = $3 AND key = ANY($4::text[]) AND status IN ('pending', 'waiting') RETURNING key, attempt`,
        [newOwner, now, fence.runId, c.schedule],
      )).rows as Array<{ key: string; attempt: number }>;
      const done = new Map(rows.map((r) => [r.key, r.attempt]));
      if (!paused) {
        for (const key of c.schedule) {
          if (!done.has(key) || ready.includes(key)) continue;
          ready.push(key);
          if (done.get(key) !== 1) (attempts ??= {})[key] = done.get(key)!;
        }
      }
    }
    if (c.startNextChildOf) {
      const rows = (await cl.query(
        `UPDATE steps SET status = 'scheduled', owner = $1, due_at = $2, wait_key = NULL
         WHERE run_id = $3 AND key = (SELECT key FROM steps WHERE run_id = $3 AND parent_key = $4 AND status = 'pending' ORDER BY idx LIMIT 1)
           AND status IN ('pending', 'waiting')
         RETURNING key`,
        [newOwner, now, fence.runId, c.startNextChildOf],
      )).rows as Array<{ key: string }>;
      if (rows[0] && !paused) ready.push(rows[0].key);
    }
    if (c.cancelChildrenOf) {
      await cl.query(`UPDATE steps SET status = 'cancelled', finished_at = $1 WHERE run_id = $2 AND parent_key = $3 AND status = 'pending'`,
        [now, fence.runId, c.cancelChildrenOf]);
    }
    if (c.wake && (await this.wake(cl, fence.runId, c.wake.key, c.wake.state, c.wake.events, now))) a.notify = true;
    if (c.finishRun) {
      const fr = c.finishRun;
      const ended = await this.endRun(cl, fence.runId, fr.status, null, fr.error ? JSON.stringify(fr.error) : null, fr.events, now, true, false);
      if (fr.parent && (await this.wake(cl, fr.parent.runId, fr.parent.key, fr.parent.state, fr.parent.events, now))) a.notify = true;
      if (ended?.key && (await this.promoteQueued(cl, fence.runId, ended.key, ended.limit ?? 1, now)) > 0) a.notify = true;
      return { ok: true, ready: [], runIdle: false };
    }
    let runIdle = false;
    if (ready.length === 0 && u.status !== 'scheduled' && u.status !== 'running') runIdle = await this.probeIdle(cl, fence.runId, now);
    if (runIdle && c.finishIfIdle && (await this.finishTx(cl, a, c.finishIfIdle))) return { ok: true, ready, runIdle: false, runFinished: true };
    return { ok: true, ready, runIdle, ...(consumed !== undefined ? { consumed: true } : {}), ...(attempts ? { attempts } : {}) };
  }

  /**
   * True if the run has no active step; a run with only waiting steps becomes `waiting`. The
   * run row is locked by this transaction, so every other commit of the run is either fully
   * visible here or has not started.
   */
  private async probeIdle(cl: Q, runId: string, now: number): Promise<boolean> {
    const r = (await cl.query(
      `WITH p AS (SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND status IN ('scheduled', 'running')) AS busy,
                         EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND status = 'waiting') AS waiting),
       u AS (UPDATE runs SET status = 'waiting', updated_at = $2 WHERE id = $1 AND status = 'running' AND (SELECT NOT busy AND waiting FROM p) RETURNING 1)
       SELECT busy, waiting, (SELECT COUNT(*) FROM u) AS moved FROM p`,
      [runId, now],
    )).rows[0] as { busy: boolean; waiting: boolean };
    return !r.busy && !r.waiting;
  }

  /**
   * A retry of a commit whose first attempt may have committed (COMMIT sent, answer lost).
   * The fence no longer holds if it did; if the step is exactly where the commit wanted it,
   * the first attempt landed: answer `ok` with the successors it claimed for this worker.
   */
  private async commitRetry(cl: Q, a: Attempt, c: StepCommit): Promise<CommitResult> {
    const { fence, update: u } = c;
    // Run row first, then the step: the lock order of every commit.
    const st = (await cl.query(
      `WITH r0 AS (SELECT 1 FROM runs WHERE id = $1 FOR UPDATE)
       SELECT status, attempt, owner FROM steps WHERE run_id = $1 AND key = $2 AND EXISTS (SELECT 1 FROM r0)`,
      [fence.runId, fence.key],
    )).rows[0] as
      | { status: string; attempt: number; owner: string | null } | undefined;
    // An arming wait that consumed a buffered event left its step scheduled and claimed by us
    // (before the commit it was running): that commit landed.
    if (c.inbox && u.status === 'waiting' && st?.status === 'scheduled' && st.owner === fence.owner && st.attempt === fence.attempt) {
      return { ok: true, ready: [fence.key], runIdle: false, consumed: true };
    }
    const wantOwner = u.owner === undefined || u.owner === null ? null : u.owner;
    const landed = st !== undefined && st.status === u.status && st.attempt === (u.attempt ?? fence.attempt) && st.owner === wantOwner;
    if (!landed) {
      // Not applied (or overtaken): the fence decides, as on a first attempt.
      return this.commitTx(cl, a, c);
    }
    // The first attempt did commit. If the step's own claim is still intact, applying again
    // would be a duplicate; answer what the first attempt did.
    const named = [...(c.insert ?? []).map((s) => s.key), ...(c.decrement ?? []).map((d) => d.key), ...(c.schedule ?? [])];
    const rows = (await cl.query(
      `SELECT key, idx, parent_key, attempt FROM steps WHERE run_id = $1 AND owner = $2 AND status = 'scheduled' AND key <> $5
         AND (key = ANY($3::text[]) OR ($4::text IS NOT NULL AND parent_key = $4))
       ORDER BY idx NULLS FIRST`,
      [fence.runId, fence.owner, named, c.startNextChildOf ?? null, fence.key],
    )).rows as Array<{ key: string; parent_key: string | null; attempt: number }>;
    const ready: string[] = [];
    let attempts: Record<string, number> | undefined;
    for (const k of named) {
      const row = rows.find((r) => r.key === k);
      if (!row || ready.includes(k)) continue;
      ready.push(k);
      if (row.attempt !== 1) (attempts ??= {})[k] = row.attempt;
    }
    const child = rows.find((r) => c.startNextChildOf !== undefined && r.parent_key === c.startNextChildOf && !ready.includes(r.key));
    if (child) ready.push(child.key);
    if (c.finishRun) return { ok: true, ready: [], runIdle: false };
    const run = (await cl.query('SELECT status FROM runs WHERE id = $1 FOR UPDATE', [fence.runId])).rows[0] as { status: RunStatus } | undefined;
    if (c.finishIfIdle && run && (run.status === 'completed' || run.status === 'failed')) return { ok: true, ready, runIdle: false, runFinished: true };
    let runIdle = false;
    if (ready.length === 0 && u.status !== 'scheduled' && u.status !== 'running') runIdle = await this.probeIdle(cl, fence.runId, Date.now());
    if (runIdle && c.finishIfIdle && (await this.finishTx(cl, a, c.finishIfIdle))) return { ok: true, ready, runIdle: false, runFinished: true };
    return attempts ? { ok: true, ready, runIdle, attempts } : { ok: true, ready, runIdle };
  }

  async pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]> {
    const rows = (await this.rows('SELECT * FROM event_outbox WHERE dispatched_at IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2', [before, limit])) as Array<{ id: string; run_id: string; namespace: string; event: string; created_at: string }>;
    return rows.map((r) => ({ id: r.id, runId: r.run_id, namespace: r.namespace, event: JSON.parse(r.event) as unknown, createdAt: Number(r.created_at) }));
  }

  async markDispatched(id: string, at: number): Promise<void> {
    await this.rows('UPDATE event_outbox SET dispatched_at = $1 WHERE id = $2 AND dispatched_at IS NULL', [at, id]);
  }

  async deliverEvent(d: EventDelivery): Promise<DeliveryResult> {
    return this.run(async (c, a) => {
      // Serialised per key with arming waits (see commitTx): taken before any run row lock.
      await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:wait:' || $1, 0))`, [d.waitKey]);
      // Lazy retention: whatever expired goes now (an index range, usually empty).
      // Rows another delivery is pruning are skipped (no waiting, no lock-order deadlock).
      await c.query(`DELETE FROM event_inbox WHERE seq IN (SELECT seq FROM event_inbox WHERE expires_at <= $1 ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED)`, [d.at]);
      const ns = d.namespace ?? null;
      // An id is seen within the delivery's namespace ('': every namespace), as its unique index has it.
      if (d.eventId !== undefined && (await c.query(`SELECT 1 FROM event_inbox WHERE wait_key = $1 AND event_id = $2 AND COALESCE(namespace, '') = $3`, [d.waitKey, d.eventId, ns ?? ''])).rows.length) {
        return { buffered: false, duplicate: true };
      }
      const payload = JSON.stringify(d.payload ?? null);
      const cands = (await c.query(`SELECT run_id, key FROM steps WHERE wait_key = $1 AND status = 'waiting' AND ($2::text IS NULL OR namespace = $2) ORDER BY started_at NULLS LAST, run_id, key`, [d.waitKey, ns])).rows as Array<{ run_id: string; key: string }>;
      for (const k of cands) {
        // Run row first, then the step (the commit's lock order), re-read under the lock.
        await c.query('SELECT 1 FROM runs WHERE id = $1 FOR UPDATE', [k.run_id]);
        const row = (await c.query(`SELECT * FROM steps WHERE run_id = $1 AND key = $2 AND wait_key = $3 AND status = 'waiting' FOR UPDATE`, [k.run_id, k.key, d.waitKey])).rows[0];
        if (!row) continue;
        const st = toStep(row);
        if (!(await this.wake(c, st.runId, st.key, d.state(st), d.events.map((e) => ({ ...e, stepKey: st.key })), d.at))) continue;
        a.notify = true;
        // Remembered (consumed) only to recognise a redelivery of the same id.
        if (d.eventId !== undefined) {
          await c.query(`INSERT INTO event_inbox (wait_key, event_id, payload, arrived_at, expires_at, consumed_at, consumed_by, namespace) VALUES ($1, $2, $3, $4, $5, $4, $6, $7)`,
            [d.waitKey, d.eventId, payload, d.at, d.expiresAt, `${st.runId}/${st.key}`, ns]);
        }
        return { woken: { runId: st.runId, key: st.key }, buffered: false, duplicate: false };
      }
      await c.query(`INSERT INTO event_inbox (wait_key, event_id, payload, arrived_at, expires_at, namespace) VALUES ($1, $2, $3, $4, $5, $6)`,
        [d.waitKey, d.eventId ?? null, payload, d.at, d.expiresAt, ns]);
      return { buffered: true, duplicate: false };
    });
  }

  async signal(waitKey: string, state: (step: StepRecord) => unknown, events: NewEvent[], runId?: string): Promise<Array<{ runId: string; key: string }>> {
    return this.run(async (c, a) => {
      const now = Date.now();
      const cands = (await c.query(`SELECT run_id, key FROM steps WHERE wait_key = $1 AND status = 'waiting' AND ($2::text IS NULL OR run_id = $2) ORDER BY run_id, key`, [waitKey, runId ?? null])).rows as Array<{ run_id: string; key: string }>;
      const woken: Array<{ runId: string; key: string }> = [];
      for (const k of cands) {
        // Run row first, then the step (the commit's lock order), re-read under the lock.
        await c.query('SELECT 1 FROM runs WHERE id = $1 FOR UPDATE', [k.run_id]);
        const row = (await c.query(`SELECT * FROM steps WHERE run_id = $1 AND key = $2 AND wait_key = $3 AND status = 'waiting' FOR UPDATE`, [k.run_id, k.key, waitKey])).rows[0];
        if (!row) continue;
        const st = toStep(row);
        if (await this.wake(c, st.runId, st.key, state(st), events.map((e) => ({ ...e, stepKey: st.key })), now)) {
          woken.push({ runId: st.runId, key: st.key });
          a.notify = true;
        }
      }
      return woken;
    });
  }

  // ---------------------------------------------------------------- external tasks

  async pollTask(q: TaskPoll): Promise<TaskRecord | undefined> {
    return this.run(async (c) => {
      // SKIP LOCKED: concurrent pollers pass over a task another is claiming instead of waiting for it.
      const row = (await c.query(
        `WITH c AS (
           SELECT t.id, t.status AS prev_status, t.lease_owner AS prev_owner FROM tasks t
           WHERE t.type = ANY($1::text[]) AND ($2::text[] IS NULL OR t.namespace = ANY($2::text[]))
             -- A lease that expired at the last hand-out is not given out again (the usedUpTasks sweep fails its step).
             AND ((t.status = 'pending' AND t.available_at <= $3)
               OR (t.status = 'leased' AND t.lease_expires_at <= $3 AND (t.max_attempts IS NULL OR t.attempts < t.max_attempts)))
             AND ${TASK_AWAITED}
           ORDER BY t.created_at, t.id LIMIT 1
           FOR UPDATE OF t SKIP LOCKED)
         UPDATE tasks t SET status = 'leased', lease_owner = $4, lease_token = $5, lease_ms = COALESCE($6::bigint, t.lease_ms),
           lease_expires_at = $3 + COALESCE($6::bigint, t.lease_ms), attempts = t.attempts + 1, updated_at = $3
         FROM c WHERE t.id = c.id
         RETURNING t.*, true AS awaited, c.prev_status, c.prev_owner`,
        [q.types, q.namespaces ?? null, q.now, q.workerId, q.token, q.leaseMs ?? null],
      )).rows[0] as Row | undefined;
      if (!row) return undefined;
      const t = toTask(row);
      await this.insertEvents(c, t.runId, [{
        type: 'task.leased', stepKey: t.stepKey, at: q.now,
        data: { task_id: t.id, worker_id: q.workerId, attempts: t.attempts, lease_expires_at: new Date(t.leaseExpiresAt!).toISOString(), ...(row.prev_status === 'leased' ? { expired_lease_of: row.prev_owner } : {}) },
      }]);
      return t;
    });
  }

  async usedUpTasks(now: number, limit: number): Promise<TaskRecord[]> {
    return (await this.rows(
      `SELECT t.*, true AS awaited FROM tasks t
       WHERE t.status = 'leased' AND t.lease_expires_at <= $1 AND t.attempts >= t.max_attempts AND ${TASK_AWAITED}
       ORDER BY t.lease_expires_at LIMIT $2`,
      [now, limit],
    )).map(toTask);
  }

  async heartbeatTask(lease: TaskLease, now: number): Promise<TaskOpResult> {
    return this.run(async (c) => {
      const refused = checkLease(await this.lockTask(c, lease.taskId), lease);
      if (refused) return refused;
      const row = (await c.query(`UPDATE tasks t SET lease_expires_at = $1 + lease_ms, updated_at = $1 WHERE id = $2 RETURNING t.*, true AS awaited`, [now, lease.taskId])).rows[0] as Row;
      return { result: 'ok' as const, task: toTask(row) };
    });
  }

  async completeTask(f: TaskFinish): Promise<TaskOpResult> {
    return this.run((c, a) => this.finishTask(c, a, f, 'completed'));
  }

  async failTask(f: TaskFinish): Promise<TaskOpResult> {
    return this.run((c, a) => this.finishTask(c, a, f, f.retryAt === undefined ? 'failed' : 'pending'));
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const r = (await this.rows(`SELECT t.*, ${TASK_AWAITED} AS awaited FROM tasks t WHERE t.id = $1`, [taskId]))[0];
    return r && toTask(r);
  }

  /** The task row, locked for this transaction (task before run: the order every task operation takes). */
  private async lockTask(c: Q, id: string): Promise<TaskRecord | undefined> {
    const r = (await c.query(`SELECT t.*, ${TASK_AWAITED} AS awaited FROM tasks t WHERE t.id = $1 FOR UPDATE OF t`, [id])).rows[0] as Row | undefined;
    return r && toTask(r);
  }

  private async finishTask(c: Q, a: Attempt, f: TaskFinish, status: 'completed' | 'failed' | 'pending'): Promise<TaskOpResult> {
    const t = await this.lockTask(c, f.lease.taskId);
    const refused = checkLease(t, f.lease, f.leaseExpiredBy);
    if (refused) {
      // A retry after a lost COMMIT answer finds its own result: that is success, not a lost lease.
      // (`updated_at` is this call's `now`: only this operation wrote it.)
      if (a.maybeCommitted && t && t.status === status && t.updatedAt === f.now) return { result: 'ok', task: t };
      return refused;
    }
    // The wake is fenced on the step still waiting for this very task (it may have timed out since).
    if (f.wake) {
      if (!(await this.wake(c, t!.runId, t!.stepKey, f.wake.state, f.wake.events.map((e) => ({ ...e, stepKey: t!.stepKey })), f.now, `task:${t!.id}`))) return { result: 'gone', task: t! };
      a.notify = true;
    }
    const row = (await c.query(
      `UPDATE tasks t SET status = $1, output = $2, error = COALESCE($3, error), available_at = $4, updated_at = $5,
         lease_token = CASE WHEN $1 = 'pending' THEN NULL ELSE lease_token END,
         lease_owner = CASE WHEN $1 = 'pending' THEN NULL ELSE lease_owner END,
         lease_expires_at = CASE WHEN $1 = 'pending' THEN NULL ELSE lease_expires_at END
       WHERE id = $6 RETURNING t.*, ${TASK_AWAITED} AS awaited`,
      [status, f.outputJson ?? null, f.error ? JSON.stringify(f.error) : null, f.retryAt ?? t!.availableAt, f.now, t!.id],
    )).rows[0] as Row;
    await this.insertEvents(c, t!.runId, f.events.map((e) => ({ ...e, stepKey: t!.stepKey })));
    return { result: 'ok', task: toTask(row) };
  }

  // ---------------------------------------------------------------- human approvals

  async getApproval(id: string): Promise<ApprovalRecord | undefined> {
    const r = (await this.rows(`SELECT a.*, ${APPROVAL_AWAITED} AS awaited FROM approvals a WHERE a.id = $1`, [id]))[0];
    return r && toApproval(r);
  }

  async listApprovals(f: ApprovalFilter = {}): Promise<ApprovalRecord[]> {
    const nss = f.namespaces && !f.namespaces.includes('*') ? f.namespaces : null;
    const rows = await this.rows(
      `SELECT a.*, ${APPROVAL_AWAITED} AS awaited FROM approvals a
       WHERE ($1::text[] IS NULL OR a.status = ANY($1::text[])) AND ($2::text[] IS NULL OR a.namespace = ANY($2::text[])) AND ($3::text IS NULL OR a.run_id = $3)
       ORDER BY a.created_at DESC, a.id DESC LIMIT $4`,
      [f.status?.length ? f.status : null, nss, f.runId ?? null, f.limit ?? 100],
    );
    return rows.map(toApproval);
  }

  async dueApprovals(now: number, limit: number): Promise<ApprovalRecord[]> {
    const rows = await this.rows(
      `SELECT a.*, true AS awaited FROM approvals a
       WHERE a.status IN ('pending', 'escalated') AND (a.deadline_at <= $1 OR a.next_reminder_at <= $1) AND ${APPROVAL_AWAITED}
       ORDER BY a.created_at, a.id LIMIT $2`,
      [now, limit],
    );
    return rows.map(toApproval);
  }

  async nextApprovalDueAt(): Promise<number | undefined> {
    const r = (await this.rows(
      `SELECT MIN(LEAST(a.deadline_at, a.next_reminder_at)) AS due FROM approvals a
       WHERE a.status IN ('pending', 'escalated') AND ${APPROVAL_AWAITED}`,
    ))[0] as { due: number | null } | undefined;
    return r?.due ?? undefined;
  }

  async updateApproval(ch: ApprovalChange): Promise<ApprovalOpResult> {
    return this.run(async (c, a) => {
      // The approval row first (locked), then the run and step in the wake: one order for every approval change.
      const r = (await c.query(`SELECT a.*, ${APPROVAL_AWAITED} AS awaited FROM approvals a WHERE a.id = $1 FOR UPDATE OF a`, [ch.id])).rows[0] as Row | undefined;
      const cur = r && toApproval(r);
      const refused = checkApproval(cur, ch);
      if (refused) {
        // A retry after a lost COMMIT answer finds its own change (version moved on at this very time).
        if (a.maybeCommitted && cur && cur.version === ch.version + 1 && cur.updatedAt === ch.now) return { result: 'ok' as const, approval: cur };
        return refused;
      }
      if (ch.wake) {
        if (!(await this.wake(c, cur!.runId, cur!.stepKey, ch.wake.state, ch.wake.events.map((e) => ({ ...e, stepKey: cur!.stepKey })), ch.now, `approval:${cur!.id}`))) return { result: 'gone' as const, approval: cur! };
        a.notify = true;
      }
      const v = approvalChangeValues(ch);
      const row = (await c.query(
        `UPDATE approvals a SET status = COALESCE($1, status), decided_by = COALESCE($2, decided_by), decided_at = COALESCE($3::bigint, decided_at),
           answer = COALESCE($4, answer),
           approvers = CASE WHEN $5::int = 1 THEN $6 ELSE approvers END,
           deadline_at = CASE WHEN $7::int = 1 THEN $8::bigint ELSE deadline_at END,
           on_expiry = CASE WHEN $9::int = 1 THEN $10 ELSE on_expiry END,
           next_reminder_at = CASE WHEN $11::int = 1 THEN $12::bigint ELSE next_reminder_at END,
           version = version + 1, updated_at = $13
         WHERE id = $14 RETURNING a.*, ${APPROVAL_AWAITED} AS awaited`,
        [v.status, v.decidedBy, v.decidedAt, v.answer, v.setApprovers, v.approvers, v.setDeadline, v.deadline, v.setExpiry, v.expiry, v.setReminder, v.reminder, v.now, v.id],
      )).rows[0] as Row;
      await this.insertEvents(c, cur!.runId, ch.events.map((e) => ({ ...e, stepKey: cur!.stepKey })));
      return { result: 'ok' as const, approval: toApproval(row) };
    });
  }

  /** Puts a waiting step back on the schedule, unowned, with its new resume state (one statement). */
  private async wake(c: Q, runId: string, key: string, state: unknown, events: NewEvent[], now: number, waitKey?: string): Promise<boolean> {
    const p = new Params();
    const id = `${p.add(runId)}::text`;
    const n = `${p.add(events.length)}::int`;
    const nowP = `${p.add(now)}::bigint`;
    const ch = chainSql(p, events);
    const r = await c.query(
      `WITH r0 AS (SELECT 1 FROM runs WHERE id = ${id} FOR UPDATE),
       w AS (UPDATE steps SET status = 'scheduled', state = ${p.add(JSON.stringify(state ?? null))}, wait_key = NULL, owner = NULL, due_at = ${nowP}
             WHERE run_id = ${id} AND key = ${p.add(key)} AND status = 'waiting' AND EXISTS (SELECT 1 FROM r0)
               ${waitKey === undefined ? '' : `AND wait_key = ${p.add(waitKey)}`} RETURNING 1),
       r AS (UPDATE runs SET status = CASE WHEN status = 'waiting' THEN 'running' ELSE status END,
               updated_at = CASE WHEN status = 'waiting' THEN ${nowP} ELSE updated_at END, last_seq = last_seq + ${n}, ${ch.set}
             WHERE id = ${id} AND EXISTS (SELECT 1 FROM w) RETURNING last_seq - ${n} AS base, ${ch.ret}),
       e AS (${eventsInsert(p, id, 'r.base', 'r', events)})
       SELECT COUNT(*) AS n FROM w`,
      p.values,
    );
    return (r.rows[0].n as number) === 1;
  }

  // ---------------------------------------------------------------- model calls, cost, cache

  async reserveBudget(runId: string, amount: number): Promise<{ ok: boolean; budget?: number; spent: number; reserved: number }> {
    // The conditional UPDATE is atomic (the row lock re-checks the budget); the run's current
    // figures are read in the same statement.
    const r = await this.rows<{ ok: number; budget: number | null; cost_spent: number | null; cost_reserved: number | null }>(
      `WITH u AS (UPDATE runs SET cost_reserved = cost_reserved + $2
                  WHERE id = $1 AND (budget IS NULL OR cost_spent + cost_reserved + $2 <= budget + 1e-12)
                  RETURNING budget, cost_spent, cost_reserved)
       SELECT 1 AS ok, budget, cost_spent, cost_reserved FROM u
       UNION ALL
       SELECT 0, budget, cost_spent, cost_reserved FROM runs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM u)`,
      [runId, amount],
    );
    const row = r[0];
    return { ok: row?.ok === 1, budget: row?.budget ?? undefined, spent: row?.cost_spent ?? 0, reserved: row?.cost_reserved ?? 0 };
  }

  async recordModelCall(call: ModelCallRecord, release: number): Promise<void> {
    const { runId, stepKey, at, ...rest } = call;
    const data = JSON.stringify(rest);
    // Event, model_calls row and the cost settlement in one statement.
    await this.rows(
      `WITH r AS (UPDATE runs SET last_seq = last_seq + 1, cost_spent = cost_spent + $15, cost_reserved = GREATEST(0, cost_reserved - $18),
                    last_hash = (baton_chain(last_hash, id, last_seq, ARRAY[$20::text]))[1]
                  WHERE id = $1 RETURNING last_seq, last_hash),
       e AS (INSERT INTO events (run_id, seq, type, step_key, at, data, hash) SELECT $1, r.last_seq, 'model.call', $3, $17, $19, r.last_hash FROM r)
       INSERT INTO model_calls (run_id, seq, workflow, step_key, attempt, service, provider, model, version, operation, outcome,
         error_code, input_tokens, output_tokens, cached_tokens, cost, latency_ms, at)
       SELECT $1, r.last_seq, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM r`,
      [runId, call.workflow, stepKey, call.attempt, call.service, call.provider, call.model, call.version ?? null, call.operation, call.outcome,
        call.error?.code ?? null, call.inputTokens, call.outputTokens, call.cachedTokens, call.cost, Math.round(call.latencyMs), at, release,
        data, eventContentHash('model.call', stepKey, at, data)],
    );
  }

  async getModelCalls(runId: string): Promise<ModelCallRecord[]> {
    const rows = await this.rows(
      `SELECT e.run_id, e.step_key, e.at, e.data FROM model_calls c JOIN events e ON e.run_id = c.run_id AND e.seq = c.seq
       WHERE c.run_id = $1 ORDER BY c.seq`,
      [runId],
    );
    return rows.map((r) => ({ ...(JSON.parse(r.data as string) as object), runId: r.run_id, stepKey: r.step_key, at: r.at }) as ModelCallRecord);
  }

  async costReport(q: CostQuery): Promise<CostLine[]> {
    const key = { service: 'service', workflow: 'workflow', run: 'run_id', model: `provider || '/' || model || COALESCE('@' || version, '')` }[q.by];
    const p = new Params();
    const where: string[] = [];
    if (q.since !== undefined) where.push(`at >= ${p.add(q.since)}`);
    if (q.runId) where.push(`run_id = ${p.add(q.runId)}`);
    if (q.workflow) where.push(`workflow = ${p.add(q.workflow)}`);
    if (q.service) where.push(`service = ${p.add(q.service)}`);
    const rows = await this.rows(
      `SELECT ${key} AS key, COUNT(*) AS calls,
         COUNT(*) FILTER (WHERE outcome IN ('error', 'degraded', 'skipped')) AS failed, COUNT(*) FILTER (WHERE outcome = 'cache_hit') AS cache_hits,
         SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cached_tokens) AS cached_tokens,
         SUM(cost) AS cost, AVG(CASE WHEN outcome = 'ok' THEN latency_ms END) AS avg_latency
       FROM model_calls ${where.length ? `WHERE ${where.join(' AND ')}` : ''} GROUP BY 1 ORDER BY SUM(cost) DESC, 1`,
      p.values,
    );
    return rows.map((r) => ({
      key: r.key as string, calls: r.calls as number, failed: r.failed as number, cacheHits: r.cache_hits as number,
      inputTokens: r.input_tokens as number, outputTokens: r.output_tokens as number, cachedTokens: r.cached_tokens as number,
      cost: Math.round((r.cost as number) * 1e9) / 1e9, avgLatencyMs: Math.round(((r.avg_latency as number | null) ?? 0) * 10) / 10,
    }));
  }

  async cacheGet(key: string, now: number): Promise<string | undefined> {
    return (await this.rows<{ value: string }>('SELECT value FROM model_cache WHERE key = $1 AND expires_at > $2', [key, now]))[0]?.value;
  }

  async cachePut(key: string, valueJson: string, now: number, expiresAt: number): Promise<void> {
    await this.rows(
      `INSERT INTO model_cache (key, value, created_at, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at, expires_at = excluded.expires_at`,
      [key, valueJson, now, expiresAt],
    );
  }

  // ---------------------------------------------------------------- shared service limits

  async takeTokens(name: string, perMinute: number, n: number, now: number): Promise<number> {
    return this.run(async (c) => {
      // A missing bucket starts full; the row lock serialises takers.
      await c.query('INSERT INTO service_buckets (name, tokens, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [name, perMinute, now]);
      const row = (await c.query('SELECT tokens, updated_at FROM service_buckets WHERE name = $1 FOR UPDATE', [name])).rows[0] as { tokens: number; updated_at: number };
      const have = Math.min(perMinute, row.tokens + (Math.max(0, now - row.updated_at) * perMinute) / 60_000);
      const need = Math.min(n, perMinute);
      const wait = have >= need ? 0 : Math.ceil(((need - have) * 60_000) / perMinute);
      await c.query('UPDATE service_buckets SET tokens = $2, updated_at = $3 WHERE name = $1', [name, wait === 0 ? have - need : have, Math.max(now, row.updated_at)]);
      return wait;
    });
  }

  async acquireSlot(name: string, limit: number, holder: string, now: number, expiresAt: number): Promise<boolean> {
    return this.run(async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:slot:' || $1, 0))`, [name]);
      await c.query('DELETE FROM service_slots WHERE name = $1 AND expires_at <= $2', [name, now]);
      const r = await c.query(
        `INSERT INTO service_slots (name, holder, expires_at) SELECT $1, $2, $3
         WHERE (SELECT COUNT(*) FROM service_slots WHERE name = $1) < $4
         ON CONFLICT (name, holder) DO UPDATE SET expires_at = excluded.expires_at RETURNING 1`,
        [name, holder, expiresAt, limit],
      );
      return r.rowCount === 1;
    });
  }

  async releaseSlot(name: string, holder: string): Promise<void> {
    await this.rows('DELETE FROM service_slots WHERE name = $1 AND holder = $2', [name, holder]);
  }

  // ---------------------------------------------------------------- gateway API keys

  async putApiKey(k: ApiKeyRecord): Promise<void> {
    await this.rows(`INSERT INTO api_keys (id, hash, name, role, namespaces, rate_per_minute, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [k.id, k.hash, k.name, k.role, JSON.stringify(k.namespaces), k.ratePerMinute, k.createdAt]);
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const r = (await this.rows('SELECT * FROM api_keys WHERE id = $1', [id]))[0];
    return r && toApiKey(r);
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (await this.rows('SELECT * FROM api_keys ORDER BY created_at, id')).map(toApiKey);
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    return (await this.rows('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id', [at, id])).length === 1;
  }

  // ---------------------------------------------------------------- governance

  async putServiceConfig(hash: string, configJson: string, at: number): Promise<void> {
    await this.rows('INSERT INTO service_configs (hash, config, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING', [hash, configJson, at]);
  }

  async getServiceConfig(hash: string): Promise<string | undefined> {
    return (await this.rows<{ config: string }>('SELECT config FROM service_configs WHERE hash = $1', [hash]))[0]?.config;
  }

  async lastRunConfig(versionId: string): Promise<string | undefined> {
    return (await this.rows<{ config_hash: string }>('SELECT config_hash FROM runs WHERE version_id = $1 AND config_hash IS NOT NULL ORDER BY created_at DESC LIMIT 1', [versionId]))[0]?.config_hash;
  }

  async promoteVersion(p: Omit<StageRecord, 'seq'>): Promise<StageRecord> {
    const r = await this.rows('INSERT INTO workflow_stages (name, stage, version_id, promoted_by, reason, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *', [p.name, p.stage, p.versionId, p.by ?? null, p.reason ?? null, p.at]);
    return toStage(r[0]);
  }

  async stageVersion(name: string, stage: string): Promise<StageRecord | undefined> {
    const r = (await this.rows('SELECT * FROM workflow_stages WHERE name = $1 AND stage = $2 ORDER BY seq DESC LIMIT 1', [name, stage]))[0];
    return r && toStage(r);
  }

  async stageHistory(name: string): Promise<StageRecord[]> {
    return (await this.rows('SELECT * FROM workflow_stages WHERE name = $1 ORDER BY seq', [name])).map(toStage);
  }

  async putServiceStatus(r: Omit<ServiceStatusRecord, 'seq'>): Promise<ServiceStatusRecord> {
    const row = await this.rows('INSERT INTO service_status (service, status, reason, changed_by, at) VALUES ($1, $2, $3, $4, $5) RETURNING *', [r.service, r.status, r.reason ?? null, r.by ?? null, r.at]);
    return toServiceStatus(row[0]);
  }

  async serviceStatusHistory(service?: string): Promise<ServiceStatusRecord[]> {
    const rows = service === undefined
      ? await this.rows('SELECT * FROM service_status ORDER BY seq')
      : await this.rows('SELECT * FROM service_status WHERE service = $1 ORDER BY seq', [service]);
    return rows.map(toServiceStatus);
  }

  async lineage(q: LineageQuery): Promise<LineageRecord[]> {
    const args: unknown[] = [q.service];
    const ver = q.version !== undefined ? ` AND m.version = $${args.push(q.version)}` : '';
    const since = q.since !== undefined ? ` AND m.at >= $${args.push(q.since)}` : '';
    const lim = `$${args.push(q.limit ?? 1000)}`;
    return toLineage(await this.rows(`SELECT m.run_id, r.workflow, r.version_id, r.status, r.namespace, r.created_at, m.version, m.model, COUNT(*) AS calls, MIN(m.at) AS first_at, MAX(m.at) AS last_at
       FROM model_calls m JOIN runs r ON r.id = m.run_id
       WHERE m.outcome <> 'skipped' AND m.service = $1${ver}${since}
       GROUP BY m.run_id, r.workflow, r.version_id, r.status, r.namespace, r.created_at, m.version, m.model
       ORDER BY r.created_at DESC, m.run_id DESC LIMIT ${lim}`, args));
  }

  // ---------------------------------------------------------------- cron schedules

  async syncSchedules(workflow: string, versionId: string, schedules: NewSchedule[], now: number): Promise<boolean> {
    return this.run(async (c) => {
      // The lock putVersion takes: the latest version cannot change under this transaction.
      await c.query(`SELECT pg_advisory_xact_lock(hashtextextended('baton:version:' || $1, 0))`, [workflow]);
      const latest = (await c.query('SELECT version_id FROM workflow_versions WHERE name = $1 ORDER BY seq DESC LIMIT 1', [workflow])).rows[0];
      if (!latest || latest.version_id !== versionId) return false;
      await c.query('DELETE FROM schedules WHERE workflow = $1 AND NOT (id = ANY($2::text[]))', [workflow, schedules.map((x) => x.id)]);
      for (const x of schedules) {
        await c.query(
          `INSERT INTO schedules (id, workflow, namespace, trigger_id, version_id, cron, timezone, missed, max_catch_up, next_fire_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
           ON CONFLICT (id) DO UPDATE SET version_id = excluded.version_id, missed = excluded.missed, max_catch_up = excluded.max_catch_up,
             next_fire_at = CASE WHEN schedules.cron = excluded.cron AND schedules.timezone = excluded.timezone THEN schedules.next_fire_at ELSE excluded.next_fire_at END,
             cron = excluded.cron, timezone = excluded.timezone, updated_at = excluded.updated_at`,
          [x.id, x.workflow, x.namespace, x.triggerId, x.versionId, x.cron, x.timezone, x.missed, x.maxCatchUp, x.nextFireAt ?? null, now],
        );
      }
      return true;
    });
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    return (await this.rows('SELECT * FROM schedules ORDER BY workflow, trigger_id')).map(toSchedule);
  }

  async getSchedule(id: string): Promise<ScheduleRecord | undefined> {
    const r = (await this.rows('SELECT * FROM schedules WHERE id = $1', [id]))[0];
    return r && toSchedule(r);
  }

  async claimSchedules(owner: string, now: number, leaseUntil: number, limit: number): Promise<ScheduleRecord[]> {
    // SKIP LOCKED: schedulers of other processes claiming at the same instant take other rows
    // (or none) instead of waiting and then claiming the same row again.
    const rows = await this.rows(
      `UPDATE schedules SET lease_owner = $1, lease_until = $2 WHERE id IN (
         SELECT id FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
         ORDER BY next_fire_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *`,
      [owner, leaseUntil, now, limit],
    );
    return rows.map(toSchedule);
  }

  async updateSchedule(id: string, patch: SchedulePatch, now: number, owner?: string): Promise<boolean> {
    const { sets, values } = schedulePatchSql(patch, (i) => `$${i}`, (b) => b);
    const add = (col: string, v: unknown) => {
      values.push(v);
      sets.push(`${col} = $${values.length}`);
    };
    add('updated_at', now);
    if (owner !== undefined) {
      if (patch.holdUntil !== undefined) add('lease_until', patch.holdUntil);
      else sets.push('lease_owner = NULL', 'lease_until = NULL');
    }
    values.push(id);
    let where = `id = $${values.length}`;
    if (owner !== undefined) {
      values.push(owner);
      where += ` AND lease_owner = $${values.length}`;
    }
    return (await this.rows(`UPDATE schedules SET ${sets.join(', ')} WHERE ${where} RETURNING id`, values)).length === 1;
  }

  async nextScheduleAt(): Promise<number | undefined> {
    const r = (await this.rows<{ at: number | null }>('SELECT MIN(GREATEST(next_fire_at, COALESCE(lease_until, 0))) AS at FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL'))[0];
    return r?.at ?? undefined;
  }

  // ---------------------------------------------------------------- audit trail

  async auditEvents(runId: string): Promise<AuditEventRow[]> {
    return (await this.rows('SELECT seq, type, step_key, at, data, hash FROM events WHERE run_id = $1 ORDER BY seq', [runId])).map(toAuditEvent);
  }

  async auditAnchors(): Promise<AnchorRecord[]> {
    return (await this.rows('SELECT * FROM audit_anchors ORDER BY seq')).map(toAnchor);
  }

  async auditRunIds(): Promise<string[]> {
    return (await this.rows<{ id: string }>('SELECT id FROM runs ORDER BY created_at, id')).map((r) => r.id);
  }

  async purgeRuns(runs: Array<{ runId: string; mode: 'purge' | 'archive'; archive?: string }>, at: number): Promise<string[]> {
    if (runs.length === 0) return [];
    return this.run(async (c) => {
      // Locked and re-checked here: only runs still ended are purged.
      const ended = (await c.query(
        `SELECT id, workflow, last_hash FROM runs WHERE id = ANY($1::text[]) AND status IN ${NOT_FINISHED} ORDER BY id FOR UPDATE`,
        [runs.map((x) => x.runId)],
      )).rows as Array<{ id: string; workflow: string; last_hash: string | null }>;
      const ids = ended.map((r) => r.id);
      if (ids.length === 0) return [];
      for (const t of ['model_calls', 'events', 'steps', 'tasks', 'approvals', 'event_outbox']) await c.query(`DELETE FROM ${t} WHERE run_id = ANY($1::text[])`, [ids]);
      await c.query('DELETE FROM runs WHERE id = ANY($1::text[])', [ids]);
      const byId = new Map(runs.map((x) => [x.runId, x]));
      for (const r of ended) {
        const x = byId.get(r.id)!;
        await c.query(
          `INSERT INTO audit_purged (run_id, workflow, final_hash, purged_at, mode, archive) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (run_id) DO UPDATE SET final_hash = excluded.final_hash, purged_at = excluded.purged_at, mode = excluded.mode, archive = excluded.archive`,
          [r.id, r.workflow, r.last_hash, at, x.mode, x.archive ?? null],
        );
      }
      return ids;
    });
  }

  /**
   * Anchors runs that ended since the last sweep, oldest first, in one transaction: the anchor
   * head is locked once per batch (runs another transaction holds are skipped, for the next
   * sweep). Called by workers' periodic sweep and before `audit verify`.
   */
  async anchorPending(limit = 500): Promise<number> {
    return this.run(async (c) => {
      const head = (await c.query('SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE')).rows[0] as { seq: number; hash: string };
      const runs = (await c.query(
        `SELECT id, COALESCE(last_hash, '') AS h FROM runs WHERE anchor_pending ORDER BY finished_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      )).rows as Array<{ id: string; h: string }>;
      if (runs.length === 0) return 0;
      const now = Date.now();
      let prev = head.hash;
      let seq = head.seq;
      const rows = runs.map((r) => {
        seq++;
        const h = anchorHash(prev, seq, r.id, r.h, now);
        const row = { seq, runId: r.id, final: r.h, prev, hash: h };
        prev = h;
        return row;
      });
      await c.query(
        `INSERT INTO audit_anchors (seq, run_id, run_final_hash, prev_anchor_hash, anchor_hash, at)
         SELECT t.seq, t.run_id, t.final, t.prev, t.hash, $6 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(seq, run_id, final, prev, hash)`,
        [rows.map((r) => r.seq), rows.map((r) => r.runId), rows.map((r) => r.final), rows.map((r) => r.prev), rows.map((r) => r.hash), now],
      );
      await c.query('UPDATE runs SET anchor_pending = FALSE WHERE id = ANY($1::text[])', [runs.map((r) => r.id)]);
      await c.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [seq, prev]);
      return rows.length;
    });
  }

  async listPurged(): Promise<PurgedRunRecord[]> {
    return (await this.rows('SELECT * FROM audit_purged ORDER BY purged_at, run_id')).map(toPurged);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.listeners].map((stop) => stop()));
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

interface DecRow {
  attempt: number;
  key: string;
  pending_deps: number;
  status: StepStatus;
  owner: string | null;
}

/** Duplicate keys counted down once per occurrence, like SQLite's per-entry loop. */
function groupDecrements(d: StepCommit['decrement']): { keys: string[]; n: number[]; live: number[] } {
  const keys: string[] = [];
  const n: number[] = [];
  const live: number[] = [];
  for (const x of d ?? []) {
    const i = keys.indexOf(x.key);
    if (i < 0) {
      keys.push(x.key);
      n.push(1);
      live.push(x.live ? 1 : 0);
    } else {
      n[i]++;
      live[i] += x.live ? 1 : 0;
    }
  }
  return { keys, n, live };
}

/**
 * One statement counts dependents down and, at zero, schedules them (claimed for `owner`,
 * unless the run is paused). SET reads the old row, as in SQLite.
 */
function decrementSql(p: Params, id: string, owner: string, now: string, d: { keys: string[]; n: number[]; live: number[] }, runStatusExpr: string, guard: string): string {
  const zero = `s.pending_deps = x.n AND s.status IN ('pending', 'waiting')`;
  return `UPDATE steps s SET pending_deps = s.pending_deps - x.n, live_deps = s.live_deps + x.live,
      status = CASE WHEN ${zero} THEN 'scheduled' ELSE s.status END,
      owner = CASE WHEN ${zero} THEN (CASE WHEN ${runStatusExpr} = 'paused' THEN NULL ELSE ${owner} END) ELSE s.owner END,
      due_at = CASE WHEN ${zero} THEN ${now} ELSE s.due_at END,
      wait_key = CASE WHEN ${zero} THEN NULL ELSE s.wait_key END
    FROM unnest(${p.add(d.keys)}::text[], ${p.add(d.n)}::int[], ${p.add(d.live)}::int[]) AS x(key, n, live)
    WHERE s.run_id = ${id} AND s.key = x.key AND ${guard}
    RETURNING s.key, s.pending_deps, s.status, s.owner, s.attempt`;
}

// ---------------------------------------------------------------- errors

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', '57P01', '57P02', '57P03', '53300']);

/** Failures of the connection (not of the statement): worth retrying on a new connection. */
export function isConnectionError(e: unknown): boolean {
  if (e instanceof BatonError) return false;
  const code = (e as { code?: string } | undefined)?.code;
  if (code && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  const msg = (e as Error | undefined)?.message ?? '';
  return /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error|not queryable|Client was closed|socket hang up/i.test(msg);
}

function describe(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = (e as Error).message || String(e);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

function openError(e: unknown, location: string, url: URL): BatonError {
  if (e instanceof BatonError) return e;
  const code = (e as { code?: string }).code ?? '';
  const msg = describe(e);
  const db = decodeURIComponent(url.pathname.replace(/^\//, '')) || '(default)';
  const user = decodeURIComponent(url.username) || '(default)';
  let detail = msg;
  if (code === '3D000') detail = `database "${db}" does not exist (${msg}); create it (createdb ${db}) or fix the database name in the URL`;
  else if (code.startsWith('28')) detail = `the server refused user "${user}" (${msg}); check the user and password in the URL and the server's pg_hba.conf`;
  else if (code === 'ENOTFOUND') detail = `host "${url.hostname}" not found (${msg}); fix the host name in the URL`;
  else if (code === '42501') detail = `user "${user}" may not create Baton's tables (${msg}); grant it CREATE on the database or run \`baton migrate\` as an owner`;
  return new BatonError('BATON_STORE_OPEN', { path: location, detail }, { cause: e });
}

/** The connection string with any password masked, for messages. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return url.replace(/(:\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
