/**
 * `baton workflows list|show|diff|promote|history`, `baton services [list]|set-status|history`
 * and `baton lineage`: versions, stages and model governance from the command line (the same
 * operations as the gateway's routes; see src/gateway/governance.ts).
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import type { Baton } from '../engine/engine.js';
import { BatonError } from '../errors.js';
import type { ServiceChange } from '../services/governance.js';
import type { WorkflowDiff } from '../spec/diff.js';
import { parseDuration } from '../util/duration.js';
import { findConfig } from './config.js';
import { printServices, table } from './print.js';

interface StoreOpts {
  db?: string;
  config?: string;
}

export interface CliDeps {
  open(o: StoreOpts): Promise<Baton>;
  storeOptions(c: Command): Command;
  /** Who the user is, for `--by` defaults. */
  whoAmI(): string;
}

const w = (s: string): void => {
  process.stdout.write(s);
};
const iso = (t: number | undefined) => (t === undefined ? '-' : new Date(t).toISOString().replace('.000Z', 'Z'));
const json = (v: unknown): void => w(`${JSON.stringify(v, null, 2)}\n`);

async function withBaton<T>(deps: CliDeps, o: StoreOpts, fn: (b: Baton) => Promise<T>): Promise<T> {
  const b = await deps.open(o);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

/** `7d`, `24h` (that long ago) or an ISO time. */
export function parseSince(v: string): number {
  try {
    return Date.now() - parseDuration(v);
  } catch {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
    throw new BatonError('BATON_USAGE', { detail: `--since "${v}" is neither a duration (30m, 24h, 7d) nor an ISO time.` });
  }
}

export function addGovernanceCommands(program: Command, deps: CliDeps): void {
  const { storeOptions } = deps;
  const wf = program.command('workflows').description('registered workflow versions: list, show, diff, promote through stages, history');

  storeOptions(wf.command('list').description('every version of every workflow (or of one), with the stages it holds').argument('[name]').option('--namespace <ns>').option('--json'))
    .action(async (name: string | undefined, o: StoreOpts & { namespace?: string; json?: boolean }) => withBaton(deps, o, async (b) => {
      const names = name ? [qualify(name, o.namespace)] : [...new Set((await b.store.listVersions()).map((v) => v.name))];
      const all = (await Promise.all(names.map((n) => b.versions(n)))).flat();
      if (name && all.length === 0) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: name });
      if (o.json) return json(all.map((v) => ({ version_id: v.versionId, name: v.name, seq: v.seq, stages: v.stages, source: v.source, created_at: iso(v.createdAt) })));
      if (all.length === 0) return w('no workflows registered (baton register <file>)\n');
      w(`${table([['WORKFLOW', 'VERSION', 'SEQ', 'STAGES', 'REGISTERED', 'SOURCE'], ...all.map((v) => [v.name, v.versionId, String(v.seq), v.stages.join(','), iso(v.createdAt), v.source ?? ''])])}\n`);
    }));

  storeOptions(wf.command('show').description('one version (a version id, name, or name@stage): stages, steps and document').argument('<ref>').option('--namespace <ns>').option('--json'))
    .action(async (ref: string, o: StoreOpts & { namespace?: string; json?: boolean }) => withBaton(deps, o, async (b) => {
      const id = await b.registry.resolve(ref, o.namespace);
      const rec = (await b.store.getVersion(id))!;
      const stages = (await b.versions(rec.name)).find((v) => v.versionId === id)?.stages ?? ['draft'];
      const doc = JSON.parse(rec.document) as { steps: Array<{ id: string; kind: string; service?: string; risk?: string }>; tags?: string[] };
      if (o.json) return json({ version_id: id, name: rec.name, seq: rec.seq, stages, created_at: iso(rec.createdAt), source: rec.source, document: doc });
      w(`${id}\n  workflow   ${rec.name}\n  seq        ${rec.seq}\n  stages     ${stages.join(', ')}\n  registered ${iso(rec.createdAt)}${rec.source ? `\n  source     ${rec.source}` : ''}${doc.tags?.length ? `\n  tags       ${doc.tags.join(', ')}` : ''}\n`);
      w(`${table([['STEP', 'KIND', 'SERVICE', 'RISK'], ...doc.steps.map((s) => [s.id, s.kind, s.service ?? '', s.risk ?? ''])])}\n`);
    }));

  storeOptions(wf.command('diff').description('what changed from version A to B (version ids or name@stage): steps, fields, prompt texts, pinned services').argument('<a>').argument('<b>').option('--namespace <ns>').option('--json'))
    .action(async (a: string, bRef: string, o: StoreOpts & { namespace?: string; json?: boolean }) => withBaton(deps, o, async (b) => {
      const d = await b.diff(a, bRef, { namespace: o.namespace });
      if (o.json) return json(d);
      w(formatDiff(d));
    }));

  storeOptions(wf.command('promote').description('promote a version to a stage (rollback: promote an older version)').argument('<version>').requiredOption('--stage <stage>', 'staging | production')
    .option('--by <name>', 'who promotes (default: your user name)').option('--reason <text>').option('--namespace <ns>'))
    .action(async (version: string, o: StoreOpts & { stage: string; by?: string; reason?: string; namespace?: string }) => withBaton(deps, o, async (b) => {
      const s = await b.promote(version, o.stage, { by: o.by ?? deps.whoAmI(), reason: o.reason, namespace: o.namespace });
      w(`${s.versionId} is now ${s.stage} of ${s.name} (by ${s.by}${s.reason ? `: ${s.reason}` : ''})\n`);
    }));

  storeOptions(wf.command('history').description("a workflow's promotions through stages, oldest first").argument('<name>').option('--namespace <ns>').option('--json'))
    .action(async (name: string, o: StoreOpts & { namespace?: string; json?: boolean }) => withBaton(deps, o, async (b) => {
      const h = await b.stageHistory(qualify(name, o.namespace));
      if (o.json) return json(h);
      if (h.length === 0) return w(`no promotions of ${name} yet: every version is a draft (baton workflows promote <version> --stage staging)\n`);
      w(`${table([['AT', 'STAGE', 'VERSION', 'BY', 'REASON'], ...h.map((r) => [iso(r.at), r.stage, r.versionId, r.by ?? '', r.reason ?? ''])])}\n`);
    }));

  const services = program.command('services').description('model services: provider, model, version, price, owner and governance status (who and why)');
  services.command('list', { isDefault: true }).description('the services in baton.config.yaml with the status in force').option('--db <path>').option('--config <file>').option('--json')
    .action(async (o: StoreOpts & { json?: boolean }) => {
      // Recorded status changes live in the store; without one, the config file says it all.
      const config = findConfig(o.config, []);
      const hasStore = o.db !== undefined || process.env.BATON_DB !== undefined || config.store !== undefined || existsSync('.baton');
      const list = hasStore && config.services.length ? await withBaton(deps, o, (b) => b.serviceList()) : config.services;
      if (o.json) return json(list);
      printServices(list);
    });
  storeOptions(services.command('set-status').description('record a governance status: blocked refuses new runs and registrations using it, deprecated warns')
    .argument('<service>').argument('<status>', 'approved | deprecated | blocked').option('--reason <text>', 'why (required for deprecated and blocked)').option('--by <name>', 'who (default: your user name)'))
    .action(async (service: string, status: string, o: StoreOpts & { reason?: string; by?: string }) => withBaton(deps, o, async (b) => {
      const r = await b.setServiceStatus(service, status, { reason: o.reason, by: o.by ?? deps.whoAmI() });
      w(`${r.service} is now ${r.status}${r.reason ? ` (${r.reason})` : ''}, set by ${r.by} at ${iso(r.at)}\n`);
    }));
  storeOptions(services.command('history').description('recorded status changes, oldest first').argument('[service]').option('--json'))
    .action(async (service: string | undefined, o: StoreOpts & { json?: boolean }) => withBaton(deps, o, async (b) => {
      const h = await b.serviceHistory(service);
      if (o.json) return json(h);
      if (h.length === 0) return w('no status changes recorded (the config file\'s statuses are in force)\n');
      w(`${table([['AT', 'SERVICE', 'STATUS', 'BY', 'REASON'], ...h.map((r) => [iso(r.at), r.service, r.status, r.by ?? '', r.reason ?? ''])])}\n`);
    }));

  storeOptions(program.command('lineage').description('runs that called a model service (of one version): what a model recall must look at')
    .requiredOption('--service <name>').option('--version <version>', 'only calls recorded with this service version').option('--since <when>', 'a duration (7d) or an ISO time').option('--json'))
    .action(async (o: StoreOpts & { service: string; version?: string; since?: string; json?: boolean }) => {
      const since = o.since === undefined ? undefined : parseSince(o.since);
      await withBaton(deps, o, async (b) => {
        const rows = await b.lineage({ service: o.service, version: o.version, since });
        if (o.json) return json(rows);
        if (rows.length === 0) return w(`no runs called ${o.service}${o.version ? ` version ${o.version}` : ''}${o.since ? ` since ${o.since}` : ''}\n`);
        w(`${table([['RUN', 'WORKFLOW', 'VERSION', 'STATUS', 'STARTED', 'CALLS', 'SERVICE VERSIONS', 'MODELS'], ...rows.map((r) => [r.runId, r.workflow, r.versionId, r.status, iso(r.createdAt), String(r.calls), r.versions.join(',') || '-', r.models.join(',')])])}\n`);
      });
    });
}

