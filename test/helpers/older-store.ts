/**
 * A store as an older Baton left it, for migration tests: its schema is built by the first
 * `level` migrations of the real list, and it holds the rows of another store (written by the
 * current code) in the columns that level has — what the older code wrote, without the columns
 * it did not know. Opening it runs the later migrations for real, as an upgrade does. Building
 * the old schema from the list (not by putting a version number back) keeps this true however
 * many migrations come after.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';

/** The store's schema version that `sql` (a statement of one migration) first appears in. */
export function levelOf(migrations: string[], sql: string): number {
  const i = migrations.findIndex((m) => m.includes(sql));
  if (i < 0) throw new Error(`no migration has ${JSON.stringify(sql)}`);
  return i + 1;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Writes an SQLite store at `to` at schema version `level`, holding the rows of the store at `from`. */
export function sqliteAtLevel(from: string, to: string, level: number): void {
  const db = new Database(to);
  try {
    db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    for (const sql of SQLITE_MIGRATIONS.slice(0, level)) db.exec(sql);
    // Rows go in table by table, in no particular order.
    db.pragma('foreign_keys = OFF');
    db.prepare('ATTACH DATABASE ? AS src').run(from);
    const tables = db.prepare(`SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all() as string[];
    for (const t of tables) {
      const mine = new Set((db.prepare(`SELECT name FROM pragma_table_info(?, 'main')`).pluck().all(t) as string[]));
      const cols = (db.prepare(`SELECT name FROM pragma_table_info(?, 'src')`).pluck().all(t) as string[]).filter((c) => mine.has(c)).map(quote).join(', ');
      if (!cols) continue;
      db.exec(`DELETE FROM main.${quote(t)}; INSERT INTO main.${quote(t)} (${cols}) SELECT ${cols} FROM src.${quote(t)}`);
    }
    db.prepare(`UPDATE main.meta SET value = ? WHERE key = 'schema_version'`).run(String(level));
    db.exec('DETACH DATABASE src');
  } finally {
    db.close();
  }
}

/** Fills the empty PostgreSQL database at `to` at schema version `level`, with the rows of the one at `from`. */
export async function postgresAtLevel(from: string, to: string, level: number): Promise<void> {
  const src = new pg.Client({ connectionString: from });
  const dst = new pg.Client({ connectionString: to });
  await src.connect();
  await dst.connect();
  try {
    await dst.query('BEGIN');
    await dst.query('CREATE TABLE baton_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    for (const sql of PG_MIGRATIONS.slice(0, level)) await dst.query(sql);
    // Rows go in table by table, in no particular order: no foreign-key checks meanwhile.
    await dst.query('SET LOCAL session_replication_role = replica');
    const columns = async (c: pg.Client) => {
      const r = await c.query<{ table_name: string; column_name: string }>(
        `SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.is_generated = 'NEVER'
          ORDER BY c.table_name, c.ordinal_position`,
      );
      const m = new Map<string, string[]>();
      for (const { table_name, column_name } of r.rows) m.set(table_name, [...(m.get(table_name) ?? []), column_name]);
      return m;
    };
    const theirs = await columns(src);
    for (const [t, mine] of await columns(dst)) {
      const cols = (theirs.get(t) ?? []).filter((c) => mine.includes(c));
      if (!cols.length) continue;
      await dst.query(`DELETE FROM ${quote(t)}`);
      const list = cols.map(quote).join(', ');
      for (const row of (await src.query({ text: `SELECT ${list} FROM ${quote(t)}`, rowMode: 'array' })).rows) {
        await dst.query(`INSERT INTO ${quote(t)} (${list}) OVERRIDING SYSTEM VALUE VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, row);
      }
    }
    // Sequences (serial and identity columns) carry on after the copied rows.
    const seqs = await dst.query<{ t: string; c: string; seq: string }>(
      `SELECT table_name AS t, column_name AS c, pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq
         FROM information_schema.columns WHERE table_schema = 'public' AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL`,
    );
    for (const { t, c, seq } of seqs.rows) {
      await dst.query(`SELECT setval($1, GREATEST((SELECT MAX(${quote(c)}) FROM ${quote(t)}), 1))`, [seq]);
    }
    await dst.query(`DELETE FROM baton_meta WHERE key LIKE 'migrated_%' AND substr(key, 10)::int > $1`, [level]);
    await dst.query(`UPDATE baton_meta SET value = $1 WHERE key = 'schema_version'`, [String(level)]);
    await dst.query('COMMIT');
  } catch (e) {
    await dst.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    await src.end();
    await dst.end();
  }
}
