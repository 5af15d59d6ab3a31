/**
 * The `baton` command. Exit codes: 0 done, 1 the run failed (or was cancelled), 2 bad usage
 * or a bad document/input. User errors print `error[CODE]: message` without a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Baton, type BatonOptions, type RunResult } from '../engine/engine.js';
import { APPROVAL_STATUSES, type ApprovalViewStatus } from '../engine/approvals.js';
import { approvalBody } from '../gateway/approvals.js';
import { TERMINAL_RUN_STATES, type RunStatus } from '../engine/states.js';
import { isNamespace } from '../engine/namespaces.js';
import { hookPath, unsetWebhookSecrets, type Listening, type WebhookTrigger } from '../engine/triggers.js';
import { BatonError, formatProblem } from '../errors.js';
import { compileWorkflow } from '../spec/compile.js';
import { readSource } from '../spec/parse.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { findConfig, loadFunctions } from './config.js';
import { LiveView } from './live-view.js';
import { addGovernanceCommands } from './governance.js';
import { createServer, type Server } from 'node:http';
import { createLogger, logLifecycle, LOG_LEVELS, type LogLevel } from '../observability/logger.js';
import { METRICS_CONTENT_TYPE } from '../observability/metrics.js';
import { formatUsd, printCost, printReplay, printRunList, printRunDetail, printSchedules, printServices } from './print.js';
import { present } from '../audit/redaction.js';

interface StoreOpts {
  db?: string;
  config?: string;
}

/** Exit code for a failure that is the user's to fix (document, input, usage). */
const USER_CODES = new Set(['BATON_DOC_SYNTAX', 'BATON_DOC_INVALID', 'BATON_DOC_NOT_FOUND', 'BATON_UNKNOWN_KIND', 'BATON_INPUT_INVALID', 'BATON_INPUT_PARSE', 'BATON_USAGE', 'BATON_CONFIG_INVALID', 'BATON_WORKFLOW_NOT_FOUND', 'BATON_STAGE_EMPTY', 'BATON_RUN_NOT_FOUND', 'BATON_SCHEDULE_NOT_FOUND', 'BATON_RUN_STATE', 'BATON_RUN_NOT_RETRYABLE', 'BATON_RETRY_STEP_UNKNOWN', 'BATON_SIGNAL_NO_TARGET', 'BATON_UNKNOWN_FUNCTION', 'BATON_VERSION_CONFLICT', 'BATON_SERVICE_UNKNOWN', 'BATON_SERVICE_BLOCKED', 'BATON_CREDENTIAL_MISSING', 'BATON_ENCRYPTION_KEY_MISSING', 'BATON_REPLAY_STEP_UNKNOWN', 'BATON_REPLAY_VERSION', 'BATON_REPLAY_NO_RECORDING', 'BATON_APPROVAL_NOT_FOUND', 'BATON_APPROVAL_CLOSED', 'BATON_APPROVAL_NOT_ALLOWED', 'BATON_APPROVAL_FORM']);

/**
 * `schedules`: fire cron schedules from this process — the long-running `serve` and `worker`
 * do; one-shot commands (`run`, `resume`…) do not, or they would start runs of other workflows
 * and then exit before finishing them.
 */
async function openBaton(o: StoreOpts, near: string[] = [], worker: boolean | { concurrency?: number; leaseMs?: number } = true, server = false, schedules = false, extra: Partial<BatonOptions> = {}): Promise<Baton> {
  const config = findConfig(o.config, near);
  const functions = await loadFunctions(config.functions);
  const db = o.db ?? process.env.BATON_DB ?? config.store ?? '.baton';
  const w = typeof worker === 'object' ? worker : {};
  // A PostgreSQL URL is a cluster store; anything else is the folder of the embedded SQLite store.
  const store = isPostgresUrl(db) ? await openPostgres(db) : undefined;
  return Baton.open({
    dir: store ? undefined : db, store, functions, worker: worker !== false, services: config.services, policies: config.policies, baseDir: config.baseDir,
    // Long-running processes (serve, worker) also apply the config's retention policy on their sweeps.
    retention: schedules && config.retention ? { policy: { days: config.retention.days, mode: config.retention.mode }, archiveDir: config.retention.archiveDir } : undefined,
    schedules, concurrency: w.concurrency, leaseMs: w.leaseMs ?? (process.env.BATON_LEASE_MS ? Number(process.env.BATON_LEASE_MS) : undefined),
    // A server's writes arrive in separate I/O callbacks: group commit gathers across them.
    // Long-running processes checkpoint the WAL on a thread of their own (no stalls).
    sqlite: { groupCommit: server ? 'io' : undefined, checkpoint: schedules ? 'thread' : undefined },
    telemetry: config.telemetry,
    ...extra,
    // The config's network: section wins; `--strict-egress` without one is `network: {}`.
    network: config.network ?? extra.network,
  });
}

function portOption(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new BatonError('BATON_USAGE', { detail: `${flag} must be a port number 0-65535, got "${v}".` });
  return n;
}

function logLevel(v: string): LogLevel {
  if (!(LOG_LEVELS as string[]).includes(v)) throw new BatonError('BATON_USAGE', { detail: `--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${v}".` });
  return v as LogLevel;
}

/** `--metrics-port`: GET /metrics alone, without keys, on its own port (keep it off the public network). */
async function serveMetrics(baton: Baton, port: number, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    baton.metrics!.text().then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      (e: unknown) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => res());
  });
  return server;
}

function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//.test(db);
}

async function openPostgres(url: string) {
  const { PostgresStore } = await import('../store/postgres/postgres-store.js');
  const command = process.argv[2] ?? '';
  // Long-running processes ride out a database restart; a one-shot command gives up sooner.
  const patient = command === 'worker' || command === 'serve';
  return PostgresStore.open(url, { applicationName: `baton ${command}`.trim(), retryForMs: patient ? 60_000 : 10_000 });
}

