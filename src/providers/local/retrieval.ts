/**
 * `local-retrieval`: BM25 passage search over a folder of documents, built at construction.
 *
 * Why minisearch: it is a pure-JS inverted index with BM25 ranking, prefix and fuzzy matching,
 * so a folder of a few thousand documents indexes in well under a second and needs no service,
 * no embeddings model and no download. Documents are cut into passages (markdown by heading
 * and paragraph, text by paragraph, JSON as given) so a hit is something that fits in a
 * prompt, not a whole file. A light suffix stemmer on both index and query makes "refunded"
 * find "refund" where prefix/fuzzy matching alone would not.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import MiniSearch from 'minisearch';
import type { CallOptions, ModelRequest, ModelResponse, Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { begin, describe, isRecord, localError, resolveOptionPath, usage } from './common.js';

const NAME = 'local-retrieval';
const EXTENSIONS = new Set(['.md', '.markdown', '.txt', '.json']);

export interface Passage {
  /** Internal, unique. */
  key: number;
  id: string;
  title: string;
  text: string;
  source: string;
}

const STOP = new Set(
  'a an and are as at be by can do does for from how i if in is it its me my of on or our so that the their then there this to was we what when where which who why will with you your'.split(' '),
);

/** Lower-case, drop stop words, strip the commonest English suffixes. Applied to documents and queries alike. */
export function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  if (STOP.has(t)) return null;
  if (t.length <= 3) return t;
  let s = t;
  if (s.endsWith('ies') && s.length > 4) s = `${s.slice(0, -3)}y`;
  else if (s.endsWith('ing') && s.length > 5) s = s.slice(0, -3);
  else if (s.endsWith('ed') && s.length > 4) s = s.slice(0, -2);
  else if (s.endsWith('ly') && s.length > 4) s = s.slice(0, -2);
  else if (/(ss|x|ch|sh)es$/.test(s)) s = s.slice(0, -2);
  else if (s.endsWith('s') && !/(ss|us|is)$/.test(s)) s = s.slice(0, -1);
  // "charge", "charges", "charged" all become "charg".
  if (s.endsWith('e') && s.length > 4) s = s.slice(0, -1);
  return s;
}

/** Markdown/plain text → passages: one per paragraph, titled by the heading above it; fenced code stays whole. */
export function chunkText(content: string, markdown: boolean, maxChars: number): { title: string; text: string }[] {
  const out: { title: string; text: string }[] = [];
  let title = '';
  let para: string[] = [];
  let fenced = false;
  const flush = (): void => {
    const text = para.join('\n').trim();
    para = [];
    if (text) for (const piece of split(text, maxChars)) out.push({ title, text: piece });
  };
  for (const line of content.split(/\r?\n/)) {
    if (markdown && /^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (markdown && !fenced && /^#{1,6}\s/.test(line)) {
      flush();
      title = line.replace(/^#+\s*/, '').replace(/\s*#+\s*$/, '').trim();
    } else if (!fenced && line.trim() === '') {
      flush();
    } else {
      para.push(line);
    }
  }
  flush();
  return out;
}

/** A paragraph longer than `maxChars`, cut at sentence ends. */
function split(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const sentences = text.match(/[^.!?]+(?:[.!?]+|$)\s*/g) ?? [text];
  const out: string[] = [];
  let cur = '';
  for (const s of sentences) {
    if (cur && cur.length + s.length > maxChars) {
      out.push(cur.trim());
      cur = '';
    }
    cur += s;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else if (entry.isFile() && EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(full);
  }
  return out;
}

/** Every passage of every supported file under `folder`. */
export function loadPassages(setup: ProviderSetup, folder: string, maxChars: number): Passage[] {
  const passages: Passage[] = [];
  for (const file of listFiles(folder)) {
    const source = relative(folder, file).split(sep).join('/');
    const content = readFileSync(file, 'utf8');
    const ext = extname(file).toLowerCase();
    if (ext === '.json') {
      let items: unknown;
      try {
        items = JSON.parse(content);
      } catch (err) {
        throw localError(setup, `${source} in options.folder is not valid JSON (${(err as Error).message}); fix it or remove it from the folder`, err);
      }
      if (!Array.isArray(items)) items = [items];
      (items as unknown[]).forEach((item, i) => {
        if (!isRecord(item) || typeof item.text !== 'string') {
          throw localError(setup, `${source}[${i}] in options.folder must be an object with a string "text" (and optional "id", "title"), got ${describe(item)}`);
        }
        const id = item.id === undefined ? `${source}#${i + 1}` : String(item.id);
        passages.push({ key: passages.length, id, title: typeof item.title === 'string' ? item.title : '', text: item.text, source });
      });
    } else {
      chunkText(content, ext !== '.txt', maxChars).forEach((c, i) => passages.push({ key: passages.length, id: `${source}#${i + 1}`, ...c, source }));
    }
  }
  return passages;
}

function positiveInt(setup: ProviderSetup, where: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw localError(setup, `${where} must be a whole number of at least 1, got ${describe(value)}`);
  return value;
}

export const createRetrieval: ProviderFactory = (setup: ProviderSetup): Provider => {
  const folder = resolveOptionPath(setup, 'folder', setup.options.folder, 'a folder of .md/.txt/.json files');
  if (!statSync(folder).isDirectory()) throw localError(setup, `options.folder ${String(setup.options.folder)} is a file, not a folder (resolved to ${folder}); point it at a folder of .md/.txt/.json files`);
  const defaultK = positiveInt(setup, 'options.k', setup.options.k, 3);
  const maxChars = positiveInt(setup, 'options.chunk_chars', setup.options.chunk_chars, 1500);
  const passages = loadPassages(setup, folder, maxChars);
  if (passages.length === 0) {
    throw localError(setup, `options.folder ${String(setup.options.folder)} (resolved to ${folder}) holds no .md, .txt or .json text to index; add documents or point it at another folder`);
  }
  const index = new MiniSearch<Passage>({
    idField: 'key',
    fields: ['title', 'text'],
    processTerm,
    searchOptions: { boost: { title: 2 }, prefix: true, fuzzy: 0.2, combineWith: 'OR' },
  });
  index.addAll(passages);

  return {
    name: NAME,
    defaultOperation: 'retrieve',
    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      begin(setup, NAME, 'retrieve', request, options);
      const input = request.input;
      let query: unknown = input;
      let k = defaultK;
      if (isRecord(input)) {
        query = input.query;
        k = positiveInt(setup, 'input.k', input.k, defaultK);
      }
      if (typeof query !== 'string' || query.trim() === '') {
        throw localError(setup, `\`retrieve\` needs a query: input must be a non-empty string or { query: string, k?: number }, got ${describe(query)}`);
      }
      const results = index.search(query).slice(0, k).map((hit) => {
        const p = passages[hit.id as number];
        return { id: p.id, title: p.title, text: p.text, score: Math.round(hit.score * 1e4) / 1e4, source: p.source };
      });
      const output = { results };
      return { output, usage: usage(query, output), model: setup.model };
    },
  };
};
