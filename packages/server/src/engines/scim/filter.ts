/**
 * SCIM filters (RFC 7644 §3.4.2.2): a lexer and a recursive-descent parser to an AST, then a compiler that resolves
 * every attribute against the schema (unknown names and type-mismatched comparisons are `invalidFilter` before any
 * row is read) and evaluates over the SCIM representation. Precedence: `not` > `and` > `or`; attribute names and
 * operators are case-insensitive; strings of caseExact=false attributes compare caselessly.
 */
import type { PalisadeError } from '@palisade/core';
import { scimError } from './errors.js';
import { isObject, parseAttrPath, resolvePath, resolveSub, valuesOf, type AttrPath } from './paths.js';
import { attributeOf, type AttributeDef, type ResourceSchema } from './schema.js';

export type Comparison = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
export type Literal = string | number | boolean | null;

export type Filter =
  | { type: 'logical'; op: 'and' | 'or'; left: Filter; right: Filter }
  | { type: 'not'; filter: Filter }
  | { type: 'present'; path: AttrPath }
  | { type: 'compare'; op: Comparison; path: AttrPath; value: Literal }
  | { type: 'valuePath'; path: AttrPath; filter: Filter };

const COMPARISONS: ReadonlySet<string> = new Set(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']);
/** Long enough for any real filter; bounds the work a hostile one can cause. */
const MAX_FILTER_LENGTH = 4096;
const MAX_DEPTH = 32;

// --------------------------------------------------------------------------------------------------------- lexer
export type Token = { kind: 'word' | 'string' | '(' | ')' | '[' | ']'; text: string; pos: number };

export function lex(input: string, fail: (detail: string) => PalisadeError): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      tokens.push({ kind: c, text: c, pos: i++ });
    } else if (c === '"') {
      let j = i + 1;
      while (j < input.length && input[j] !== '"') j += input[j] === '\\' ? 2 : 1;
      if (j >= input.length) throw fail(`unterminated string at ${i}`);
      let text: string;
      try {
        text = JSON.parse(input.slice(i, j + 1)) as string;
      } catch {
        throw fail(`invalid string at ${i}`);
      }
      tokens.push({ kind: 'string', text, pos: i });
      i = j + 1;
    } else {
      let j = i;
      while (j < input.length && !/[\s()[\]"]/.test(input[j]!)) j++;
      tokens.push({ kind: 'word', text: input.slice(i, j), pos: i });
      i = j;
    }
  }
  return tokens;
}

