/**
 * Field-level encryption for Kysely (SQLite, PostgreSQL, any dialect): the configured columns are encrypted on
 * insert and update, decrypted when rows are read, and their blind-index columns are kept in step.
 *
 * ```ts
 * const fields = new FieldEncryptionPlugin({ encryptor, indexer, tables: { users: USERS } });
 * const db = new Kysely<DB>({ dialect: fields.dialect(new SqliteDialect({ database })), plugins: [fields] });
 * await db.insertInto('users').values({ id, email: 'a@example.com', ... }).execute();      // email encrypted, email_bidx set
 * await db.selectFrom('users').selectAll().where('email_bidx', '=', fields.index('users', 'email_bidx', 'A@example.com')).execute();
 * // then keep the rows whose decrypted email really is the one sought (a truncated index has false positives)
 * ```
 *
 * Kysely plugins transform queries synchronously, and encryption may need the KMS: the plugin puts a placeholder
 * where each value to encrypt goes, and the wrapped dialect's connection replaces the placeholders with ciphertext
 * (awaiting the KMS at most once per data key) just before the query runs. Both are needed; a placeholder that
 * reaches a connection the dialect does not wrap is refused rather than written.
 *
 * Each ciphertext is bound to its row's id and to `<table>.<column>`: a value copied to another row or column does
 * not decrypt. Inserts must give the id column; updates of encrypted columns must be `where <id> = <value>`. Rows are
 * decrypted by the columns of the table a query selects from (its first `from`), inserts into or updates.
 */
import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  QueryResult,
  RootOperationNode,
  TransactionSettings,
  UnknownRow,
} from 'kysely';
import { PalisadeError } from '@palisade/core';
import type { FieldEncryptor } from './field-encryptor.js';
import { looksLikeCompactEnvelope } from './envelope.js';
import type { EncryptedClassification } from './schema.js';

/** An encrypted column: what it is, for its data key (`{data_type}_{classification}_{YYYYMM}`). */
export interface EncryptedColumn {
  classification: EncryptedClassification;
  data_type: string;
}

/** A blind-index column computed from one column (`index`) or several (`compound`) of the same row's plaintext. */
export interface BlindIndexColumn {
  /** The index's name in the indexer (its definition: key, normalisers, bits). */
  name: string;
  from: readonly string[];
}

export interface TableFields {
  /** The primary-key column whose value the ciphertexts are bound to. */
  id: string;
  encrypted: Readonly<Record<string, EncryptedColumn>>;
  indexes?: Readonly<Record<string, BlindIndexColumn>>;
}

/** What the plugin needs of a blind indexer (`BlindIndexer` fits). */
export interface BlindIndexSource {
  index(name: string, value: unknown): string | null;
  compound(name: string, values: readonly unknown[]): string | null;
}

export interface FieldEncryptionPluginOptions {
  encryptor: Pick<FieldEncryptor, 'encryptField' | 'decryptField'>;
  indexer?: BlindIndexSource;
  tables: Readonly<Record<string, TableFields>>;
}

/** A value to be encrypted when the query runs. */
class PendingField {
  constructor(
    readonly value: unknown,
    readonly recordId: string,
    readonly path: string,
    readonly column: EncryptedColumn,
  ) {}
}

const invalid = (message: string) => new PalisadeError('PAL_FIELD_SCHEMA_INVALID', message);

function tableName(node: OperationNode | undefined): string | undefined {
  const n = node as { kind?: string; table?: { identifier?: { name?: string } } } | undefined;
  return n?.kind === 'TableNode' ? n.table?.identifier?.name : undefined;
}

function columnName(node: OperationNode): string | undefined {
  const n = node as { kind: string; column?: { name?: string; column?: { name?: string } } };
  if (n.kind === 'ColumnNode') return n.column?.name;
  if (n.kind === 'ReferenceNode') return n.column?.column?.name;
  return undefined;
}

