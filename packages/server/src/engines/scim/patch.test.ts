import { describe, expect, it } from 'vitest';
import type { PalisadeError } from '@palisade/core';
import { applyPatch, readPatch } from './patch.js';
import { GROUP, PATCH_OP, USER } from './schema.js';

const user = () => ({
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
  id: 'usr_1',
  userName: 'alice@example.com',
  name: { givenName: 'Alice', familyName: 'Jensen' },
  emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
  active: true,
  groups: [],
  meta: { resourceType: 'User' },
});

const group = () => ({
  id: 'grp_1',
  displayName: 'Admins',
  members: [
    { value: 'usr_1', display: 'Alice' },
    { value: 'usr_2', display: 'Bob' },
  ],
});

const patch = (doc: Record<string, unknown>, Operations: unknown[], schema = USER) => applyPatch(schema, doc, readPatch({ schemas: [PATCH_OP], Operations }));

function scimTypeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as PalisadeError).extensions.scimType as string;
  }
  throw new Error('expected an error');
}

describe('SCIM PATCH', () => {
  it('Azure AD deprovisioning: {"op":"Replace","path":"active","value":"False"}', () => {
    expect(patch(user(), [{ op: 'Replace', path: 'active', value: 'False' }]).active).toBe(false);
  });

  it('Okta deprovisioning: replace without a path', () => {
    expect(patch(user(), [{ op: 'replace', value: { active: false } }]).active).toBe(false);
  });

  it('Azure AD attribute updates: dotted and filtered paths', () => {
    const r = patch(user(), [
      { op: 'Replace', path: 'name.familyName', value: 'Smith' },
      { op: 'Replace', path: 'emails[type eq "work"].value', value: 'alice.smith@example.com' },
      { op: 'Add', path: 'displayName', value: 'Alice Smith' },
      { op: 'Add', path: 'title', value: 'Engineer' }, // RFC 7643 attribute Palisade does not keep: dropped
      { op: 'Add', path: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department', value: 'R&D' },
    ]);
    expect(r).toMatchObject({ name: { givenName: 'Alice', familyName: 'Smith' }, emails: [{ value: 'alice.smith@example.com', type: 'work', primary: true }], displayName: 'Alice Smith' });
    expect(r).not.toHaveProperty('title');
  });

  it('a value object with dotted and URN keys', () => {
    const r = patch(user(), [{ op: 'replace', value: { 'name.givenName': 'Alicia', 'urn:ietf:params:scim:schemas:core:2.0:User:displayName': 'Alicia J', id: 'ignored', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: '7' } } }]);
    expect(r).toMatchObject({ id: 'usr_1', name: { givenName: 'Alicia', familyName: 'Jensen' }, displayName: 'Alicia J' });
  });

  it('a filtered path that matches nothing but names its element adds it', () => {
    const r = patch({ ...user(), emails: [] }, [{ op: 'add', path: 'emails[type eq "work"].value', value: 'new@example.com' }]);
    expect(r.emails).toEqual([{ type: 'work', value: 'new@example.com' }]);
  });

  it('remove: a path, a sub-attribute, and what is not there (a no-op)', () => {
    const r = patch(user(), [
      { op: 'remove', path: 'name.givenName' },
      { op: 'remove', path: 'emails[type eq "home"]' },
      { op: 'remove', path: 'displayName' },
    ]);
    expect(r.name).toEqual({ familyName: 'Jensen' });
    expect(r.emails).toHaveLength(1);
  });

  it('Okta group membership: add a list, remove by filter, rename with id in the value', () => {
    const r = patch(
      group(),
      [
        { op: 'add', path: 'members', value: [{ value: 'usr_3', display: 'Carol' }, { value: 'usr_1' }] },
        { op: 'remove', path: 'members[value eq "usr_2"]' },
        { op: 'replace', value: { id: 'grp_1', displayName: 'Platform Admins' } },
      ],
      GROUP,
    );
    expect(r.displayName).toBe('Platform Admins');
    expect((r.members as Array<{ value: string }>).map((m) => m.value)).toEqual(['usr_1', 'usr_3']);
  });

  it('Azure AD group membership: Add and Remove with value lists', () => {
    const r = patch(
      group(),
      [
        { op: 'Add', path: 'members', value: [{ value: 'usr_3' }] },
        { op: 'Remove', path: 'members', value: [{ value: 'usr_1' }] },
      ],
      GROUP,
    );
    expect((r.members as Array<{ value: string }>).map((m) => m.value)).toEqual(['usr_2', 'usr_3']);
  });

  it('replace members replaces the list; remove members without a value empties it', () => {
    expect(patch(group(), [{ op: 'replace', path: 'members', value: [{ value: 'usr_9' }] }], GROUP).members).toEqual([{ value: 'usr_9' }]);
    expect(patch(group(), [{ op: 'remove', path: 'members' }], GROUP)).not.toHaveProperty('members');
  });

  it.each([
    [[{ op: 'replace', path: 'favouriteColour', value: 'blue' }], 'invalidPath'],
    [[{ op: 'replace', value: { favouriteColour: 'blue' } }], 'invalidPath'],
    [[{ op: 'replace', path: 'name.nickname', value: 'x' }], 'invalidPath'],
    [[{ op: 'replace', path: 'emails[type eq "work"' }], 'invalidPath'],
    [[{ op: 'replace', path: 'emails[bogus eq "x"].value', value: 'x' }], 'invalidPath'],
    [[{ op: 'replace', path: 'emails[value co "zzz"].value', value: 'y' }], 'noTarget'],
    [[{ op: 'remove' }], 'noTarget'],
    [[{ op: 'replace', path: 'id', value: 'usr_2' }], 'mutability'],
    [[{ op: 'add', path: 'groups', value: [{ value: 'grp_1' }] }], 'mutability'],
    [[{ op: 'replace', path: 'active', value: 'maybe' }], 'invalidValue'],
    [[{ op: 'replace', path: 'userName', value: 42 }], 'invalidValue'],
    [[{ op: 'replace', path: 'active' }], 'invalidValue'],
    [[{ op: 'move', path: 'active', value: true }], 'invalidSyntax'],
    [[], 'invalidSyntax'],
  ])('%j → %s', (ops, scimType) => {
    expect(scimTypeOf(() => patch(user(), ops))).toBe(scimType);
  });

  it('leaves the input untouched (all or nothing)', () => {
    const before = user();
    expect(() => patch(before, [{ op: 'replace', path: 'active', value: false }, { op: 'replace', path: 'nope', value: 1 }])).toThrow();
    expect(before.active).toBe(true);
  });
});
