/**
 * `baton.config.yaml`: where the store lives and which modules provide `function` steps.
 * Looked for beside the workflow file first, then in the working directory (or given with
 * --config). Paths inside it are relative to the config file.
 *
 * ```yaml
 * store: .baton            # folder of the embedded SQLite store
 * functions:
 *   - ./functions.mjs      # every exported function becomes callable by its export name
 * services:                # model services (see src/services/config.ts for every field)
 *   intent: { provider: local-classifier, options: { examples_file: ./intents.yaml } }
 * telemetry:               # OpenTelemetry traces (see src/observability/config.ts)
 *   otlp_endpoint: http://localhost:4318
 * policies:                # governance rules checked at validation (see src/services/policies.ts)
 *   - { id: pii-eu-only, when: { workflow_tags: [pii] }, require: { service: { data_residency: eu } } }
 * ```
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { BatonError } from '../errors.js';
import type { StepFunction } from '../steps/kind.js';
import { parseServices, type ServiceConfig } from '../services/config.js';
import { parseTelemetry } from '../observability/config.js';
import type { TelemetryOptions } from '../observability/telemetry.js';
import { parsePolicies, type Policy } from '../services/policies.js';
import { parseRetention, type RetentionPolicy } from '../audit/retention.js';
import { EgressGuard, type NetworkPolicy } from '../security/egress.js';

export interface BatonConfig {
  /** Absolute path of the config file, when one was found. */
  file?: string;
  store?: string;
  functions: string[];
  services: ServiceConfig[];
  /** `telemetry:` (undefined when absent: OTEL_EXPORTER_OTLP_ENDPOINT may still turn tracing on). */
  telemetry?: TelemetryOptions | false;
  /** Governance policies checked when workflows are validated (see src/services/policies.ts). */
  policies: Policy[];
  /** Folder that relative paths in the config start from. */
  baseDir: string;
  /** Store-wide retention for workflows that set none (`baton audit purge`). */
  retention?: RetentionPolicy & { archiveDir?: string };
  /** Egress rules for http steps, emit sinks and approval notify URLs (src/security/egress.ts). */
  network?: NetworkPolicy;
}

const NAMES = ['baton.config.yaml', 'baton.config.yml', 'baton.config.json'];

export function findConfig(explicit: string | undefined, near: string[]): BatonConfig {
  if (explicit) {
    if (!existsSync(explicit)) throw new BatonError('BATON_CONFIG_INVALID', { detail: `${explicit}: no such file.` });
    return loadConfig(resolve(explicit));
  }
  for (const dir of [...near, process.cwd()]) {
    for (const n of NAMES) {
      const f = resolve(dir, n);
      if (existsSync(f)) return loadConfig(f);
    }
  }
  return { functions: [], services: [], policies: [], baseDir: process.cwd() };
}

function loadConfig(file: string): BatonConfig {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: ${(e as Error).message.split('\n')[0]}` });
  }
  const c = (raw ?? {}) as Record<string, unknown>;
  if (typeof c !== 'object' || Array.isArray(c)) throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: expected a mapping at the top.` });
  const base = dirname(file);
  const fns = c.functions ?? [];
  if (!Array.isArray(fns) || fns.some((f) => typeof f !== 'string')) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: \`functions\` must be a list of module paths.` });
  }
  if (c.store !== undefined && typeof c.store !== 'string') throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: \`store\` must be a folder path.` });
  const known = new Set(['store', 'functions', 'services', 'telemetry', 'policies', 'retention', 'network']);
  const unknown = Object.keys(c).filter((k) => !known.has(k));
  if (unknown.length) throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: unknown top-level field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `\`${k}\``).join(', ')}; known: store, functions, services, telemetry, policies, retention, network.` });
  const retention = parseRetention(c.retention, file);
  const archiveDir = (c.retention as { archive_dir?: unknown } | undefined)?.archive_dir;
  if (archiveDir !== undefined && typeof archiveDir !== 'string') throw new BatonError('BATON_CONFIG_INVALID', { detail: `${file}: \`retention.archive_dir\` must be a folder path.` });
  return {
    file,
    store: c.store === undefined ? undefined : resolve(base, c.store as string),
    functions: (fns as string[]).map((f) => resolve(base, f)),
    services: parseServices(c.services, file),
    telemetry: parseTelemetry(c.telemetry, file),
    policies: parsePolicies(c.policies, file),
    baseDir: base,
    network: EgressGuard.parse(c.network, `${file}: network`),
    ...(retention ? { retention: { ...retention, ...(archiveDir ? { archiveDir: resolve(base, archiveDir) } : {}) } } : {}),
  };
}

/** Imports each module and collects its exported functions by export name. */
export async function loadFunctions(modules: string[]): Promise<Record<string, StepFunction>> {
  const out: Record<string, StepFunction> = {};
  for (const m of modules) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(m).href)) as Record<string, unknown>;
    } catch (e) {
      throw new BatonError('BATON_CONFIG_INVALID', { detail: `cannot load functions module ${m}: ${(e as Error).message}` });
    }
    const exported = mod.default && typeof mod.default === 'object' ? { ...(mod.default as object), ...mod } : mod;
    for (const [name, v] of Object.entries(exported)) if (typeof v === 'function') out[name] = v as StepFunction;
  }
  return out;
}