// -------------------------------------------------------------------------------------------------------- parser
/** A cursor over tokens with the filter grammar; PATCH paths reuse it for their `attr[filter]` part. */
export class FilterParser {
  #i = 0;
  #depth = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly fail: (detail: string) => PalisadeError,
  ) {}

  get done(): boolean {
    return this.#i >= this.tokens.length;
  }

  peek(): Token | undefined {
    return this.tokens[this.#i];
  }

  next(): Token {
    const t = this.tokens[this.#i++];
    if (!t) throw this.fail('the filter ends too early');
    return t;
  }

  expect(kind: Token['kind']): Token {
    const t = this.next();
    if (t.kind !== kind) throw this.fail(`expected ${kind} at ${t.pos}, found ${JSON.stringify(t.text)}`);
    return t;
  }

  #keyword(word: string): boolean {
    const t = this.peek();
    return t?.kind === 'word' && t.text.toLowerCase() === word;
  }

  path(): AttrPath {
    const t = this.next();
    const path = t.kind === 'word' ? parseAttrPath(t.text) : null;
    if (!path) throw this.fail(`expected an attribute path at ${t.pos}, found ${JSON.stringify(t.text)}`);
    return path;
  }

  /** filter := and ("or" and)* */
  filter(nested = false): Filter {
    if (++this.#depth > MAX_DEPTH) throw this.fail('the filter nests too deeply');
    let left = this.#and(nested);
    while (this.#keyword('or')) {
      this.next();
      left = { type: 'logical', op: 'or', left, right: this.#and(nested) };
    }
    this.#depth--;
    return left;
  }

  #and(nested: boolean): Filter {
    let left = this.#unary(nested);
    while (this.#keyword('and')) {
      this.next();
      left = { type: 'logical', op: 'and', left, right: this.#unary(nested) };
    }
    return left;
  }

  #unary(nested: boolean): Filter {
    if (this.#keyword('not')) {
      this.next();
      this.expect('(');
      const inner = this.filter(nested);
      this.expect(')');
      return { type: 'not', filter: inner };
    }
    if (this.peek()?.kind === '(') {
      this.next();
      const inner = this.filter(nested);
      this.expect(')');
      return inner;
    }
    const path = this.path();
    if (this.peek()?.kind === '[') {
      if (nested) throw this.fail(`${path.text}[...]: value filters do not nest`);
      this.next();
      const inner = this.filter(true);
      this.expect(']');
      return { type: 'valuePath', path, filter: inner };
    }
    const opToken = this.next();
    const op = opToken.kind === 'word' ? opToken.text.toLowerCase() : '';
    if (op === 'pr') return { type: 'present', path };
    if (!COMPARISONS.has(op)) throw this.fail(`expected an operator after ${path.text}, found ${JSON.stringify(opToken.text)}`);
    return { type: 'compare', op: op as Comparison, path, value: this.#literal() };
  }

  #literal(): Literal {
    const t = this.next();
    if (t.kind === 'string') return t.text;
    if (t.kind === 'word') {
      const w = t.text.toLowerCase();
      if (w === 'true') return true;
      if (w === 'false') return false;
      if (w === 'null') return null;
      if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t.text)) return Number(t.text);
    }
    throw this.fail(`expected a value at ${t.pos}, found ${JSON.stringify(t.text)}`);
  }
}

const invalidFilter = (detail: string) => scimError('invalidFilter', detail);

/** A filter string as its AST; 400 invalidFilter when it is not one. */
export function parseFilter(input: string): Filter {
  if (input.length > MAX_FILTER_LENGTH) throw invalidFilter(`the filter is longer than ${MAX_FILTER_LENGTH} characters`);
  const p = new FilterParser(lex(input, invalidFilter), invalidFilter);
  if (p.done) throw invalidFilter('the filter is empty');
  const f = p.filter();
  if (!p.done) throw invalidFilter(`unexpected ${JSON.stringify(p.peek()?.text)} at ${p.peek()?.pos}`);
  return f;
}

// ------------------------------------------------------------------------------------------------------ evaluate
export type Predicate = (resource: Record<string, unknown>) => boolean;

/** Where the paths of a (sub-)filter point: the resource's attributes, or the sub-attributes of one complex value. */
interface Target {
  leaf: AttributeDef;
  values: (obj: Record<string, unknown>) => unknown[];
}
type Scope = (path: AttrPath) => Target | null;

const caseless = (s: string): string => s.normalize('NFKC').toLowerCase();

function resourceScope(schema: ResourceSchema): Scope {
  return (path) => {
    const r = resolvePath(schema, path, invalidFilter);
    if (r.kind === 'ignored') return null;
    const { def, sub } = r;
    if (sub) return { leaf: sub, values: (o) => valuesOf(o[def.name], def.multiValued).map((e) => (isObject(e) ? e[sub.name] : undefined)) };
    return { leaf: def, values: (o) => valuesOf(o[def.name], def.multiValued) };
  };
}

function elementScope(parent: AttributeDef): Scope {
  return (path) => {
    const sub = resolveSub(parent, path, invalidFilter);
    return { leaf: sub, values: (o) => valuesOf(o[sub.name], sub.multiValued) };
  };
}

const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0) && !(isObject(v) && Object.keys(v).length === 0);