/** The `<id> = <value>` of a where clause (possibly inside ANDs), if there is exactly one. */
function idFromWhere(node: OperationNode | undefined, id: string): unknown {
  const n = node as { kind?: string; where?: OperationNode; leftOperand?: OperationNode; operator?: { operator?: string }; rightOperand?: { kind?: string; value?: unknown } } | undefined;
  if (!n) return undefined;
  if (n.kind === 'WhereNode') return idFromWhere(n.where, id);
  if (n.kind === 'AndNode') return idFromWhere(n.leftOperand, id) ?? idFromWhere(n.rightOperand as OperationNode, id);
  if (n.kind === 'BinaryOperationNode' && n.operator?.operator === '=' && n.leftOperand && columnName(n.leftOperand) === id && n.rightOperand?.kind === 'ValueNode') return n.rightOperand.value;
  return undefined;
}

export class FieldEncryptionPlugin implements KyselyPlugin {
  /** The configured table each query reads or writes (its rows are decrypted by that table's columns only). */
  readonly #tableOf = new WeakMap<QueryId, string>();

  constructor(private readonly opts: FieldEncryptionPluginOptions) {}

  /** The blind-index value to look a plaintext up by (`where <index column> = fields.index(table, column, value)`). */
  index(table: string, indexColumn: string, ...values: unknown[]): string | null {
    const def = this.opts.tables[table]?.indexes?.[indexColumn];
    if (!def || !this.opts.indexer) throw invalid(`${table}.${indexColumn} is not a blind-index column`);
    if (values.length !== def.from.length) throw invalid(`${table}.${indexColumn} is computed from ${def.from.join(', ')}: give ${def.from.length} value(s)`);
    return this.#indexValue(table, indexColumn, def, values);
  }

