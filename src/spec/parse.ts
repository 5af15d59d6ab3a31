/**
 * Reads YAML or JSON (JSON is parsed by the same YAML 1.2 parser) keeping every node's
 * position, so that each problem found later can be reported as `file:line:column`.
 */
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Document, type Node } from 'yaml';
import { readFileSync } from 'node:fs';
import { BatonError, type Problem } from '../errors.js';

export type DocPath = Array<string | number>;

export interface SourceDocument {
  file: string;
  text: string;
  value: unknown;
  /** Line and column (1-based) of the node at `path`, or of its nearest existing parent. */
  locate(path: DocPath, atKey?: boolean): { line: number; column: number };
}

export function parseSource(text: string, file = '<input>'): SourceDocument {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const errs = [...doc.errors];
  if (errs.length) {
    const problems: Problem[] = errs.map((e) => {
      const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
      return { file, line: pos.line, column: pos.col, path: '', message: e.message.split('\n')[0] };
    });
    throw new BatonError('BATON_DOC_SYNTAX', { detail: problems.map((p) => `${p.line}:${p.column} ${p.message}`).join('; ') }, { problems });
  }
  // toJS throws for alias trouble the parser lets through (an alias without its anchor, an
  // alias bomb beyond maxAliasCount): a syntax problem of the document, not a crash.
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (e) {
    const message = (e as Error).message.split('\n')[0];
    throw new BatonError('BATON_DOC_SYNTAX', { detail: `1:1 ${message}` }, { problems: [{ file, line: 1, column: 1, path: '', message }] });
  }
  return {
    file,
    text,
    value,
    locate(path, atKey = false) {
      const offset = findOffset(doc, path, atKey);
      const pos = lineCounter.linePos(offset);
      return { line: pos.line, column: pos.col };
    },
  };
}

export function readSource(file: string): SourceDocument {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new BatonError('BATON_DOC_NOT_FOUND', { file, detail }, { cause: e });
  }
  return parseSource(text, file);
}

/** Walks down `path` as far as it exists; returns the start offset of the deepest node (or key). */
function findOffset(doc: Document, path: DocPath, atKey: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return offset;
      if (last && atKey) return rangeStart(pair.key) ?? offset;
      node = pair.value;
      offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) return offset;
      offset = rangeStart(node) ?? offset;
    } else return offset;
  }
  return offset;
}

function rangeStart(n: unknown): number | undefined {
  const r = (n as Node | undefined)?.range;
  return r ? r[0] : undefined;
}

/** `steps[2].needs[0]` from `['steps', 2, 'needs', 0]`. */
export function formatPath(path: DocPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}
