/**
 * Governance policies (`policies:` in baton.config.yaml), checked whenever a workflow is
 * validated (`baton validate`, registration, POST /workflows), so a workflow that breaks one
 * never gets a version. Each violation is a document problem at the offending step's field,
 * with file:line:column, naming the policy id and its message.
 *
 * ```yaml
 * policies:
 *   - id: pii-eu-only
 *     when: { workflow_tags: [pii] }          # the workflow has any of these tags
 *     require: { service: { data_residency: eu } }
 *     message: PII workflows must stay in the EU
 *   - id: high-risk-needs-approval
 *     when: { step_risk: high }               # steps at this risk level or above
 *     require: { downstream_kind: approval }  # some step downstream of it has this kind
 * ```
 *
 * `require.service` applies to every service a matching model step may call (its `service` and
 * each `fallback`); its keys are `data_residency`, `provider`, `model`, `version`, `owner`,
 * `status`, or else one of the service's `labels`; a value may be a list of allowed values.
 * `when` conditions combine with AND; a policy without `when` applies to every workflow.
 */
import { z } from 'zod';
import { BatonError } from '../errors.js';
import type { CatalogService } from '../steps/kind.js';

const RISKS = ['low', 'medium', 'high'] as const;
export type Risk = (typeof RISKS)[number];

const scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);

const PolicySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'policy ids use letters, digits, `_`, `.` and `-`'),
  description: z.string().optional(),
  when: z.strictObject({
    workflow_tags: z.array(z.string().min(1)).min(1).optional(),
    step_risk: z.enum(RISKS).optional(),
    step_kind: z.string().min(1).optional(),
  }).optional(),
  require: z.strictObject({
    service: z.record(z.string(), z.union([scalar, z.array(scalar).min(1)])).optional(),
    downstream_kind: z.string().min(1).optional(),
  }).refine((r) => r.service !== undefined || r.downstream_kind !== undefined, 'give `service` or `downstream_kind`'),
  message: z.string().optional(),
});

export interface Policy {
  id: string;
  message?: string;
  when: { workflowTags?: string[]; stepRisk?: Risk; stepKind?: string };
  require: { service?: Record<string, string[]>; downstreamKind?: string };
}

/** Validates the `policies:` list; one BATON_CONFIG_INVALID naming every problem's path. */
export function parsePolicies(raw: unknown, where?: string): Policy[] {
  if (raw === undefined || raw === null) return [];
  const parsed = z.array(PolicySchema).safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  policies.${i.path.map(String).join('.')}: ${i.code === 'unrecognized_keys' ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `\`${k}\``).join(', ')}` : i.message}`);
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where ? `${where}: ` : ''}${lines.length} problem${lines.length === 1 ? '' : 's'} in policies:\n${lines.join('\n')}` });
  }
  const ids = new Set<string>();
  for (const p of parsed.data) {
    if (ids.has(p.id)) throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where ? `${where}: ` : ''}policies: id "${p.id}" is used twice; policy ids must be unique.` });
    ids.add(p.id);
  }
  return parsed.data.map((p) => ({
    id: p.id,
    message: p.message,
    when: { workflowTags: p.when?.workflow_tags, stepRisk: p.when?.step_risk, stepKind: p.when?.step_kind },
    require: {
      service: p.require.service && Object.fromEntries(Object.entries(p.require.service).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])),
      downstreamKind: p.require.downstream_kind,
    },
  }));
}

/** What the check needs of a step (compile.ts hands compiled steps over). */
export interface PolicyStep {
  id: string;
  kind: string;
  /** Document path of the step, e.g. ['steps', 2]. */
  path: Array<string | number>;
  risk?: Risk;
  /** Services a model step may call, with the field naming each (relative to the step). */
  services: Array<{ name: string; field: Array<string | number> }>;
  /** Steps that depend on this one (directly). */
  dependents: string[];
}

export interface PolicyViolation {
  path: Array<string | number>;
  message: string;
}

/** Every violation of `policies` by a workflow with `tags` and `steps`. */
export function checkPolicies(
  policies: readonly Policy[], tags: readonly string[], steps: ReadonlyMap<string, PolicyStep>, service: (name: string) => CatalogService | undefined,
): PolicyViolation[] {
  const out: PolicyViolation[] = [];
  for (const p of policies) {
    if (p.when.workflowTags && !p.when.workflowTags.some((t) => tags.includes(t))) continue;
    const prefix = `policy "${p.id}"${p.message ? ` (${p.message})` : ''}`;
    for (const st of steps.values()) {
      if (p.when.stepRisk && RISKS.indexOf(st.risk ?? 'low') < RISKS.indexOf(p.when.stepRisk)) continue;
      if (p.when.stepKind && st.kind !== p.when.stepKind) continue;
      if (p.require.service) {
        for (const s of st.services) {
          const cfg = service(s.name);
          if (!cfg) continue; // an unknown service is reported by validation already
          for (const [key, allowed] of Object.entries(p.require.service)) {
            const have = attribute(cfg, key);
            if (have === undefined || !allowed.includes(have)) {
              out.push({
                path: [...st.path, ...s.field],
                message: `${prefix}: step "${st.id}" may call service "${s.name}", whose ${key} is ${have === undefined ? 'not set' : `"${have}"`}; the policy requires ${allowed.map((a) => `"${a}"`).join(' or ')}. Use a service with ${key}: ${allowed[0]}${have === undefined ? ` (or set \`${key}\` on "${s.name}" in baton.config.yaml)` : ''}.`,
              });
            }
          }
        }
      }
      if (p.require.downstreamKind && !hasDownstream(st.id, steps, p.require.downstreamKind)) {
        const why = p.when.stepRisk ? ` has risk ${st.risk ?? 'low'} and` : '';
        out.push({
          path: st.risk !== undefined ? [...st.path, 'risk'] : st.path,
          message: `${prefix}: step "${st.id}"${why} has no step of kind ${p.require.downstreamKind} downstream. Add a step of kind \`${p.require.downstreamKind}\` that needs "${st.id}" (directly or through other steps).`,
        });
      }
    }
  }
  return out;
}

function attribute(cfg: CatalogService, key: string): string | undefined {
  switch (key) {
    case 'data_residency': return cfg.dataResidency;
    case 'provider': return cfg.provider;
    case 'model': return cfg.model;
    case 'version': return cfg.version;
    case 'owner': return cfg.owner;
    case 'status': return cfg.status;
    default: return cfg.labels?.[key];
  }
}

function hasDownstream(from: string, steps: ReadonlyMap<string, PolicyStep>, kind: string): boolean {
  const seen = new Set<string>();
  const todo = [...(steps.get(from)?.dependents ?? [])];
  while (todo.length) {
    const id = todo.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const st = steps.get(id);
    if (!st) continue;
    if (st.kind === kind) return true;
    todo.push(...st.dependents);
  }
  return false;
}
