/**
 * The attributes Palisade's SCIM resources have (RFC 7643 §4 and §8.7.1), as one table. The same table drives the
 * /Schemas document, filter evaluation (names are case-insensitive; caseExact decides how strings compare), PATCH
 * paths and the `attributes`/`excludedAttributes` projection, so what we advertise is what we do.
 */

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

export type AttributeType = 'string' | 'boolean' | 'complex' | 'dateTime' | 'reference';

export interface AttributeDef {
  name: string;
  type: AttributeType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: 'readOnly' | 'readWrite' | 'immutable';
  returned: 'always' | 'default';
  uniqueness: 'none' | 'server';
  subAttributes?: AttributeDef[];
  referenceTypes?: string[];
}

export interface ResourceSchema {
  /** The resource type's name (`User`, `Group`) and endpoint. */
  name: 'User' | 'Group';
  endpoint: '/Users' | '/Groups';
  id: string;
  description: string;
  attributes: AttributeDef[];
  /**
   * Attributes RFC 7643 defines that Palisade does not store. Clients send them with every user (Azure AD's default
   * mapping has title, phoneNumbers, addresses...), so writes to them are accepted and dropped and filters see
   * them as absent, while a name that no schema knows is an error (`invalidPath`, `invalidFilter`).
   */
  ignored: ReadonlySet<string>;
  /** Extension schemas whose attributes are accepted and dropped the same way (the enterprise User extension). */
  ignoredExtensions: readonly string[];
}

const attr = (name: string, type: AttributeType, description: string, more: Partial<AttributeDef> = {}): AttributeDef => ({
  name,
  type,
  multiValued: false,
  description,
  required: false,
  caseExact: false,
  mutability: 'readWrite',
  returned: 'default',
  uniqueness: 'none',
  ...more,
});

const readOnly = { mutability: 'readOnly' } as const;

const meta = attr('meta', 'complex', 'Resource metadata.', {
  ...readOnly,
  subAttributes: [
    attr('resourceType', 'string', 'The resource type.', { ...readOnly, caseExact: true }),
    attr('created', 'dateTime', 'When the resource was created.', readOnly),
    attr('lastModified', 'dateTime', 'When the resource last changed.', readOnly),
    attr('location', 'reference', 'The URI of the resource.', { ...readOnly, caseExact: true, referenceTypes: ['uri'] }),
    attr('version', 'string', 'The weak entity tag of this version (`If-Match` takes it).', { ...readOnly, caseExact: true }),
  ],
});

const common = [
  attr('id', 'string', 'Palisade\'s identifier for the resource.', { ...readOnly, caseExact: true, returned: 'always', uniqueness: 'server' }),
  attr('externalId', 'string', 'The provisioning client\'s identifier for the resource.', { caseExact: true }),
];

export const USER: ResourceSchema = {
  name: 'User',
  endpoint: '/Users',
  id: USER_SCHEMA,
  description: 'User Account',
  attributes: [
    ...common,
    attr('userName', 'string', 'The sign-in name; unique whatever its case.', { required: true, uniqueness: 'server' }),
    attr('name', 'complex', 'The components of the user\'s name.', {
      subAttributes: [
        attr('formatted', 'string', 'The full name (given and family name).', readOnly),
        attr('familyName', 'string', 'The family name.'),
        attr('givenName', 'string', 'The given name.'),
      ],
    }),
    attr('displayName', 'string', 'The name to display.'),
    attr('emails', 'complex', 'Email addresses; Palisade keeps one (the primary, else the first).', {
      multiValued: true,
      subAttributes: [
        attr('value', 'string', 'The email address.'),
        attr('display', 'string', 'A label for the address.'),
        attr('type', 'string', 'work, home or other.'),
        attr('primary', 'boolean', 'The primary address.'),
      ],
    }),
    attr('active', 'boolean', 'Whether the user may sign in; false ends its sessions, tokens and API keys.'),
    attr('groups', 'complex', 'The groups the user belongs to (change them through /Groups).', {
      ...readOnly,
      multiValued: true,
      subAttributes: [
        attr('value', 'string', 'The group\'s id.', { ...readOnly, caseExact: true }),
        attr('$ref', 'reference', 'The group\'s URI.', { ...readOnly, caseExact: true, referenceTypes: ['Group'] }),
        attr('display', 'string', 'The group\'s display name.', readOnly),
        attr('type', 'string', 'direct', readOnly),
      ],
    }),
    meta,
  ],
  ignored: new Set(
    ['nickName', 'profileUrl', 'title', 'userType', 'preferredLanguage', 'locale', 'timezone', 'password', 'phoneNumbers', 'ims', 'photos', 'addresses', 'entitlements', 'roles', 'x509Certificates', 'name.middleName', 'name.honorificPrefix', 'name.honorificSuffix'].map((n) => n.toLowerCase()),
  ),
  ignoredExtensions: [ENTERPRISE_USER_SCHEMA],
};

export const GROUP: ResourceSchema = {
  name: 'Group',
  endpoint: '/Groups',
  id: GROUP_SCHEMA,
  description: 'Group',
  attributes: [
    ...common,
    // caseExact: the directory's group names are unique as spelt, so `displayName eq` is its indexed exact lookup.
    attr('displayName', 'string', 'The group\'s name; unique as spelt.', { required: true, caseExact: true, uniqueness: 'server' }),
    attr('members', 'complex', 'The group\'s members (users).', {
      multiValued: true,
      subAttributes: [
        attr('value', 'string', 'The member\'s id.', { mutability: 'immutable', caseExact: true }),
        attr('$ref', 'reference', 'The member\'s URI.', { mutability: 'immutable', caseExact: true, referenceTypes: ['User'] }),
        attr('display', 'string', 'The member\'s display name.', readOnly),
        attr('type', 'string', 'User (groups do not nest).', { mutability: 'immutable' }),
      ],
    }),
    meta,
  ],
  ignored: new Set(),
  ignoredExtensions: [],
};

/** An attribute of `schema` by name, whatever its case. */
export function attributeOf(list: readonly AttributeDef[] | undefined, name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return list?.find((a) => a.name.toLowerCase() === lower);
}
