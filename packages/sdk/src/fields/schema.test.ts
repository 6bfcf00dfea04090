import { describe, expect, it } from 'vitest';
import { compileSchema, formatPath, parsePath, slots } from './schema.js';

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

describe('field paths and the classification schema', () => {
  it('parses a.b, items[*].c, items[].c and nested arrays; [] is written [*]', () => {
    expect(parsePath('ssn')).toEqual([{ key: 'ssn' }]);
    expect(parsePath('address.street')).toEqual([{ key: 'address' }, { key: 'street' }]);
    expect(parsePath('items[].ssn')).toEqual([{ key: 'items' }, { each: true }, { key: 'ssn' }]);
    expect(formatPath(parsePath('items[].ssn'))).toBe('items[*].ssn');
    expect(formatPath(parsePath('m[][*].x'))).toBe('m[*][*].x');
    for (const bad of ['', 'a..b', '.a', 'a.', 'a[0]', 'a[*', 'a]']) expect(codeOf(() => parsePath(bad)), bad).toBe('PAL_FIELD_SCHEMA_INVALID');
  });

  it('refuses overlapping paths, unknown classifications and bad data types; drops public fields', () => {
    const ok = compileSchema({ fields: { ssn: { classification: 'restricted', data_type: 'ssn' }, name: { classification: 'public', data_type: 'name' }, 'items[].card': { classification: 'confidential', data_type: 'pan' } } });
    expect(ok.map((f) => [f.path, f.classification])).toEqual([['ssn', 'restricted'], ['items[*].card', 'confidential']]);
    expect(codeOf(() => compileSchema({ fields: { a: { classification: 'internal', data_type: 'x' }, 'a.b': { classification: 'internal', data_type: 'x' } } }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(codeOf(() => compileSchema({ fields: { 'items[*]': { classification: 'internal', data_type: 'x' }, 'items[].b': { classification: 'internal', data_type: 'x' } } }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(codeOf(() => compileSchema({ fields: { a: { classification: 'secret' as 'internal', data_type: 'x' } } }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(codeOf(() => compileSchema({ fields: { a: { classification: 'internal', data_type: 'Bad Type' } } }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(compileSchema({ fields: { a: { classification: 'internal', data_type: 'x' }, ab: { classification: 'internal', data_type: 'x' } } })).toHaveLength(2);
  });

  it('walks nested objects and arrays; missing values are skipped, a wrong shape is an error', () => {
    const [f] = compileSchema({ fields: { 'orders[*].lines[*].card': { classification: 'restricted', data_type: 'pan' } } });
    const rec = { orders: [{ lines: [{ card: 1 }, { other: 2 }, { card: { n: 3 } }] }, {}, { lines: [] }] };
    const found = slots(rec, f!);
    expect(found.map((s) => [s.at, s.value])).toEqual([['orders[0].lines[0].card', 1], ['orders[0].lines[2].card', { n: 3 }]]);
    found[0]!.set('x');
    expect(rec.orders[0]!.lines![0]!.card).toBe('x');
    expect(slots({}, f!)).toEqual([]);
    expect(codeOf(() => slots({ orders: { lines: [] } }, f!))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(codeOf(() => slots({ orders: [[1]] }, f!))).toBe('PAL_FIELD_SCHEMA_INVALID');
  });
});
