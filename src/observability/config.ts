/**
 * The `telemetry:` section of baton.config.yaml:
 *
 * ```yaml
 * telemetry:
 *   otlp_endpoint: http://localhost:4318   # OTLP/HTTP collector (Jaeger, Tempo, OTel Collector)
 *   service_name: baton-prod               # service.name of the spans (default baton)
 *   headers: { x-honeycomb-team: env:HONEYCOMB_KEY }   # env:NAME reads a variable: no secrets in the file
 * ```
 *
 * Parsed with zod so that a problem names its path, like `services:`.
 */
import { z } from 'zod';
import { BatonError } from '../errors.js';
import type { TelemetryOptions } from './telemetry.js';

const TelemetrySchema = z.strictObject({
  otlp_endpoint: z.string().regex(/^https?:\/\/\S+$/, 'must be an http(s) URL of an OTLP/HTTP collector, e.g. http://localhost:4318').optional(),
  service_name: z.string().min(1).max(200).optional(),
  headers: z.record(z.string().min(1), z.string()).optional(),
  enabled: z.boolean().optional(),
});

/** Options for Baton.open, `false` when the section says `enabled: false`, undefined when absent. */
export function parseTelemetry(raw: unknown, where?: string, env: NodeJS.ProcessEnv = process.env): TelemetryOptions | false | undefined {
  if (raw === undefined || raw === null) return undefined;
  const parsed = TelemetrySchema.safeParse(raw);
  const problems: string[] = parsed.success ? [] : parsed.error.issues.map((i) => `  telemetry${i.path.length ? '.' : ''}${i.path.map(String).join('.')}: ${i.code === 'unrecognized_keys' ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `\`${k}\``).join(', ')}; known: otlp_endpoint, service_name, headers, enabled` : i.message}`);
  const headers: Record<string, string> = {};
  if (parsed.success) {
    for (const [k, v] of Object.entries(parsed.data.headers ?? {})) {
      const m = /^env:([A-Za-z_][A-Za-z0-9_]*)$/.exec(v);
      if (!m) problems.push(`  telemetry.headers.${k}: write \`env:NAME\` (the value is read from that environment variable); never the secret itself`);
      else if (env[m[1]] === undefined) problems.push(`  telemetry.headers.${k}: environment variable ${m[1]} is not set`);
      else headers[k] = env[m[1]]!;
    }
  }
  if (problems.length || !parsed.success) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where ? `${where}: ` : ''}${problems.length} problem${problems.length === 1 ? '' : 's'} in telemetry:\n${problems.join('\n')}` });
  }
  const d = parsed.data;
  if (d.enabled === false) return false;
  return { otlpEndpoint: d.otlp_endpoint, serviceName: d.service_name, ...(Object.keys(headers).length ? { headers } : {}) };
}
