/**
 * The hash chains that make history tamper-evident (issue 8).
 *
 * Each event carries `hash = sha256(prev | run_id | seq | content)` where `content` is the
 * sha256 of the canonical JSON of `[type, step_key, at, data]` with `data` as the exact stored
 * text (any byte changed in a row changes its hash). The run's first event chains from `''`.
 * The content hash is computed in JavaScript; the link is simple enough that PostgreSQL
 * computes it too (`baton_chain`, see its migration), inside the statement that allocates the
 * seqs from `runs.last_seq`, so appending costs no extra round trip.
 *
 * When a run ends, its last event hash is appended to the store-wide anchor chain
 * (`audit_anchors`): `anchor_hash = sha256(prev_anchor | seq | run_id | run_final_hash | at)`.
 * Deleting a run's tail, or the whole run, then still shows: its anchored hash is gone.
 */
import { hash } from 'node:crypto';
import { canonicalJson } from '../spec/canonical.js';
import type { NewEvent } from './store.js';

/** One-shot sha256 (crypto.hash: about half the cost of createHash for the short texts hashed per event). */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** The stored text of an event's data (what the row keeps), or null. */
export function eventDataText(e: NewEvent): string | null {
  return e.dataJson ?? (e.data === undefined ? null : JSON.stringify(e.data));
}

export function eventContentHash(type: string, stepKey: string | null | undefined, at: number, dataText: string | null | undefined): string {
  return sha256Hex(canonicalJson([type, stepKey ?? null, at, dataText ?? null]));
}

export function linkHash(prev: string, runId: string, seq: number, content: string): string {
  return sha256Hex(`${prev}|${runId}|${seq}|${content}`);
}

/** Hashes of `events` appended after `prev` at seqs base+1, base+2... */
export function chainHashes(prev: string | null | undefined, runId: string, base: number, events: NewEvent[]): string[] {
  const out: string[] = [];
  let h = prev ?? '';
  events.forEach((e, i) => {
    h = linkHash(h, runId, base + i + 1, eventContentHash(e.type, e.stepKey, e.at, eventDataText(e)));
    out.push(h);
  });
  return out;
}

export function anchorHash(prev: string, seq: number, runId: string, runFinalHash: string, at: number): string {
  return sha256Hex(`${prev}|${seq}|${runId}|${runFinalHash}|${at}`);
}

/** An event row as stored (data as its exact text), for verification. */
export interface AuditEventRow {
  seq: number;
  type: string;
  stepKey?: string;
  at: number;
  dataText: string | null;
  hash: string | null;
}

export interface AnchorRecord {
  seq: number;
  runId: string;
  runFinalHash: string;
  prevAnchorHash: string;
  anchorHash: string;
  at: number;
}

export interface PurgedRunRecord {
  runId: string;
  workflow: string;
  finalHash?: string;
  purgedAt: number;
  mode: 'purge' | 'archive';
  archive?: string;
}
