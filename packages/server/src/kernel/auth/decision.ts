/**
 * What the request pipeline and the engines exchange with the authorization engine (engines/authz): the resource a
 * request acts on, the facts of the request, and the decision. Here, in the kernel, so that the pipeline and the
 * engines depend on these shapes, not on the authorization engine.
 */
import type { DecisionEffect, DecisionStep } from '@palisade/core';
import type { Principal } from './api-keys.js';

export interface ResourceAttrs {
  type: string;
  id?: string | null;
  name?: string | null;
  classification?: string | null;
  /** Organisation the resource belongs to (absent: the principal's own, for engines that are not per-organisation). */
  org?: string | null;
  project?: string | null;
}

/** What a request is asked about: its principal, how it authenticated, where it came from. */
export interface RequestFacts {
  principal: Principal;
  source_ip: string | null;
  approval_id?: string | null;
}

export interface Decision {
  decision: DecisionEffect;
  reason: string;
  /** What decided: sources such as `role:developer`, `binding:bnd_…`, `rule:<id>`. */
  by: string[];
  /** Set when the decision is approval_required: what the approval request must carry. */
  approval?: { rule: string; approver_permission: string; ttl_minutes: number };
  /** Set when an allow needed an approval and the request carried it: the approval to use (once). */
  permit?: string;
  steps?: DecisionStep[];
}