function qualify(name: string, namespace: string | undefined): string {
  return namespace && namespace !== 'default' && !name.includes('/') ? `${namespace}/${name}` : name;
}

const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));

/** The human-readable diff. */
export function formatDiff(d: WorkflowDiff & { a: string; b: string; services: ServiceChange[] }): string {
  const out: string[] = [`--- ${d.a}`, `+++ ${d.b}`];
  if (d.same && d.services.length === 0) out.push('no differences');
  for (const f of d.workflow) out.push(`~ workflow.${f.field}: ${show(f.from)} → ${show(f.to)}`);
  for (const s of d.steps) {
    if (s.change === 'added') out.push(`+ step ${s.id} (${s.kind})`);
    else if (s.change === 'removed') out.push(`- step ${s.id} (${s.kind})`);
    else {
      out.push(`~ step ${s.id} (${s.kind})`);
      const texts = new Set(s.texts?.map((t) => t.field));
      for (const f of s.fields ?? []) if (!texts.has(f.field)) out.push(`    ${f.field}: ${show(f.from)} → ${show(f.to)}`);
      for (const t of s.texts ?? []) {
        out.push(`    ${t.field}:`);
        for (const l of t.lines) out.push(`      ${l}`);
      }
    }
  }
  if (d.services.length) out.push('services (as pinned by each version\'s newest run, or configured now):');
  for (const s of d.services) {
    if (s.change !== 'changed') out.push(`  ${s.change === 'added' ? '+' : '-'} ${s.service}`);
    else for (const f of s.fields ?? []) out.push(`  ~ ${s.service}.${f.field}: ${show(f.from)} → ${show(f.to)}`);
  }
  return `${out.join('\n')}\n`;
}
