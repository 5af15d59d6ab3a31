/**
 * Which stores the engine suites run against. Each suite is written once and run on every
 * store here: the embedded SQLite file and a real PostgreSQL database created for the suite
 * and dropped after it (`BATON_TEST_PG_ADMIN` picks the server; `BATON_TEST_STORES=sqlite`
 * runs only SQLite, e.g. on a machine without PostgreSQL).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import type { Store } from '../../src/store/store.js';

export type StoreKind = 'sqlite' | 'postgres';

export const STORE_KINDS: StoreKind[] = (process.env.BATON_TEST_STORES?.split(',') ?? ['sqlite', 'postgres']) as StoreKind[];

const ADMIN = process.env.BATON_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty PostgreSQL database. */
export async function createTestDatabase(prefix = 'baton_t'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = new pg.Client({ connectionString: ADMIN });
      await a.connect();
      try {
        await a.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        await a.query(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Per test: `open()` gives the store to pass to `Baton.open` (undefined: SQLite under the test's dir). */
export function storeFor(kind: StoreKind): { setup(): Promise<void>; open(): Promise<Store | undefined>; teardown(): Promise<void> } {
  let db: TestDatabase | undefined;
  return {
    async setup() {
      if (kind === 'postgres') db = await createTestDatabase();
    },
    async open() {
      if (kind === 'sqlite') return undefined;
      const { PostgresStore } = await import('../../src/store/postgres/postgres-store.js');
      return PostgresStore.open(db!.url, { poolSize: 4 });
    },
    async teardown() {
      await db?.drop();
      db = undefined;
    },
  };
}

export interface EngineSuite {
  /** This test's folder (the SQLite store, blobs, files the test writes). */
  readonly dir: string;
  /** An engine on this test's store; each call opens another, like another process. All are closed after the test. */
  baton(opts?: BatonOptions): Promise<Baton>;
}

/** Per test: a fresh folder and store of `kind`, and engines on it, cleaned up afterwards. */
export function engineSuite(kind: StoreKind, prefix: string): EngineSuite {
  const stores = storeFor(kind);
  const open: Baton[] = [];
  let dir = '';
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    await stores.setup();
  });
  afterEach(async () => {
    // close() is idempotent: engines a test closed itself are skipped.
    for (const b of open.splice(0)) await b.close();
    await stores.teardown();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    async baton(opts: BatonOptions = {}) {
      const b = await Baton.open({ dir, pollIntervalMs: 20, store: await stores.open(), ...opts });
      open.push(b);
      return b;
    },
  };
}