  #indexValue(table: string, column: string, def: BlindIndexColumn, values: readonly unknown[]): string | null {
    if (!this.opts.indexer) throw invalid(`${table}.${column} is a blind-index column, and the plugin has no indexer`);
    return def.from.length === 1 ? this.opts.indexer.index(def.name, values[0]) : this.opts.indexer.compound(def.name, values);
  }

  /** `inner`, with connections that encrypt the plugin's placeholders before each query runs. */
  dialect(inner: Dialect): Dialect {
    const encrypt = async (p: PendingField): Promise<string> =>
      (await this.opts.encryptor.encryptField(p.value, { recordId: p.recordId, path: p.path, classification: p.column.classification, data_type: p.column.data_type, form: 'compact' })) as string;
    return {
      createDriver: () => wrapDriver(inner.createDriver(), encrypt),
      createQueryCompiler: () => inner.createQueryCompiler(),
      createAdapter: () => inner.createAdapter(),
      createIntrospector: (db) => inner.createIntrospector(db),
    };
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node as RootOperationNode & { kind: string; from?: { froms?: ReadonlyArray<OperationNode> }; into?: OperationNode; table?: OperationNode };
    // The table whose rows this query answers with, so that only its encrypted columns are decrypted.
    const from = node.kind === 'SelectQueryNode' ? node.from?.froms?.[0] : node.kind === 'InsertQueryNode' ? node.into : node.table;
    const aliased = from as { kind?: string; node?: OperationNode } | undefined;
    const table = tableName(aliased?.kind === 'AliasNode' ? aliased.node : from);
    if (table && this.opts.tables[table]) this.#tableOf.set(args.queryId, table);
    if (node.kind === 'InsertQueryNode') return this.#insert(node as never);
    if (node.kind === 'UpdateQueryNode') return this.#update(node as never);
    return node;
  }

  #insert(node: { into?: OperationNode; columns?: ReadonlyArray<OperationNode>; values?: OperationNode } & RootOperationNode): RootOperationNode {
    const table = tableName(node.into);
    const cfg = table ? this.opts.tables[table] : undefined;
    const values = node.values as { kind: string; values: ReadonlyArray<{ kind: string; values: ReadonlyArray<unknown> }> } | undefined;
    if (!cfg || !table || !node.columns || values?.kind !== 'ValuesNode') return node;
    const columns = node.columns.map((c) => columnName(c) ?? '');
    if (!columns.some((c) => c in cfg.encrypted)) return node;
    const idAt = columns.indexOf(cfg.id);
    if (idAt < 0) throw invalid(`an insert into ${table} must give ${cfg.id}: the encrypted columns are bound to it`);
    const indexes = Object.entries(cfg.indexes ?? {});
    for (const [c] of indexes) if (columns.includes(c)) throw invalid(`${table}.${c} is a blind index: the plugin computes it`);
    const rows = values.values.map((row) => {
      // A row is plain values, or nodes (then an expression — a function call, a subquery — may stand for a value).
      const nodes = row.kind === 'ValueListNode';
      const plain = (i: number): unknown => {
        const v = row.values[i];
        if (!nodes) return v;
        if ((v as { kind: string }).kind !== 'ValueNode') throw invalid(`${table}.${columns[i]} is encrypted or indexed: give it a value, not an expression`);
        return (v as { value: unknown }).value;
      };
      const recordId = String(plain(idAt));
      const out = row.values.map((v, i) => {
        const col = cfg.encrypted[columns[i]!];
        const value = col ? plain(i) : undefined;
        if (!col || value === null || value === undefined) return v;
        const pending = new PendingField(value, recordId, `${table}.${columns[i]}`, col);
        return nodes ? { kind: 'ValueNode', value: pending } : pending;
      });
      for (const [indexColumn, def] of indexes) {
        const sources = def.from.map((f) => columns.indexOf(f));
        if (sources.some((i) => i < 0)) throw invalid(`an insert into ${table} must give ${def.from.join(', ')} to compute ${indexColumn}`);
        const index = this.#indexValue(table, indexColumn, def, sources.map(plain));
        out.push(nodes ? { kind: 'ValueNode', value: index } : index);
      }
      return { kind: row.kind, values: out };
    });
    const indexColumns = indexes.map(([c]) => ({ kind: 'ColumnNode', column: { kind: 'IdentifierNode', name: c } }));
    return { ...node, columns: [...node.columns, ...indexColumns], values: { ...values, values: rows } } as unknown as RootOperationNode;
  }

  #update(node: { table?: OperationNode; updates?: ReadonlyArray<{ kind: string; column: OperationNode; value: OperationNode }>; where?: OperationNode } & RootOperationNode): RootOperationNode {
    const table = tableName(node.table);
    const cfg = table ? this.opts.tables[table] : undefined;
    if (!cfg || !table || !node.updates) return node;
    const set = new Map(node.updates.map((u) => [columnName(u.column) ?? '', u]));
    const touched = [...set.keys()].filter((c) => c in cfg.encrypted);
    if (touched.length === 0) return node;
    const id = idFromWhere(node.where, cfg.id);
    if (id === undefined || id === null) throw invalid(`an update of ${table}.${touched.join(', ')} must be where ${cfg.id} = <value>: the ciphertext is bound to the row`);
    const plain = (c: string) => {
      const v = set.get(c)!.value as { kind: string; value?: unknown };
      if (v.kind !== 'ValueNode') throw invalid(`${table}.${c} is encrypted: set it to a value, not an expression`);
      return v.value;
    };
    const updates = node.updates.map((u) => {
      const c = columnName(u.column) ?? '';
      const col = cfg.encrypted[c];
      if (!col) return u;
      const v = plain(c);
      return v === null || v === undefined ? u : { ...u, value: { kind: 'ValueNode', value: new PendingField(v, String(id), `${table}.${c}`, col) } };
    });
    for (const [indexColumn, def] of Object.entries(cfg.indexes ?? {})) {
      if (set.has(indexColumn)) throw invalid(`${table}.${indexColumn} is a blind index: the plugin computes it`);
      const given = def.from.filter((f) => set.has(f));
      if (given.length === 0) continue;
      if (given.length < def.from.length) throw invalid(`${table}.${indexColumn} is computed from ${def.from.join(', ')}: update them together`);
      const values = def.from.map(plain);
      updates.push({ kind: 'ColumnUpdateNode', column: { kind: 'ColumnNode', column: { kind: 'IdentifierNode', name: indexColumn } } as never, value: { kind: 'ValueNode', value: this.#indexValue(table, indexColumn, def, values) } as never });
    }
    return { ...node, updates } as unknown as RootOperationNode;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const table = this.#tableOf.get(args.queryId);
    const cfg = table ? this.opts.tables[table] : undefined;
    const rows = args.result.rows;
    if (!cfg || !table || rows.length === 0) return args.result;
    const encrypted = Object.keys(cfg.encrypted);
    const out = await Promise.all(
      rows.map(async (row) => {
        let copy: UnknownRow | null = null;
        for (const column of encrypted) {
          const v = row[column];
          if (v === null || v === undefined || (typeof v === 'string' && !looksLikeCompactEnvelope(v))) continue;
          if (row[cfg.id] === undefined) throw invalid(`select ${table}.${cfg.id} with ${column}: the ciphertext is bound to it`);
          copy ??= { ...row };
          copy[column] = await this.opts.encryptor.decryptField(v, { recordId: String(row[cfg.id]), path: `${table}.${column}` });
        }
        return copy ?? row;
      }),
    );
    return { ...args.result, rows: out };
  }
}

/** Encrypt the placeholders among a query's parameters (each in compact form, for a text column). */
async function resolve(query: CompiledQuery, encrypt: (p: PendingField) => Promise<string>): Promise<CompiledQuery> {
  if (!query.parameters.some((p) => p instanceof PendingField)) return query;
  const parameters = await Promise.all(query.parameters.map((p) => (p instanceof PendingField ? encrypt(p) : p)));
  return { ...query, parameters };
}

/** `inner`, whose connections encrypt placeholders; the driver's own methods get its own connections back. */
function wrapDriver(inner: Driver, encrypt: (p: PendingField) => Promise<string>): Driver {
  const own = new WeakMap<DatabaseConnection, DatabaseConnection>();
  const unwrap = (c: DatabaseConnection) => own.get(c) ?? c;
  const wrap = (conn: DatabaseConnection): DatabaseConnection => {
    const w: DatabaseConnection = {
      executeQuery: async (q) => conn.executeQuery(await resolve(q, encrypt)),
      streamQuery: (q, chunkSize) => {
        if (q.parameters.some((p) => p instanceof PendingField)) throw invalid('encrypted columns cannot be written by a streamed query');
        return conn.streamQuery(q, chunkSize);
      },
    };
    own.set(w, conn);
    return w;
  };
  return {
    init: () => inner.init(),
    acquireConnection: async () => wrap(await inner.acquireConnection()),
    beginTransaction: (c, s: TransactionSettings) => inner.beginTransaction(unwrap(c), s),
    commitTransaction: (c) => inner.commitTransaction(unwrap(c)),
    rollbackTransaction: (c) => inner.rollbackTransaction(unwrap(c)),
    ...(inner.savepoint ? { savepoint: (c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]) => inner.savepoint!(unwrap(c), name, compile) } : {}),
    ...(inner.rollbackToSavepoint ? { rollbackToSavepoint: (c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]) => inner.rollbackToSavepoint!(unwrap(c), name, compile) } : {}),
    ...(inner.releaseSavepoint ? { releaseSavepoint: (c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]) => inner.releaseSavepoint!(unwrap(c), name, compile) } : {}),
    releaseConnection: (c) => inner.releaseConnection(unwrap(c)),
    destroy: () => inner.destroy(),
  };
}
