import { defineSearchAttributeKey } from '@temporalio/common';

/**
 * Typed search attributes of the customer lifecycle, for operators in the Temporal Web UI
 * (e.g. `NeedsAttention = true`, `Stage = "expired"`). Each must be registered on the namespace:
 * `temporal server start-dev --search-attribute CustomerId=Keyword ...` locally, `temporal operator
 * search-attribute create` in production, and `registerLifecycleSearchAttributes` in tests.
 */
export const CustomerIdKey = defineSearchAttributeKey('CustomerId', 'KEYWORD');
export const PlanKey = defineSearchAttributeKey('Plan', 'KEYWORD');
export const StageKey = defineSearchAttributeKey('Stage', 'KEYWORD');
export const ServerIdKey = defineSearchAttributeKey('ServerId', 'KEYWORD');
export const NeedsAttentionKey = defineSearchAttributeKey('NeedsAttention', 'BOOL');

/** All lifecycle search attribute keys, for registration. */
export const lifecycleSearchAttributeKeys = [CustomerIdKey, PlanKey, StageKey, ServerIdKey, NeedsAttentionKey] as const;