function comparator(op: Comparison, leaf: AttributeDef, literal: Literal, text: string): (v: unknown) => boolean {
  if (leaf.type === 'boolean') {
    if (typeof literal !== 'boolean') throw invalidFilter(`${text}: ${leaf.name} is a boolean`);
    if (op !== 'eq' && op !== 'ne') throw invalidFilter(`${text}: ${op} does not apply to booleans`);
    return (v) => v === literal;
  }
  if (typeof literal !== 'string') throw invalidFilter(`${text}: ${leaf.name} compares with a string`);
  if (leaf.type === 'dateTime' && op !== 'co' && op !== 'sw' && op !== 'ew') {
    const t = Date.parse(literal);
    if (Number.isNaN(t)) throw invalidFilter(`${text}: ${JSON.stringify(literal)} is not a date-time`);
    const cmp = ORDER[op];
    return (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)) && cmp(Date.parse(v), t);
  }
  const norm = leaf.caseExact ? (s: string) => s : caseless;
  const b = norm(literal);
  const test = STRING[op];
  return (v) => typeof v === 'string' && test(norm(v), b);
}

const ORDER: Record<Comparison, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a === b, // negated by the caller
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  co: () => false,
  sw: () => false,
  ew: () => false,
};

const STRING: Record<Comparison, (a: string, b: string) => boolean> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a === b, // negated by the caller
  co: (a, b) => a.includes(b),
  sw: (a, b) => a.startsWith(b),
  ew: (a, b) => a.endsWith(b),
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
};

function compile(f: Filter, scope: Scope): Predicate {
  switch (f.type) {
    case 'logical': {
      const l = compile(f.left, scope);
      const r = compile(f.right, scope);
      return f.op === 'and' ? (o) => l(o) && r(o) : (o) => l(o) || r(o);
    }
    case 'not': {
      const inner = compile(f.filter, scope);
      return (o) => !inner(o);
    }
    case 'present': {
      const t = scope(f.path);
      return t ? (o) => t.values(o).some(present) : () => false;
    }
    case 'valuePath': {
      const t = scope(f.path);
      if (!t) return () => false;
      if (t.leaf.type !== 'complex' || f.path.sub !== null) throw invalidFilter(`${f.path.text}[...]: only complex attributes take a value filter`);
      const inner = compile(f.filter, elementScope(t.leaf));
      return (o) => t.values(o).some((e) => isObject(e) && inner(e));
    }
    case 'compare': {
      const t = scope(f.path);
      const negate = f.op === 'ne';
      if (!t) return f.value === null ? () => !negate : () => negate; // an attribute we do not store is absent
      let { leaf, values } = t;
      // A multi-valued complex attribute compares by its `value` (`members eq "usr_1"`, `emails co "@example.com"`).
      if (leaf.type === 'complex') {
        const value = leaf.multiValued ? attributeOf(leaf.subAttributes, 'value') : undefined;
        if (!value) throw invalidFilter(`${f.path.text}: compare a sub-attribute of ${leaf.name}`);
        const outer = values;
        values = (o) => outer(o).map((e) => (isObject(e) ? e.value : undefined));
        leaf = value;
      }
      if (f.value === null) {
        if (!negate && f.op !== 'eq') throw invalidFilter(`${f.path.text}: null compares with eq or ne only`);
        return (o) => values(o).some(present) === negate;
      }
      const test = comparator(f.op, leaf, f.value, f.path.text);
      return (o) => values(o).some(test) !== negate;
    }
  }
}

/** The filter as a predicate over `schema`'s SCIM representation; invalidFilter for names or types that do not fit. */
export function compileFilter(f: Filter, schema: ResourceSchema): Predicate {
  return compile(f, resourceScope(schema));
}

/**
 * The indexed equality an `and`-chain starts from (`userName eq "x"`, `externalId eq "x"`, `id eq "x"`), so the
 * lookups IdPs make before every create use the directory's indexes instead of a scan.
 */
export function indexedEquality(f: Filter, schema: ResourceSchema, attributes: readonly string[]): { attr: string; value: string } | null {
  if (f.type === 'logical' && f.op === 'and') return indexedEquality(f.left, schema, attributes) ?? indexedEquality(f.right, schema, attributes);
  if (f.type !== 'compare' || f.op !== 'eq' || typeof f.value !== 'string' || f.path.sub !== null) return null;
  if (f.path.uri !== null && f.path.uri.toLowerCase() !== schema.id.toLowerCase()) return null;
  const attr = attributes.find((a) => a.toLowerCase() === f.path.attr.toLowerCase());
  return attr ? { attr, value: f.value } : null;
}
