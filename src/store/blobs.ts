/**
 * Content-addressed blob store beside the database: outputs larger than a threshold are
 * written here once (by sha256) and the database keeps a small reference, so a 50 MB
 * document flows through a workflow without bloating rows or hitting a payload limit.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, existsSync, writeFileSync, renameSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BatonError } from '../errors.js';

export const BLOB_KEY = '$baton_blob';

export interface BlobRef {
  [BLOB_KEY]: string;
  bytes: number;
}

export function isBlobRef(v: unknown): v is BlobRef {
  return typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[BLOB_KEY] === 'string';
}

export class BlobStore {
  constructor(readonly dir: string) {}

  /** Writes `text` under its hash (atomically: temp file then rename) and returns the reference. */
  put(text: string): BlobRef {
    const hash = createHash('sha256').update(text).digest('hex');
    const file = this.pathOf(hash);
    if (!existsSync(file)) {
      mkdirSync(join(this.dir, hash.slice(0, 2)), { recursive: true });
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    }
    return { [BLOB_KEY]: `sha256:${hash}`, bytes: Buffer.byteLength(text) };
  }

  get(ref: BlobRef): string {
    const hash = ref[BLOB_KEY].replace(/^sha256:/, '');
    try {
      return readFileSync(this.pathOf(hash), 'utf8');
    } catch {
      throw new BatonError('BATON_BLOB_MISSING', { hash, dir: this.dir });
    }
  }

  /** Deletes a blob (retention, once no row refers to it); true if it existed. */
  delete(ref: BlobRef): boolean {
    const file = this.pathOf(ref[BLOB_KEY].replace(/^sha256:/, ''));
    if (!existsSync(file)) return false;
    rmSync(file, { force: true });
    return true;
  }

  private pathOf(hash: string): string {
    return join(this.dir, hash.slice(0, 2), hash);
  }
}

/**
 * Serialises a value for storage: inline JSON when small, a blob reference when larger than
 * `inlineBytes` (string length is used as a cheap upper bound check first).
 */
export function encodeValue(value: unknown, blobs: BlobStore | undefined, inlineBytes: number): string | undefined {
  if (value === undefined) return undefined;
  const text = JSON.stringify(value);
  if (text === undefined) return undefined;
  if (blobs && text.length > inlineBytes && Buffer.byteLength(text) > inlineBytes) return JSON.stringify(blobs.put(text));
  return text;
}

/** Inverse of encodeValue: parses stored JSON and follows a blob reference. */
export function decodeValue(text: string | null | undefined, blobs: BlobStore | undefined): unknown {
  if (text === null || text === undefined) return undefined;
  const v = JSON.parse(text) as unknown;
  if (isBlobRef(v)) {
    if (!blobs) throw new BatonError('BATON_BLOB_MISSING', { hash: v[BLOB_KEY], dir: '(no blob store)' });
    return JSON.parse(blobs.get(v));
  }
  return v;
}
