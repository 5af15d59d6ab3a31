/**
 * Namespaces partition workflows and runs between teams. A workflow registered in namespace
 * `team-a` is stored under the qualified name `team-a/<name>` (version id
 * `team-a/<name>@<hash>`), so two teams may each have a `triage` without sharing versions,
 * and nothing else in the store needs to know: the qualified name is just a name.
 *
 * The `default` namespace keeps plain names and is the shared catalogue: its workflows can be
 * started from any namespace (their runs land in the caller's namespace). A namespaced
 * workflow's runs always live in its own namespace.
 */
import { BatonError } from '../errors.js';

export const DEFAULT_NAMESPACE = 'default';

const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;

/** Whether `ns` is a well-formed namespace name. */
export function isNamespace(ns: unknown): ns is string {
  return typeof ns === 'string' && NAMESPACE.test(ns);
}

/** Validates a namespace name (undefined → `default`). */
export function checkNamespace(ns: string | undefined): string {
  if (ns === undefined) return DEFAULT_NAMESPACE;
  if (!isNamespace(ns)) {
    throw new BatonError('BATON_USAGE', { detail: `namespace must be 1-100 letters, digits, '_', '.', ':' or '-', starting with a letter or digit; got ${JSON.stringify(ns)}.` });
  }
  return ns;
}

/** `triage` in `team-a` → `team-a/triage`; the default namespace keeps the plain name. */
export function qualifiedName(namespace: string, name: string): string {
  return namespace === DEFAULT_NAMESPACE ? name : `${namespace}/${name}`;
}

/** A stored (qualified) workflow name or version id → its namespace and plain name. */
export function splitQualified(qualified: string): { namespace: string; name: string } {
  const slash = qualified.indexOf('/');
  // Workflow names cannot hold '/', so the first one separates the namespace.
  if (slash < 0) return { namespace: DEFAULT_NAMESPACE, name: qualified };
  return { namespace: qualified.slice(0, slash), name: qualified.slice(slash + 1) };
}

/** The stored (qualified) workflow name of a version id: `team-a/triage@abc…` → `team-a/triage`. */
export function workflowOfVersion(versionId: string): string {
  const at = versionId.lastIndexOf('@');
  return at < 0 ? versionId : versionId.slice(0, at);
}
