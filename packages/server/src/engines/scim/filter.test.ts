import { describe, expect, it } from 'vitest';
import { PalisadeError } from '@palisade/core';
import { compileFilter, indexedEquality, parseFilter } from './filter.js';
import { GROUP, USER } from './schema.js';

const alice = {
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
  id: 'usr_1',
  externalId: 'Ext-1',
  userName: 'Alice@Example.com',
  name: { givenName: 'Alice', familyName: 'Jensen', formatted: 'Alice Jensen' },
  displayName: 'Alice Jensen',
  emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
  active: true,
  groups: [{ value: 'grp_1', display: 'Admins' }],
  meta: { resourceType: 'User', created: '2024-01-01T00:00:00.000Z', lastModified: '2024-06-01T12:00:00.000Z', version: 'W/"3"' },
};

const matches = (filter: string, r: Record<string, unknown> = alice) => compileFilter(parseFilter(filter), USER)(r);

function scimTypeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as PalisadeError).extensions.scimType as string;
  }
  throw new Error('expected an error');
}

describe('SCIM filter', () => {
  it.each([
    ['userName eq "alice@example.com"', true], // caseExact=false: caseless
    ['USERNAME EQ "ALICE@EXAMPLE.COM"', true], // attribute names and operators are case-insensitive
    ['urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice"', true],
    ['externalId eq "ext-1"', false], // caseExact=true
    ['externalId eq "Ext-1"', true],
    ['name.familyName co "ens"', true],
    ['emails.value ew "@example.com"', true],
    ['emails co "@example"', true], // a multi-valued complex attribute compares by value
    ['emails[type eq "work" and primary eq true]', true],
    ['emails[type eq "home"]', false],
    ['active eq true and not (displayName pr)', false],
    ['active eq false or displayName sw "Ali"', true],
    ['meta.lastModified gt "2024-05-01T00:00:00Z"', true],
    ['meta.lastModified lt "2024-05-01T00:00:00Z"', false],
    ['groups.value eq "grp_1"', true],
    ['title pr', false], // defined by RFC 7643, not kept: absent
    ['title ne "x"', true],
    ['nickName eq null', true],
    ['displayName ne null', true],
    ['(userName eq "x" or userName eq "alice@example.com") and active eq true', true],
    ['userName eq "x" or userName eq "y" and active eq true', false],
    ['not(userName eq "x")', true],
    ['userName eq "Alice \\"Quoted\\""', false],
  ])('%s → %s', (filter, expected) => {
    expect(matches(filter)).toBe(expected);
  });

  it('binds and tighter than or', () => {
    const f = parseFilter('a eq "1" or b eq "2" and c eq "3"');
    expect(f).toMatchObject({ type: 'logical', op: 'or', right: { type: 'logical', op: 'and' } });
  });

  it.each([
    'userName',
    'userName eq',
    'userName xx "a"',
    'userName eq "unterminated',
    '(userName eq "a"',
    'userName eq "a")',
    'userName eq "a" and',
    'foo eq "a"', // no such attribute
    'name eq "a"', // compare a sub-attribute
    'active gt true', // booleans have no order
    'active eq "yes"',
    'userName eq 12',
    'meta.created gt "not a date"',
    'emails[type eq "work" and emails[value pr]]', // value filters do not nest
    'urn:example:unknown:userName eq "a"',
    '',
  ])('%j → invalidFilter', (filter) => {
    expect(scimTypeOf(() => compileFilter(parseFilter(filter), USER))).toBe('invalidFilter');
  });

  it('finds the indexed equality in an and-chain, and none in an or', () => {
    expect(indexedEquality(parseFilter('userName eq "bob"'), USER, ['userName', 'externalId'])).toEqual({ attr: 'userName', value: 'bob' });
    expect(indexedEquality(parseFilter('active eq true and EXTERNALID eq "x"'), USER, ['userName', 'externalId'])).toEqual({ attr: 'externalId', value: 'x' });
    expect(indexedEquality(parseFilter('userName eq "a" or userName eq "b"'), USER, ['userName'])).toBeNull();
    expect(indexedEquality(parseFilter('displayName eq "Admins"'), GROUP, ['displayName'])).toEqual({ attr: 'displayName', value: 'Admins' });
  });

  it('Azure AD\'s membership check: id eq and members eq', () => {
    const group = { id: 'grp_1', displayName: 'Admins', members: [{ value: 'usr_1' }, { value: 'usr_2' }] };
    expect(compileFilter(parseFilter('id eq "grp_1" and members eq "usr_2"'), GROUP)(group)).toBe(true);
    expect(compileFilter(parseFilter('id eq "grp_1" and members eq "usr_3"'), GROUP)(group)).toBe(false);
  });

  it('rejects a filter longer than the bound, and deep nesting, without recursion errors', () => {
    expect(scimTypeOf(() => parseFilter(`userName eq "${'a'.repeat(5000)}"`))).toBe('invalidFilter');
    expect(scimTypeOf(() => parseFilter(`${'('.repeat(100)}userName pr${')'.repeat(100)}`))).toBe('invalidFilter');
  });
});
