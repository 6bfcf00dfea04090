/**
 * Generic access to the application tables, the same for SQLite and PostgreSQL, so a backup needs no list of
 * tables and restores into either dialect: tables come from the catalogue (sqlite_master / information_schema),
 * rows are read in primary-key order in pages, and every value is a JSON value (binary as `{"$b64": ...}`).
 */
import { sql, type QueryExecutorProvider, type RawBuilder } from 'kysely';
import { PalisadeError } from '@palisade/core';
import type { Dialect } from '../../storage/database.js';

/** Any Kysely database or transaction; queries here are raw SQL. */
export type Queryable = QueryExecutorProvider;

export type Row = Record<string, unknown>;

/** Kysely's own bookkeeping: not application data (the applied migration names are recorded separately). */
export const MIGRATION_TABLE = 'kysely_migration';
const KYSELY_TABLES = new Set([MIGRATION_TABLE, 'kysely_migration_lock']);

async function rows<T>(db: Queryable, q: ReturnType<typeof sql<T>>): Promise<T[]> {
  return (await q.execute(db)).rows;
}

/** Application tables, by name. */
export async function listTables(db: Queryable, dialect: Dialect): Promise<string[]> {
  const names =
    dialect === 'sqlite'
      ? await rows(db, sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\'`)
      : await rows(db, sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`);
  return names
    .map((r) => r.name)
    .filter((n) => !KYSELY_TABLES.has(n))
    .sort();
}

export async function columnsOf(db: Queryable, dialect: Dialect, table: string): Promise<string[]> {
  const r =
    dialect === 'sqlite'
      ? await rows(db, sql<{ name: string }>`select name from pragma_table_info(${table}) order by cid`)
      : await rows(db, sql<{ name: string }>`select column_name as name from information_schema.columns where table_schema = current_schema() and table_name = ${table} order by ordinal_position`);
  return r.map((c) => c.name);
}

export async function primaryKeyOf(db: Queryable, dialect: Dialect, table: string): Promise<string[]> {
  const r =
    dialect === 'sqlite'
      ? await rows(db, sql<{ name: string }>`select name from pragma_table_info(${table}) where pk > 0 order by pk`)
      : await rows(
          db,
          sql<{ name: string }>`select kcu.column_name as name from information_schema.table_constraints tc
            join information_schema.key_column_usage kcu on kcu.constraint_name = tc.constraint_name and kcu.table_schema = tc.table_schema and kcu.table_name = tc.table_name
            where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = current_schema() and tc.table_name = ${table} order by kcu.ordinal_position`,
        );
  return r.map((c) => c.name);
}

/** Foreign keys as (child, parent) table pairs. */
export async function foreignKeys(db: Queryable, dialect: Dialect): Promise<Array<{ child: string; parent: string }>> {
  return dialect === 'sqlite'
    ? rows(db, sql<{ child: string; parent: string }>`select m.name as child, f."table" as parent from sqlite_master m, pragma_foreign_key_list(m.name) f where m.type = 'table'`)
    : rows(
        db,
        sql<{ child: string; parent: string }>`select distinct tc.table_name as child, ccu.table_name as parent from information_schema.table_constraints tc
          join information_schema.constraint_column_usage ccu on ccu.constraint_name = tc.constraint_name and ccu.constraint_schema = tc.constraint_schema
          where tc.constraint_type = 'FOREIGN KEY' and tc.table_schema = current_schema()`,
      );
}

/** `tables` with every parent before its children (deterministic; a cycle keeps name order for the rest). */
export function parentsFirst(tables: string[], edges: Array<{ child: string; parent: string }>): string[] {
  const set = new Set(tables);
  const parents = new Map(tables.map((t) => [t, new Set(edges.filter((e) => e.child === t && e.parent !== t && set.has(e.parent)).map((e) => e.parent))]));
  const out: string[] = [];
  const placed = new Set<string>();
  const pending = [...tables].sort();
  while (pending.length) {
    const i = pending.findIndex((t) => [...parents.get(t)!].every((p) => placed.has(p)));
    const [t] = pending.splice(i === -1 ? 0 : i, 1);
    out.push(t!);
    placed.add(t!);
  }
  return out;
}

/** Names of the applied Kysely migrations, in name order (the order Kysely runs them). */
export async function appliedMigrations(db: Queryable): Promise<string[]> {
  return (await rows(db, sql<{ name: string }>`select name from ${sql.id(MIGRATION_TABLE)} order by name`)).map((r) => r.name);
}

export async function countRows(db: Queryable, table: string): Promise<number> {
  const [r] = await rows(db, sql<{ n: number | string }>`select count(*) as n from ${sql.id(table)}`);
  return Number(r?.n ?? 0);
}

/** Every row of `table`, in primary-key order, `batch` rows per query (keyset pagination: no OFFSET scans). */
export async function* readTable(db: Queryable, table: string, pk: string[], batch = 1000): AsyncGenerator<Row[]> {
  if (pk.length === 0) {
    // No primary key (none of Palisade's tables): one query.
    yield await rows(db, sql<Row>`select * from ${sql.id(table)}`);
    return;
  }
  const keys = sql.join(pk.map((c) => sql.id(c)));
  let after: Row | null = null;
  for (;;) {
    const last: Row | null = after;
    const where: RawBuilder<unknown> = last ? sql`where (${keys}) > (${sql.join(pk.map((c) => last[c]))})` : sql``;
    const page: Row[] = await rows(db, sql<Row>`select * from ${sql.id(table)} ${where} order by ${keys} limit ${batch}`);
    if (page.length) yield page;
    if (page.length < batch) return;
    after = page[page.length - 1]!;
  }
}

/** A row as one JSON line; binary values become `{"$b64": "..."}`. */
export function encodeRow(table: string, row: Row): string {
  const out: Row = {};
  for (const [col, v] of Object.entries(row)) {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') out[col] = v;
    else if (typeof v === 'number' && Number.isFinite(v)) out[col] = v;
    else if (v instanceof Uint8Array) out[col] = { $b64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    else if (v instanceof Date) out[col] = v.toISOString();
    else throw new PalisadeError('PAL_INTERNAL', `cannot back up ${table}.${col}: values of type ${typeof v} are not supported`);
  }
  return JSON.stringify(out);
}

export function decodeRow(line: string): Row {
  const row = JSON.parse(line) as Row;
  for (const [col, v] of Object.entries(row)) {
    if (v !== null && typeof v === 'object') {
      const b64 = (v as { $b64?: unknown }).$b64;
      if (typeof b64 !== 'string' || Object.keys(v).length !== 1) throw new Error(`column ${col} holds an object that is not a tagged binary value`);
      row[col] = Buffer.from(b64, 'base64');
    }
  }
  return row;
}

/** Insert `rows` into `table` in statements of at most ~30,000 parameters (SQLite allows 32,766, PostgreSQL 65,535). */
export async function insertRows(db: Queryable, table: string, columns: string[], data: Row[]): Promise<void> {
  if (!data.length) return;
  const per = Math.max(1, Math.min(500, Math.floor(30_000 / Math.max(1, columns.length))));
  const cols = sql.join(columns.map((c) => sql.id(c)));
  for (let i = 0; i < data.length; i += per) {
    const values = data.slice(i, i + per).map((r) => sql`(${sql.join(columns.map((c) => r[c] ?? null))})`);
    await sql`insert into ${sql.id(table)} (${cols}) values ${sql.join(values)}`.execute(db);
  }
}