/** JSON given to `flag` inline, as @file or as a file path; --input is the run input (BATON_INPUT_PARSE), other flags' data is a usage error. */
function parseInput(raw: string | undefined, flag = '--input'): unknown {
  const fail = (detail: string) => (flag === '--input' ? new BatonError('BATON_INPUT_PARSE', { detail }) : new BatonError('BATON_USAGE', { detail: `${flag}: ${detail}` }));
  if (raw === undefined) return {};
  const fromFile = (file: string) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw fail(`${file} is not valid JSON: ${(e as Error).message}`);
    }
  };
  if (raw.startsWith('@')) return fromFile(raw.slice(1));
  try {
    return JSON.parse(raw) as unknown;
  } catch (e) {
    if (existsSync(raw) && statSync(raw).isFile()) return fromFile(raw);
    throw fail(`${flag === '--input' ? '--input is' : 'it is'} neither JSON nor a readable file (${(e as Error).message}). Pass JSON, @file.json or a file path.`);
  }
}

export function buildProgram(): Command {
  const program = new Command('baton')
    .description('Durable AI orchestration: run workflows that chain models, services and people.')
    .version('0.1.0')
    // `baton --version` is the program's; after a command, `--version` is that command's (`runs replay --version V`, `lineage --version Y`).
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  const storeOptions = (c: Command) => c.option('--db <path>', 'store folder (default: .baton, or `store:` in baton.config.yaml)').option('--config <file>', 'config file (default: baton.config.yaml beside the workflow or here)');

  program
    .command('validate')
    .description('check workflow documents; prints every problem with file:line:column')
    .argument('<files...>')
    .option('--config <file>')
    .action(async (files: string[], o: StoreOpts) => {
      let bad = 0;
      for (const f of files) {
        try {
          const src = readSource(f);
          const config = findConfig(o.config, [dirname(resolve(f))]);
          const functions = config.functions.length ? new Set(Object.keys(await loadFunctions(config.functions))) : undefined;
          // Services are always checked against the config: no config means no services.
          const services = new Map(config.services.map((c) => [c.name, c]));
          const r = compileWorkflow(src.value, { source: src, functions, services: { get: (n) => services.get(n), names: () => [...services.keys()] }, policies: config.policies });
          for (const p of r.problems) process.stderr.write(`${formatProblem(p)}\n`);
          const warnings = r.problems.filter((p) => p.severity === 'warning').length;
          const errors = r.problems.length - warnings;
          const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
          if (!r.workflow) {
            bad++;
            process.stderr.write(`✗ ${f}: ${plural(errors, 'problem')}${warnings ? `, ${plural(warnings, 'warning')}` : ''}\n`);
          } else process.stdout.write(`✓ ${f}: valid (${r.workflow.name}, ${r.workflow.order.length} steps${warnings ? `, ${plural(warnings, 'warning')}` : ''})\n`);
        } catch (e) {
          bad++;
          reportError(e);
        }
      }
      process.exitCode = bad ? 2 : 0;
    });

  storeOptions(
    program
      .command('run')
      .description('run a workflow file (or a registered one: name, name@production, a version id) and print its result')
      .argument('<file>')
      .option('-i, --input <json|@file|file>', 'run input: JSON text, @file.json or a file path')
      .option('--json', 'print only the final result as JSON (for machines)')
      .option('--id <runId>', 'run id (starting the same id twice is harmless)')
      .option('--budget <usd>', 'the most this run may spend on model calls, in USD (overrides the workflow\'s budget)')
      .option('--namespace <ns>', 'register the workflow in this namespace (a team) and run it there'),
  ).action(async (file: string, o: StoreOpts & { input?: string; json?: boolean; id?: string; budget?: string; namespace?: string }) => {
    // `name@production` (or a name / version id that is not a file): a registered version, not a document.
    const registered = !existsSync(file) && !/\.(ya?ml|json)$/i.test(file);
    // Document and input problems are the user's to fix: report them before touching the store.
    if (!registered) readSource(file);
    const input = parseInput(o.input);
    const budget = o.budget === undefined ? undefined : Number(o.budget);
    if (budget !== undefined && !(budget > 0)) throw new BatonError('BATON_USAGE', { detail: `--budget must be a positive number of USD, got "${o.budget}".` });
    const baton = await openBaton(o, registered ? [] : [dirname(resolve(file))]);
    try {
      const version = registered
        ? { ...(await baton.store.getVersion(await baton.registry.resolve(file, o.namespace)))!, warnings: [] }
        : await baton.registerFile(file, { namespace: o.namespace });
      for (const p of version.warnings) process.stderr.write(`${formatProblem(p)}\n`);
      const wf = await baton.registry.get(version.versionId);
      const view = o.json ? undefined : new LiveView(process.stdout, `${wf.name} ${version.versionId.split('@')[1]}`, wf.order);
      let runId: string | undefined;
      const buffered: Parameters<LiveView['update']>[0][] = [];
      baton.on('step', (e) => {
        if (!view) return;
        if (runId === undefined) buffered.push(e);
        else if (e.runId === runId) view.update(e);
      });
      runId = await baton.start(version, input, { id: o.id, budget, namespace: o.namespace });
      view?.start(runId);
      for (const e of buffered) if (e.runId === runId) view?.update(e);
      const result = await baton.wait(runId);
      view?.stop();
      printResult(result, Boolean(o.json));
      process.exitCode = result.status === 'completed' ? 0 : 1;
    } finally {
      await baton.close();
    }
  });

  const runs = program.command('runs').description('inspect and control runs');
  storeOptions(runs.command('list').description('recent runs, newest first').option('--status <status>', 'filter by status').option('--workflow <name>').option('--limit <n>', 'how many', '20').option('--json')).action(
    async (o: StoreOpts & { status?: string; workflow?: string; limit: string; json?: boolean }) => {
      const baton = await openBaton(o, [], false);
      try {
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new BatonError('BATON_USAGE', { detail: `--limit must be a positive whole number, got "${o.limit}".` });
        const list = await baton.listRuns({ status: o.status ? (o.status.split(',') as RunStatus[]) : undefined, workflow: o.workflow, limit });
        if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        else printRunList(list);
      } finally {
        await baton.close();
      }
    },
  );
  storeOptions(runs.command('show').description("a run's steps, outputs and event history").argument('<runId>').option('--json')).action(async (runId: string, o: StoreOpts & { json?: boolean }) => {
    const baton = await openBaton(o, [], false);
    try {
      // Sensitive fields stay `***` here: `baton audit export --reveal` shows them, on the record.
      const { present, presentEvents } = await import('../audit/redaction.js');
      const raw = await baton.getRun(runId);
      const run = { ...raw, input: present(raw.input), output: present(raw.output) };
      const steps = (await baton.getSteps(runId)).map((s) => ({ ...s, output: present(s.output) }));
      const events = presentEvents(await baton.getEvents(runId));
      const calls = await baton.store.getModelCalls(runId);
      if (o.json) process.stdout.write(`${JSON.stringify({ run, steps, events, model_calls: calls }, null, 2)}\n`);
      else printRunDetail(run, steps, events, calls);
    } finally {
      await baton.close();
    }
  });
  for (const action of ['pause', 'cancel'] as const) {
    storeOptions(runs.command(action).description(`${action} a run`).argument('<runId>')).action(async (runId: string, o: StoreOpts) => {
      const baton = await openBaton(o, [], false);
      try {
        await baton[action](runId);
        process.stdout.write(`${action === 'pause' ? 'paused' : 'cancelled'} ${runId}\n`);
      } finally {
        await baton.close();
      }
    });
  }
  storeOptions(runs.command('signal').description('wake the steps of one run that wait for an event (whatever their key); refused if the run has ended or is not waiting for it')
    .argument('<runId>').argument('<event>', "the wait step's `event`").option('--data <json>', 'payload', '{}')).action(async (runId: string, event: string, o: StoreOpts & { data: string }) => {
    const baton = await openBaton(o, [], false);
    try {
      const r = await baton.signalRun(runId, event, parseInput(o.data, '--data'));
      process.stdout.write(`signalled ${runId}: woke ${r.woken.join(', ')}\n`);
    } finally {
      await baton.close();
    }
  });
  storeOptions(
    runs
      .command('retry')
      .description('retry a failed or cancelled run: what did not finish or failed runs again (with what depends on it), finished steps keep their outputs; then run it here to its end')
      .argument('<runId>')
      .option('--from <step>', 'also re-run this step and everything downstream of it, even if they succeeded')
      .option('--detach', 'only put the run back to work and print its state; a worker (`baton serve`, `baton worker`, `baton resume`) runs it')
      .option('--json', 'print only the final result as JSON (for machines)'),
  ).action(async (runId: string, o: StoreOpts & { from?: string; detach?: boolean; json?: boolean }) => {
    // Detached: no worker here. Otherwise this process runs the retried steps, as `baton resume` does.
    const baton = await openBaton(o, [], !o.detach);
    try {
      const run = await baton.retry(runId, { from: o.from, by: whoAmI() });
      const retried = (await baton.getEvents(runId)).filter((e) => e.type === 'run.retried').at(-1)?.data as { steps?: string[]; items?: string[] } | undefined;
      const again = [...(retried?.steps ?? []), ...(retried?.items ?? [])];
      if (!o.json) process.stdout.write(`retried ${runId}${o.from ? ` from ${o.from}` : ''}: ${run.status}; re-running ${again.length ? again.join(', ') : 'no step (the run ends with its recorded outputs)'}\n`);
      // A queued run starts when an earlier run with its concurrency key ends: nothing to drive here now.
      if (o.detach || run.status === 'queued') {
        if (o.json) process.stdout.write(`${JSON.stringify({ run_id: run.id, status: run.status, rerun: again }, null, 2)}\n`);
        else if (run.status === 'queued') process.stdout.write(`it waits behind another run with its concurrency key; any worker runs it then\n`);
        return;
      }
      const result = await waitActive(baton, runId, 0);
      if (!TERMINAL_RUN_STATES.has(result.status)) {
        // Parked on an event, an approval or a far timer: durable, and any worker continues it.
        if (o.json) process.stdout.write(`${JSON.stringify({ run_id: result.id, status: result.status }, null, 2)}\n`);
        else process.stdout.write(`run ${result.id} is ${result.status}; any worker (or \`baton resume\`) continues it\n`);
        return;
      }
      printResult(result, Boolean(o.json));
      process.exitCode = result.status === 'completed' ? 0 : 1;
    } finally {
      await baton.close();
    }
  });
  storeOptions(
    runs
      .command('replay')
      .description("re-execute a finished run against a workflow version with its recorded model, HTTP and task outputs (nothing is called), and show where the version's decisions differ")
      .argument('<runId>')
      .option('--version <version>', 'version id, or workflow name for its latest version (default: the run\'s own version)')
      .option('--from <step>', 'fork: keep the recorded outputs of the steps before this one, replay it and what follows')
      .option('--live', 'call for real the steps whose input has no recording (default: the replay fails naming the step)')
      .option('--json', 'print the report as JSON'),
  ).action(async (runId: string, o: StoreOpts & { version?: string; from?: string; live?: boolean; json?: boolean }) => {
    // The replay runs in this process: it holds the recordings its steps read.
    const baton = await openBaton(o, [], true);
    // Ctrl-C (or SIGTERM) stops the replay: its run is cancelled, saying why, instead of being
    // left running with no process holding its recordings.
    const interrupted = new AbortController();
    const stop = (sig: NodeJS.Signals) => {
      interrupted.abort(`baton runs replay was interrupted (${sig})`);
      baton.wakeWaiters(); // the replay's wait looks at the signal now
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const report = await baton.replay(runId, { version: o.version, from: o.from, live: o.live, signal: interrupted.signal });
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printReplay(report);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await baton.close();
    }
  });
  storeOptions(runs.command('unpause').description('let a paused run continue (then `baton resume` or any worker runs it)').argument('<runId>')).action(async (runId: string, o: StoreOpts) => {
    const baton = await openBaton(o, [], false);
    try {
      await baton.resume(runId);
      process.stdout.write(`unpaused ${runId}\n`);
    } finally {
      await baton.close();
    }
  });

  storeOptions(
    program
      .command('resume')
      .description('continue every unfinished run in the store (after a crash or a restart) and wait for them')
      .option('--timeout <duration>', 'stop waiting after this long (runs stay durable)', '0'),
  ).action(async (o: StoreOpts & { timeout: string }) => {
    // Plain seconds or a duration (5m); anything else is refused, not taken as no limit.
    let deadline: number;
    try {
      deadline = parseDuration(/^\d+(\.\d+)?$/.test(o.timeout) ? `${o.timeout}s` : o.timeout);
    } catch {
      throw new BatonError('BATON_USAGE', { detail: `--timeout "${o.timeout}" is not a duration; write e.g. 90s or 5m (0: no limit).` });
    }
    const baton = await openBaton(o);
    try {
      const unfinished = (await baton.listRuns({ status: ['running', 'pending', 'waiting'], limit: 100_000 })).map((r) => r.id);
      if (unfinished.length === 0) {
        process.stdout.write('nothing to resume: no unfinished runs\n');
        return;
      }
      process.stdout.write(`resuming ${unfinished.length} unfinished run${unfinished.length === 1 ? '' : 's'}…\n`);
      const results = await Promise.all(unfinished.map((id) => waitActive(baton, id, deadline)));
      const by: Record<string, number> = {};
      for (const r of results) by[r.status] = (by[r.status] ?? 0) + 1;
      process.stdout.write(`${Object.entries(by).map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
      process.exitCode = results.some((r) => r.status === 'failed') ? 1 : 0;
    } finally {
      await baton.close();
    }
  });

  storeOptions(
    program
      .command('cost')
      .description('model calls, tokens and cost, totalled by service, workflow, run or model')
      .option('--by <what>', 'service | workflow | run | model', 'service')
      .option('--since <duration>', 'only calls in this last stretch of time, e.g. 24h or 7d')
      .option('--workflow <name>', 'only this workflow')
      .option('--run <runId>', 'only this run')
      .option('--json'),
  ).action(async (o: StoreOpts & { by: string; since?: string; workflow?: string; run?: string; json?: boolean }) => {
    if (!['service', 'workflow', 'run', 'model'].includes(o.by)) throw new BatonError('BATON_USAGE', { detail: `--by must be service, workflow, run or model, got "${o.by}".` });
    let since: number | undefined;
    if (o.since !== undefined) {
      try {
        since = Date.now() - parseDuration(o.since);
      } catch {
        throw new BatonError('BATON_USAGE', { detail: `--since "${o.since}" is not a duration; write e.g. 30m, 24h or 7d.` });
      }
    }
    const baton = await openBaton(o, [], false);
    try {
      const lines = await baton.store.costReport({ by: o.by as 'service', since, workflow: o.workflow, runId: o.run });
      if (o.json) process.stdout.write(`${JSON.stringify(lines, null, 2)}\n`);
      else printCost(o.by, lines);
    } finally {
      await baton.close();
    }
  });

  addGovernanceCommands(program, { open: (o) => openBaton(o, [], false), storeOptions, whoAmI });

  storeOptions(
    program
      .command('worker')
      .description('run a worker only: claim and execute steps from the store until stopped (SIGTERM/SIGINT: finish or hand back what it holds)')
      .option('--concurrency <n>', 'step attempts in flight at once', '32')
      .option('--grace <duration>', 'how long a stop waits for attempts in flight before handing them back', '20s')
      .option('--log-level <level>', `JSON log lines on stdout: ${LOG_LEVELS.join(', ')}`, 'info')
      .option('--metrics-port <n>', 'serve GET /metrics (Prometheus) on this port, without API keys')
      .option('--strict-egress', 'refuse requests of http steps, emit sinks and notify URLs to loopback and private addresses (as a `network:` section would), unless baton.config.yaml has a network: section')
      .option('--metrics-host <host>', 'address of the metrics port', '127.0.0.1'),
  ).action(async (o: StoreOpts & { concurrency: string; grace: string; logLevel: string; metricsPort?: string; metricsHost: string; strictEgress?: boolean }) => {
    const level = logLevel(o.logLevel);
    const metricsPort = portOption('--metrics-port', o.metricsPort);
    const concurrency = Number(o.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new BatonError('BATON_USAGE', { detail: `--concurrency must be a positive whole number, got "${o.concurrency}".` });
    let graceMs: number;
    try {
      graceMs = parseDuration(o.grace);
    } catch {
      throw new BatonError('BATON_USAGE', { detail: `--grace "${o.grace}" is not a duration; write e.g. 20s.` });
    }
    const log = createLogger({ level, base: { component: 'worker' } });
    const baton = await openBaton(o, [], { concurrency }, false, true, { network: o.strictEgress ? {} : undefined, onInternalError: (e, where) => log.error({ where, err: { message: (e as Error)?.message, stack: (e as Error)?.stack } }, 'internal error') });
    logLifecycle(baton, log.child({ worker_id: baton.workerId }));
    process.stderr.write(`baton worker ${baton.workerId} on ${storeShown(baton)}, ${concurrency} at a time\n`);
    const metricsServer = metricsPort === undefined ? undefined : await serveMetrics(baton, metricsPort, o.metricsHost);
    if (metricsServer) process.stderr.write(`baton worker: metrics on http://${o.metricsHost}:${(metricsServer.address() as { port: number }).port}/metrics\n`);
    // The engine's polls are unref'd timers (an embedded Baton must not hold its host process
    // open); on the embedded store nothing else is pending while idle, so the worker holds
    // itself open until it is told to stop.
    const keepAlive = setInterval(() => {}, 2 ** 30);
    const signal = await new Promise<NodeJS.Signals>((res) => {
      process.once('SIGTERM', () => res('SIGTERM'));
      process.once('SIGINT', () => res('SIGINT'));
    });
    clearInterval(keepAlive);
    process.stderr.write(`baton worker: ${signal}, finishing what it holds (up to ${formatDuration(graceMs)})\n`);
    metricsServer?.close();
    await baton.close({ graceMs });
    process.stderr.write('baton worker: stopped\n');
    // Attempts still running past the grace period were handed back (another worker runs them
    // again); their timers and sockets must not keep this process alive.
    process.exit(0);
  });

  storeOptions(
    program
      .command('serve')
      .description('run the HTTP gateway, and a worker unless --no-worker (SIGTERM/SIGINT: stop accepting, finish or hand back)')
      .option('--port <n>', 'port to listen on (0: any free port)', '8080')
      .option('--host <host>', 'address to listen on', '127.0.0.1')
      .option('--allowed-host <name...>', 'a name clients reach it by besides loopback (a reverse proxy\'s public name): Host and browser Origin')
      .option('--no-worker', 'serve the API only; separate `baton worker` processes run the steps')
      .option('--concurrency <n>', 'step attempts in flight at once in this process', '32')
      .option('--grace <duration>', 'how long a stop waits for attempts in flight', '20s')
      .option('--auth <mode>', 'auto (keys required once any exists), required, or off', 'auto')
      .option('--log-level <level>', `JSON log lines on stdout: ${LOG_LEVELS.join(', ')}`, 'info')
      .option('--metrics-port <n>', 'also serve GET /metrics on this port, without API keys (for a Prometheus on a private network)')
      .option('--strict-egress', 'refuse requests of http steps, emit sinks and notify URLs to loopback and private addresses (as a `network:` section would), unless baton.config.yaml has a network: section')
      .option('--metrics-host <host>', 'address of the metrics port', '127.0.0.1'),
  ).action(async (o: StoreOpts & { port: string; host: string; allowedHost?: string[]; worker: boolean; concurrency: string; grace: string; auth: string; logLevel: string; metricsPort?: string; metricsHost: string; strictEgress?: boolean }) => {
    const level = logLevel(o.logLevel);
    const metricsPort = portOption('--metrics-port', o.metricsPort);
    if (!['auto', 'required', 'off'].includes(o.auth)) throw new BatonError('BATON_USAGE', { detail: `--auth must be auto, required or off, got "${o.auth}".` });
    const port = Number(o.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BatonError('BATON_USAGE', { detail: `--port must be 0-65535, got "${o.port}".` });
    const concurrency = Number(o.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new BatonError('BATON_USAGE', { detail: `--concurrency must be a positive whole number, got "${o.concurrency}".` });
    const graceMs = parseDuration(o.grace);
    const log = createLogger({ level, base: { component: 'serve' } });
    const baton = await openBaton(o, [], o.worker ? { concurrency } : false, true, true, { network: o.strictEgress ? {} : undefined, onInternalError: (e, where) => log.error({ where, err: { message: (e as Error)?.message, stack: (e as Error)?.stack } }, 'internal error') });
    logLifecycle(baton, log.child({ worker_id: baton.workerId }));
    const { createGateway } = await import('../gateway/server.js');
    // On loopback only loopback names are answered (a page reaching it by another name is DNS
    // rebinding), plus the names --allowed-host gives (a reverse proxy's public name), which
    // also count as the gateway's own origin; elsewhere any Host unless names are given.
    const { LOOPBACK_HOSTS } = await import('../gateway/browser-guard.js');
    const extra = o.allowedHost ?? [];
    const loopback = LOOPBACK_HOSTS.includes(o.host.replace(/^\[|\]$/g, '').toLowerCase());
    const allowedHosts = loopback || extra.length > 0 ? [...LOOPBACK_HOSTS, ...extra] : undefined;
    const app = await createGateway(baton, { auth: o.auth as 'auto', logger: log, retention: findConfig(o.config, []).retention, allowedHosts });
    const address = await app.listen({ port, host: o.host });
    process.stdout.write(`baton serve: ${address} on ${storeShown(baton)}${o.worker ? `, worker ${baton.workerId}` : ', API only'}\n`);
    // A webhook whose secret variable this gateway lacks refuses every delivery: said now, not
    // first found when a delivery is refused. Only said: a stored version this Baton cannot
    // compile (or a store that does not answer) must not leave a gateway that serves without
    // its metrics port or its stop on SIGTERM.
    try {
      for (const u of unsetWebhookSecrets(await baton.registry.listening())) {
        const path = hookPath(u as Listening<WebhookTrigger>);
        const err = new BatonError('BATON_WEBHOOK_SECRET_MISSING', { path, env: u.variable });
        log.error({ path, workflow: u.workflow, env: u.variable, code: err.code }, err.message);
      }
    } catch (e) {
      log.error({ code: (e as BatonError).code, err: { message: (e as Error).message } }, 'webhook secrets not checked: the latest workflow versions could not be read');
    }
    const metricsServer = metricsPort === undefined ? undefined : await serveMetrics(baton, metricsPort, o.metricsHost);
    if (metricsServer) process.stdout.write(`baton serve: metrics on http://${o.metricsHost}:${(metricsServer.address() as { port: number }).port}/metrics\n`);
    const signal = await new Promise<NodeJS.Signals>((res) => {
      process.once('SIGTERM', () => res('SIGTERM'));
      process.once('SIGINT', () => res('SIGINT'));
    });
    process.stderr.write(`baton serve: ${signal}, stopping\n`);
    metricsServer?.close();
    await app.close();
    await baton.close({ graceMs });
    process.exit(0);
  });

  // Human approvals. On an embedded (or directly opened) store the CLI acts as a local admin
  // named by --as or the OS user; the gateway, by contrast, checks each API key's role and name.
  const approvals = program.command('approvals').description('human approvals (approval steps): the open ones, one in full');
  storeOptions(approvals.command('list').description('open approvals (pending or escalated), newest first')
    .option('--status <status>', 'pending | escalated | approved | rejected | expired | cancelled | all').option('--run <runId>', 'only this run').option('--json')).action(
    async (o: StoreOpts & { status?: string; run?: string; json?: boolean }) => {
      const baton = await openBaton(o, [], false);
      try {
        const status = o.status === 'all' ? undefined : ((o.status ?? 'pending') as ApprovalViewStatus);
        if (status !== undefined && !APPROVAL_STATUSES.includes(status)) throw new BatonError('BATON_USAGE', { detail: `--status must be one of ${APPROVAL_STATUSES.join(', ')} or all; got "${status}".` });
        const list = await baton.approvals.list({ status, runId: o.run });
        if (o.json) process.stdout.write(`${JSON.stringify(list.map(approvalBody), null, 2)}\n`);
        else if (list.length === 0) process.stdout.write(`no ${o.status === 'all' ? '' : `${o.status ?? 'open'} `}approvals\n`);
        else {
          for (const a of list) {
            const due = a.deadlineAt === undefined ? 'no deadline' : `due ${new Date(a.deadlineAt).toISOString()}`;
            process.stdout.write(`${a.id}  ${a.status.padEnd(9)}  ${a.workflow}/${a.stepKey}  run ${a.runId}  ${due}\n    ${a.summary ?? '(no summary)'}\n`);
          }
        }
      } finally {
        await baton.close();
      }
    },
  );
  storeOptions(approvals.command('show').description('one approval: evidence, summary, form, answer').argument('<id>')).action(async (id: string, o: StoreOpts) => {
    const baton = await openBaton(o, [], false);
    try {
      process.stdout.write(`${JSON.stringify(approvalBody(await baton.approvals.get(id)), null, 2)}\n`);
    } finally {
      await baton.close();
    }
  });
  const decideCommand = (decision: 'approve' | 'reject') => {
    const c = program.command(decision).description(decision === 'approve'
      ? 'approve an approval (with the form\'s fields as --data); the run continues in the process working on it (run, serve, worker, resume)'
      : 'reject an approval; the step gets decision reject (or fails, with reject_fails)').argument('<id>');
    if (decision === 'reject') c.requiredOption('--reason <text>', 'why (recorded in the history)');
    else c.option('--reason <text>', 'why (recorded in the history)');
    storeOptions(c.option('--data <json>', 'the form\'s fields as JSON, e.g. \'{"amount": 400}\'').option('--as <name>', 'who decides (default: the OS user); the CLI acts as a local admin')).action(
      async (id: string, o: StoreOpts & { reason?: string; data?: string; as?: string }) => {
        let data: unknown;
        if (o.data !== undefined) {
          data = parseInput(o.data, '--data');
          if (!data || typeof data !== 'object' || Array.isArray(data)) throw new BatonError('BATON_USAGE', { detail: '--data must be a JSON object of the form\'s fields.' });
        }
        const baton = await openBaton(o, [], false);
        try {
          const name = o.as ?? whoAmI().replace(/^cli /, '');
          const a = await baton.approvals.decide(id, { decision, reason: o.reason, data: data as Record<string, unknown> | undefined }, { name, role: 'admin' });
          process.stdout.write(`${a.status} ${a.id} (run ${a.runId}, step ${a.stepKey}) by ${a.decidedBy}\n`);
        } finally {
          await baton.close();
        }
      },
    );
  };
  decideCommand('approve');
  decideCommand('reject');

  const keys = program.command('keys').description('API keys of the gateway (shown once at creation; stored hashed)');
  storeOptions(
    keys.command('create')
      .description('create a key; prints it once')
      .requiredOption('--role <role>', 'admin | operator | approver | viewer')
      .option('--namespace <ns...>', 'namespaces it reaches (* for all)', ['default'])
      .option('--name <name>', 'what it is for', 'unnamed')
      .option('--rate <perMinute>', 'requests a minute', '600'),
  ).action(async (o: StoreOpts & { role: string; namespace: string[]; name: string; rate: string }) => {
    const rate = Number(o.rate);
    if (!Number.isInteger(rate) || rate < 1) throw new BatonError('BATON_USAGE', { detail: `--rate must be a positive whole number, got "${o.rate}".` });
    const baton = await openBaton(o, [], false);
    try {
      const { createApiKey } = await import('../gateway/auth.js');
      const { key, record } = await createApiKey(baton.store, { name: o.name, role: o.role as 'admin', namespaces: o.namespace, ratePerMinute: rate });
      process.stdout.write(`${key}\n`);
      process.stderr.write(`key ${record.id} (${record.role}, namespaces ${record.namespaces.join(',')}): store it now, it is not shown again\n`);
    } finally {
      await baton.close();
    }
  });
  storeOptions(keys.command('list').description('keys, without their secrets').option('--json')).action(async (o: StoreOpts & { json?: boolean }) => {
    const baton = await openBaton(o, [], false);
    try {
      const list = (await baton.store.listApiKeys()).map(({ hash: _hash, ...k }) => k);
      if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else for (const k of list) process.stdout.write(`${k.id}  ${k.role.padEnd(8)}  ${namespaceList(k.namespaces).padEnd(16)}  ${k.ratePerMinute}/min  ${k.revokedAt ? 'revoked' : 'active'}  ${k.name}\n`);
    } finally {
      await baton.close();
    }
  });
  storeOptions(keys.command('revoke').description('revoke a key at once').argument('<id>')).action(async (id: string, o: StoreOpts) => {
    const baton = await openBaton(o, [], false);
    try {
      if (!(await baton.store.revokeApiKey(id, Date.now()))) throw new BatonError('BATON_USAGE', { detail: `no active key with id "${id}"; see \`baton keys list\`.` });
      process.stdout.write(`revoked ${id}\n`);
    } finally {
      await baton.close();
    }
  });

  storeOptions(
    program
      .command('register')
      .description('register a workflow version without running it (its cron schedules start firing in `baton serve` / `baton worker`)')
      .argument('<file>')
      .option('--namespace <ns>', 'register the workflow in this namespace (a team)'),
  ).action(async (file: string, o: StoreOpts & { namespace?: string }) => {
    readSource(file);
    const baton = await openBaton(o, [dirname(resolve(file))], false);
    try {
      const v = await baton.registerFile(file, { namespace: o.namespace });
      for (const p of v.warnings) process.stderr.write(`${formatProblem(p)}\n`);
      process.stdout.write(`${v.versionId}\n`);
      for (const s of (await baton.schedules.list()).filter((x) => x.versionId === v.versionId)) {
        process.stderr.write(`schedule ${s.id}: ${s.cron} (${s.timezone}), next fire ${s.nextFireAt ? new Date(s.nextFireAt).toISOString() : 'never'}${s.paused ? ', paused' : ''}\n`);
      }
    } finally {
      await baton.close();
    }
  });

  const schedules = program.command('schedules').description('cron schedules of registered workflows (fired by `baton serve` and `baton worker`)');
  storeOptions(schedules.command('list').description('every schedule: cron, time zone, next and last fire, paused, last error').option('--json')).action(async (o: StoreOpts & { json?: boolean }) => {
    const baton = await openBaton(o, [], false);
    try {
      const list = await baton.schedules.list();
      if (o.json) process.stdout.write(`${JSON.stringify(list.map(({ leaseOwner: _o, leaseUntil: _u, ...s }) => s), null, 2)}\n`);
      else if (list.length === 0) process.stdout.write('no schedules: add a `triggers: [{ schedule: { cron: ... } }]` entry to a workflow and register it\n');
      else printSchedules(list);
    } finally {
      await baton.close();
    }
  });
  for (const action of ['pause', 'resume'] as const) {
    storeOptions(schedules.command(action).description(action === 'pause' ? 'stop a schedule firing' : 'fire again from the next fire after now').argument('<id>')).action(async (id: string, o: StoreOpts) => {
      const baton = await openBaton(o, [], false);
      try {
        const s = await baton.schedules[action](id);
        process.stdout.write(`${action === 'pause' ? 'paused' : `resumed, next fire ${s.nextFireAt ? new Date(s.nextFireAt).toISOString() : 'never'}`} ${id}\n`);
      } finally {
        await baton.close();
      }
    });
  }
  storeOptions(schedules.command('trigger').description('fire a schedule once now (a running worker executes the run)').argument('<id>')).action(async (id: string, o: StoreOpts) => {
    const baton = await openBaton(o, [], false);
    try {
      process.stdout.write(`${await baton.schedules.trigger(id)}\n`);
    } finally {
      await baton.close();
    }
  });

  const audit = program.command('audit').description('tamper-evident history: verify the hash chains, export a run\'s audit report, apply retention');
  storeOptions(audit.command('verify').description('recompute every run\'s event hash chain and the anchor chain; exit 1 naming the first altered or missing event or anchor')
    .argument('[runId]', 'only this run (with its anchors)').option('--json')).action(async (runId: string | undefined, o: StoreOpts & { json?: boolean }) => {
    const baton = await openBaton(o, [], false);
    try {
      const { verifyStore, describeProblem } = await import('../audit/verify.js');
      if (runId) await baton.getRun(runId).catch(async (e: unknown) => {
        // A purged run is gone but verifies through its anchor.
        if (!(await baton.store.listPurged()).some((p) => p.runId === runId)) throw e;
      });
      const r = await verifyStore(baton.store, runId);
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else if (r.ok) {
        process.stdout.write(`OK: ${r.runs} run${r.runs === 1 ? '' : 's'}, ${r.events} events, ${r.anchors} anchor${r.anchors === 1 ? '' : 's'} verified\n`);
        for (const p of r.purged) process.stdout.write(`  ${p.runId}: purged ${p.purgedAt} (${p.mode}), anchor kept\n`);
      } else {
        process.stdout.write(`TAMPERED: ${describeProblem(r.problem!)}\n`);
        for (const p of r.problems.slice(1)) process.stdout.write(`  also: ${describeProblem(p)}\n`);
      }
      if (!r.ok) process.exitCode = 1;
    } finally {
      await baton.close();
    }
  });
  storeOptions(audit.command('export').description('a run\'s self-contained audit report: workflow version, input, steps, model calls, costs, decisions, hash chain (JSON; HTML with --html)')
    .argument('<runId>').option('--out <file>', 'write the JSON here (default: stdout)').option('--html <file>', 'also write a readable one-file HTML report')
    .option('--reveal', 'decrypt sensitive fields (needs BATON_ENCRYPTION_KEY; recorded as an audit.revealed event)')).action(async (runId: string, o: StoreOpts & { out?: string; html?: string; reveal?: boolean }) => {
    const baton = await openBaton(o, [], false);
    try {
      const { exportForReader } = await import('../audit/redaction.js');
      const { renderAuditHtml } = await import('../audit/export.js');
      const report = await exportForReader(baton, runId, { reveal: !!o.reveal, by: `cli:${userInfo().username}` });
      const text = `${JSON.stringify(report, null, 2)}\n`;
      const { writeFileSync } = await import('node:fs');
      if (o.out) writeFileSync(o.out, text);
      else if (!o.html) process.stdout.write(text);
      if (o.html) writeFileSync(o.html, renderAuditHtml(report));
      if (o.out || o.html) process.stderr.write(`${report.chain.summary}\n`);
      if (!report.chain.verification.ok) process.exitCode = 1;
    } finally {
      await baton.close();
    }
  });
  storeOptions(audit.command('purge').description('remove (or archive, then remove) ended runs older than their retention policy; anchors are kept')
    .option('--dry-run', 'list what would be removed, change nothing').option('--days <n>', 'default policy for workflows without retention: (overrides the config)')
    .option('--mode <mode>', 'purge | archive, with --days').option('--archive-dir <dir>', 'where archived runs\' reports go').option('--json')).action(async (o: StoreOpts & { dryRun?: boolean; days?: string; mode?: string; archiveDir?: string; json?: boolean }) => {
    const config = findConfig(o.config, []);
    let policy = config.retention ? { days: config.retention.days, mode: config.retention.mode } : undefined;
    if (o.days !== undefined) {
      const days = Number(o.days);
      if (!(days > 0)) throw new BatonError('BATON_USAGE', { detail: `--days must be a number of days above 0, got "${o.days}".` });
      if (o.mode !== undefined && o.mode !== 'purge' && o.mode !== 'archive') throw new BatonError('BATON_USAGE', { detail: `--mode must be purge or archive, got "${o.mode}".` });
      policy = { days, mode: (o.mode as 'purge' | 'archive' | undefined) ?? 'purge' };
    } else if (o.mode !== undefined) throw new BatonError('BATON_USAGE', { detail: '--mode goes with --days.' });
    const baton = await openBaton(o, [], false);
    try {
      const { purgeExpired } = await import('../audit/retention.js');
      const r = await purgeExpired(baton, { defaultPolicy: policy, archiveDir: o.archiveDir ?? config.retention?.archiveDir, dryRun: o.dryRun });
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else {
        for (const c of r.candidates) process.stdout.write(`${r.dryRun ? 'would ' : ''}${c.mode} ${c.runId} (${c.workflow}, ended ${c.finishedAt}, ${c.policy} policy)${c.archive ? ` -> ${c.archive}` : ''}\n`);
        process.stdout.write(r.dryRun ? `${r.candidates.length} run(s) would be removed (dry run: nothing changed)\n` : `${r.purged.length} run(s) removed; their anchors are kept\n`);
      }
    } finally {
      await baton.close();
    }
  });

  program
    .command('migrate')
    .description('bring a PostgreSQL store\'s schema up to this version of Baton (workers also do it when they start)')
    .requiredOption('--db <url>', 'postgres://user@host:5432/database')
    .action(async (o: { db: string }) => {
      if (!isPostgresUrl(o.db)) throw new BatonError('BATON_USAGE', { detail: '--db must be a postgres:// URL (the embedded SQLite store migrates itself when opened).' });
      const { migrate } = await import('../store/postgres/migrations.js');
      const r = await migrate(o.db);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  program
    .command('fake-vendor')
    .description('serve a fake model vendor (OpenAI and Anthropic wire protocols) with scripted faults, for demos and tests')
    .helpOption(false)
    .allowUnknownOption()
    .argument('[options...]', '--port N, --fault model=500|503|429|timeout|html|malformed|low-confidence|empty|stream-cut|stream-stall[:times], --fault-rate model=kind:0.5, --latency model=ms')
    .action(async (args: string[]) => {
      const { main: serve } = await import('../testing/fake-vendor.js');
      let vendor;
      try {
        vendor = await serve(args, (line) => process.stdout.write(`${line}\n`));
      } catch (e) {
        throw new BatonError('BATON_USAGE', { detail: (e as Error).message });
      }
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await vendor.close();
    });

  storeOptions(
    program
      .command('event')
      .description('deliver an external event to the step waiting for it (or buffer it for a wait with a lookback)')
      .argument('<name>', 'event name (the wait step\'s `event`)')
      .argument('<key>', 'correlation key (the wait step\'s `key` value)')
      .option('--data <json>', 'payload', '{}')
      .option('--id <id>', 'event id: delivering the same id again changes nothing'),
  ).action(async (name: string, key: string, o: StoreOpts & { data: string; id?: string }) => {
    const baton = await openBaton(o, [], false);
    try {
      const r = await baton.sendEvent(name, key, parseInput(o.data, '--data'), { eventId: o.id });
      if (r.duplicate) {
        process.stdout.write(`event ${o.id} was delivered before: nothing changed\n`);
        return;
      }
      process.stdout.write(r.delivered
        ? `delivered to ${r.delivered} waiting step\n`
        : 'no step is waiting: buffered for a wait that arms with a lookback (event steps with `lookback:`)\n');
    } finally {
      await baton.close();
    }
  });
  return program;
}

/**
 * A key's namespaces, comma-separated; a malformed one (from a key created before they were
 * checked: "team-a,team-b", "team a") is quoted, so that it does not read as several.
 */
function namespaceList(namespaces: string[]): string {
  return namespaces.map((ns) => (ns === '*' || isNamespace(ns) ? ns : JSON.stringify(ns))).join(',');
}

/** Who is asking, for the run's history: the CLI knows only the local user. */
function whoAmI(): string {
  try {
    return `cli ${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** Waits while a run is making progress; a run parked on an event or a far timer is reported as waiting. */
async function waitActive(baton: Baton, runId: string, timeoutMs: number): Promise<RunResult> {
  const start = Date.now();
  for (;;) {
    const r = await baton.wait(runId, { timeoutMs: 1000 });
    if (TERMINAL_RUN_STATES.has(r.status) || r.status === 'waiting' || r.status === 'paused') return r;
    if (timeoutMs && Date.now() - start > timeoutMs) return r;
  }
}

function printResult(raw: RunResult, json: boolean): void {
  // Sensitive output fields print as *** (the store holds them sealed).
  const r = { ...raw, output: present(raw.output) };
  if (json) {
    process.stdout.write(`${JSON.stringify({ run_id: r.id, status: r.status, output: r.output ?? null, error: r.error ?? null, cost: r.cost }, null, 2)}\n`);
    return;
  }
  const took = r.finishedAt ? formatDuration(r.finishedAt - r.createdAt) : '';
  const cost = r.cost > 0 ? ` · $${formatUsd(r.cost)}${r.budget !== undefined ? ` of $${formatUsd(r.budget)}` : ''}` : '';
  if (r.status === 'completed') {
    process.stdout.write(`\n${paint("32", "✓ completed")} in ${took}${cost} · run ${r.id}\n`);
    process.stdout.write(`${JSON.stringify(r.output ?? null, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${paint("31", `✗ ${r.status}`)}${took ? ` after ${took}` : ''}${cost} · run ${r.id}\n`);
    if (r.error) process.stdout.write(`${r.error.code}: ${r.error.message}\n`);
    process.stdout.write(`see the history with: baton runs show ${r.id}\n`);
  }
}

function reportError(e: unknown): void {
  if (e instanceof BatonError) {
    if (e.problems.length) {
      for (const p of e.problems) process.stderr.write(`${formatProblem(p)}\n`);
      process.stderr.write(`error[${e.code}]: ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} in the document\n`);
    } else process.stderr.write(`error[${e.code}]: ${e.message}\n`);
    return;
  }
  process.stderr.write(`internal error: ${(e as Error)?.stack ?? String(e)}\n`);
}

export async function main(argv: string[]): Promise<number> {
  // A reader that stops early (`baton runs show ID | head -1`) closes the pipe: Node ignores
  // SIGPIPE, and a write then fails with EPIPE, unhandled. Stop quietly instead, as Unix tools
  // do, with the exit code so far (a run this command drove is durable; a worker continues it).
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit();
    });
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2;
    }
    reportError(e);
    if (e instanceof BatonError) return USER_CODES.has(e.code) ? 2 : 1;
    return 1;
  }
}

/** Colours only for a terminal: piped output stays plain text. */
function paint(code: string, text: string): string {
  return process.stdout.isTTY ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/**
 * The store a long-running command works on, as the user would name it again: an embedded
 * store by its folder (what --db takes; its baton.db file is refused there), PostgreSQL by URL.
 */
function storeShown(baton: Baton): string {
  return baton.store.kind === 'sqlite' ? `sqlite store ${dirname(baton.store.location)} (--db)` : `${baton.store.kind} ${baton.store.location}`;
}
