/**
 * `local-anomaly`: an isolation forest (the `isolation-forest` package) trained at construction
 * on `options.training` (records inline, or a JSON/CSV file of them).
 *
 * Isolation forests need no labels and no feature scaling (each split is uniform between a
 * field's min and max), which suits "flag the odd transaction" steps trained on a sample of
 * normal records. The package draws its splits from `Math.random`, so training swaps in a
 * seeded generator for the (synchronous) fit: the same training data and `options.seed`
 * always give the same forest, across processes too, and a record always gets the same score.
 * Records are projected onto a fixed, sorted field list before training and scoring, because
 * the package reads the field names from whichever record it sees first.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { IsolationForest } from 'isolation-forest';
import type { CallOptions, ModelRequest, ModelResponse, Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { begin, describe, isRecord, localError, resolveOptionPath, usage } from './common.js';
import { mulberry32 } from '../../util/random.js';

const NAME = 'local-anomaly';

type Row = Record<string, number>;


function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** A CSV with a header row; quoted fields may hold commas and doubled quotes. */
export function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const cells: string[] = [];
    let cur = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
        else if (c === '"') quoted = false;
        else cur += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') cells.push(cur), (cur = '');
      else cur += c;
    }
    cells.push(cur);
    rows.push(cells.map((c) => c.trim()));
  }
  const [header = [], ...body] = rows;
  return body.map((cells) => Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ''])));
}

function loadTraining(setup: ProviderSetup): { records: unknown[]; where: string } {
  const training = setup.options.training;
  if (Array.isArray(training)) return { records: training, where: 'options.training' };
  if (typeof training !== 'string') {
    throw localError(setup, `options.training must be a list of records (objects of numbers) or a path to a .json/.csv file of them, got ${describe(training)}`);
  }
  const path = resolveOptionPath(setup, 'training', training, 'a .json or .csv file of records with numeric fields');
  const text = readFileSync(path, 'utf8');
  const where = `options.training ${training}`;
  if (extname(path).toLowerCase() === '.csv') return { records: parseCsv(text), where };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw localError(setup, `${where} is not valid JSON (${(err as Error).message}); give a JSON array of records or a .csv file with a header row`, err);
  }
  if (!Array.isArray(parsed)) throw localError(setup, `${where} must hold a JSON array of records, got ${describe(parsed)}`);
  return { records: parsed, where };
}

/** `record` projected onto `fields`, every one a finite number, or a helpful error naming the field. */
function project(setup: ProviderSetup, record: unknown, fields: string[], where: string): Row {
  if (!isRecord(record)) throw localError(setup, `${where} must be an object of numbers (fields: ${fields.join(', ')}), got ${describe(record)}`);
  const row: Row = {};
  for (const f of fields) {
    if (!(f in record) || record[f] === null || record[f] === undefined || record[f] === '') {
      throw localError(setup, `${where} is missing the numeric field "${f}" (every record needs: ${fields.join(', ')})`);
    }
    const n = toNumber(record[f]);
    if (n === undefined) throw localError(setup, `${where} field "${f}" must be a number, got ${describe(record[f])}`);
    row[f] = n;
  }
  return row;
}

export const createAnomaly: ProviderFactory = (setup: ProviderSetup): Provider => {
  const { threshold = 0.6, trees = 200, seed = 42 } = setup.options;
  if (typeof threshold !== 'number' || !(threshold > 0 && threshold < 1)) throw localError(setup, `options.threshold must be a number between 0 and 1 (default 0.6), got ${describe(threshold)}`);
  if (typeof trees !== 'number' || !Number.isInteger(trees) || trees < 1) throw localError(setup, `options.trees must be a whole number of at least 1 (default 200), got ${describe(trees)}`);
  if (typeof seed !== 'number' || !Number.isInteger(seed)) throw localError(setup, `options.seed must be an integer (default 42), got ${describe(seed)}`);

  const { records, where } = loadTraining(setup);
  if (records.length < 2) throw localError(setup, `${where} has ${records.length} record(s); an isolation forest needs at least 2 (ideally hundreds of normal records)`);
  let fields: string[];
  if (setup.options.fields !== undefined) {
    const f = setup.options.fields;
    if (!Array.isArray(f) || f.length === 0 || f.some((x) => typeof x !== 'string' || !x)) throw localError(setup, `options.fields must be a non-empty list of field names, got ${describe(f)}`);
    fields = [...(f as string[])].sort();
  } else {
    const first = records[0];
    if (!isRecord(first)) throw localError(setup, `${where}[0] must be an object of numbers, got ${describe(first)}`);
    fields = Object.keys(first).filter((k) => toNumber(first[k]) !== undefined).sort();
    if (fields.length === 0) throw localError(setup, `${where}[0] has no numeric fields; records must be objects of numbers like { amount: 12.5, items: 3 }`);
  }
  const rows = records.map((r, i) => project(setup, r, fields, `${where}[${i}]`));

  const forest = new IsolationForest(trees, Math.min(256, rows.length));
  const random = Math.random;
  Math.random = mulberry32(seed);
  try {
    forest.fit(rows);
  } finally {
    Math.random = random;
  }

  return {
    name: NAME,
    defaultOperation: 'anomaly',
    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      begin(setup, NAME, 'anomaly', request, options);
      const input = request.input;
      const wrapped = isRecord(input) && isRecord(input.record);
      const record = wrapped ? (input as { record: unknown }).record : input;
      const row = project(setup, record, fields, wrapped ? 'input.record' : 'input');
      const raw = forest.predict([row])[0];
      const score = Math.round(Math.max(0, Math.min(1, raw)) * 1e4) / 1e4;
      const output = { score, anomalous: score >= threshold };
      return { output, usage: usage(JSON.stringify(record), output), model: setup.model };
    },
  };
};
