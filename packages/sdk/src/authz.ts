import type {
  Approval,
  AuthzBinding,
  AuthzBindingList,
  AuthzRole,
  AuthzRoleList,
  CreateBindingRequest,
  CreateRoleRequest,
  ExplainRequest,
  Explanation,
  GrantRequest,
  ListBindingsQuery,
  PolicyProblem,
  PolicyValidation,
  PolicyVersion,
  PolicyVersionList,
  UpdateRoleRequest,
} from '@palisade/core';
export type {
  AuthzBinding,
  AuthzBindingList,
  AuthzRole,
  AuthzRoleList,
  CreateBindingRequest,
  CreateRoleRequest,
  DecisionStep,
  ExplainRequest,
  Explanation,
  GrantRequest,
  ListBindingsQuery,
  PolicyProblem,
  PolicyValidation,
  PolicyVersion,
  PolicyVersionList,
  UpdateRoleRequest,
} from '@palisade/core';
import { PalisadeApiError, withQuery, type Transport } from './transport.js';

// The request and answer shapes are in @palisade/core (shared with the server).

const seg = encodeURIComponent;

/** Roles, bindings, requested (just-in-time, break-glass) grants, policy versions and `explain`. */
export class AuthzClient {
  constructor(private readonly t: Transport) {}

  // ------------------------------------------------------------------------------------------------ roles
  /** The six built-in tiers and the custom roles, with their permissions. */
  roles(): Promise<AuthzRoleList> {
    return this.t.send('GET', '/v1/authz/roles');
  }
  role(name: string): Promise<AuthzRole> {
    return this.t.send('GET', `/v1/authz/roles/${seg(name)}`);
  }
  /** A custom role, only with permissions you hold (403 PAL_AUTH_GRANT_EXCEEDS otherwise). */
  createRole(req: CreateRoleRequest): Promise<AuthzRole> {
    return this.t.send('POST', '/v1/authz/roles', req);
  }
  /** Changes a custom role; every binding of it changes with it. */
  updateRole(name: string, patch: UpdateRoleRequest): Promise<AuthzRole> {
    return this.t.send('PATCH', `/v1/authz/roles/${seg(name)}`, patch);
  }
  /** Deletes a custom role that is not bound (409 PAL_AUTHZ_ROLE_IN_USE otherwise). */
  async deleteRole(name: string): Promise<void> {
    await this.t.send('DELETE', `/v1/authz/roles/${seg(name)}`);
  }

  // --------------------------------------------------------------------------------------------- bindings
  /** Role bindings and time-boxed grants, newest first. */
  bindings(q: ListBindingsQuery = {}): Promise<AuthzBindingList> {
    return this.t.send('GET', withQuery('/v1/authz/bindings', q));
  }
  /** Binds a role to a user, group or service identity in a scope; with `expires_in_minutes`, a grant that ends by itself. */
  bind(req: CreateBindingRequest): Promise<AuthzBinding> {
    return this.t.send('POST', '/v1/authz/bindings', req);
  }
  /** Removes a binding, or ends a grant now. */
  async unbind(id: string): Promise<void> {
    await this.t.send('DELETE', `/v1/authz/bindings/${seg(id)}`);
  }

  // ------------------------------------------------------------------------------------- requested grants
  /**
   * Asks for a role for a while (just-in-time access; `break_glass` for emergencies). Answers the pending approval
   * request: a different principal approves it with `approvals.approve(id)`, which creates the time-boxed binding.
   */
  requestGrant(req: GrantRequest): Promise<Approval> {
    return this.t.send('POST', '/v1/authz/grants', req);
  }

  // --------------------------------------------------------------------------------------------- policies
  /** The active policy with its source (version 0 and an empty rule list while none was stored). */
  policy(): Promise<PolicyVersion> {
    return this.t.send('GET', '/v1/authz/policy');
  }
  /**
   * Stores `source` (YAML or JSON) as the next policy version. An invalid document is refused with 400
   * PAL_AUTHZ_POLICY_INVALID; policyErrors() gives its problems with their lines and columns.
   */
  putPolicy(source: string, comment?: string): Promise<PolicyVersion> {
    return this.t.send('PUT', '/v1/authz/policy', comment === undefined ? { source } : { source, comment });
  }
  /** Checks a policy document without storing it; the problems, with their lines and columns, are in `errors`. */
  validatePolicy(source: string): Promise<PolicyValidation> {
    return this.t.send('POST', '/v1/authz/policy/validate', { source });
  }
  /** Every stored policy version, newest first (without their sources). */
  policyVersions(): Promise<PolicyVersionList> {
    return this.t.send('GET', '/v1/authz/policy/versions');
  }
  /** One stored policy version, with its source. */
  policyVersion(version: number): Promise<PolicyVersion> {
    return this.t.send('GET', `/v1/authz/policy/versions/${seg(String(version))}`);
  }

  // ---------------------------------------------------------------------------------------------- explain
  /**
   * The decision for a principal (default: the caller; someone else needs authz:decisions:explain-any), action,
   * resource and context, with every role, binding and rule that took part.
   */
  explain(req: ExplainRequest): Promise<Explanation> {
    return this.t.send('POST', '/v1/authz/explain', req);
  }
}

/** The problems of a policy refused with PAL_AUTHZ_POLICY_INVALID (each with its line and column); null for any other error. */
export function policyErrors(e: unknown): PolicyProblem[] | null {
  if (!(e instanceof PalisadeApiError) || e.code !== 'PAL_AUTHZ_POLICY_INVALID') return null;
  const errors = e.problem['errors'];
  return Array.isArray(errors) ? (errors as PolicyProblem[]) : [];
}
