import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeConformance } from './conformance.js';

let dir: string;

storeConformance('sqlite', {
  async open() {
    dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
    return new SqliteStore(join(dir, 'baton.db'));
  },
  async cleanup() {
    rmSync(dir, { recursive: true, force: true });
  },
});
