/**
 * Customers' servers spread over several Hetzner projects. A project has a server limit and one
 * request budget (3600/h) for everything done in it, so one project caps a business at its limit;
 * Berth gives each configured project its own client (and so its own RateBudget) and assigns each
 * customer to one with room.
 *
 * Invariant 2 (one server per customer, docs/invariants.md) across projects: the assignment is written before a server is
 * created and read by every retry, so a retry looks for the customer's server (by label) in the project
 * where an earlier attempt may have created it. It moves only when that project refused the creation
 * with `resource_limit_exceeded`, which means nothing was created there.
 */
import { ApplicationFailure } from '@temporalio/common';
import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import { ErrorType } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { HetznerClient } from './hetzner/client.ts';

export interface CloudProject {
  /** A stable name, stored with each customer's assignment (renaming a project strands its customers). */
  name: string;
  client: HetznerClient;
  /** Servers the project may hold (Hetzner's per-project limit, as the account shows it); null: no known limit. */
  serverLimit: number | null;
}

export interface CloudFleet {
  readonly projects: readonly CloudProject[];
  /** The customer's project: the assigned one, or (first time) the first in order with room, written down. */
  projectFor(customerId: string): Promise<CloudProject>;
  /**
   * `full` refused the customer's server for lack of room: assigns the next project with room (if the
   * customer is still assigned to `full`) and returns it. Throws CapacityUnavailable when none has room.
   */
  moveOn(customerId: string, full: string): Promise<CloudProject>;
  /** Servers each project holds or is about to hold, as Berth counts them (for operators and tests). */
  usage(): Promise<Record<string, number>>;
}

/** An assignment without a live server yet counts against its project this long (a creation under way). */
const pendingMs = 30 * 60_000;
/** A project that refused a server is not offered to other customers for this long. */
const refusedMs = 10 * 60_000;

/** Builds the fleet; `projects` in order of preference (fill the first, then the next). */
export function createCloudFleet(deps: { db: Db; projects: CloudProject[]; log: Logger; now?: () => number }): CloudFleet {
  const { db, projects, log } = deps;
  const now = deps.now ?? Date.now;
  if (projects.length === 0) throw new Error('a cloud fleet needs at least one project');
  const names = new Set(projects.map((p) => p.name));
  if (names.size !== projects.length) throw new Error('cloud project names must be unique');
  const refusedAt = new Map<string, number>();

  const byName = (name: string): CloudProject => {
    const project = projects.find((p) => p.name === name);
    if (!project) {
      throw ApplicationFailure.nonRetryable(`customer assigned to cloud project "${name}", which is not configured (HCLOUD_PROJECTS)`, ErrorType.Misconfigured);
    }
    return project;
  };

  async function usage(): Promise<Record<string, number>> {
    const since = new Date(now() - pendingMs);
    const rows = await db.selectFrom('cloudAssignments as a')
      .select(['a.project', sql<string>`count(*)`.as('count')])
      .where((eb) => eb.or([
        eb.exists(eb.selectFrom('servers as s').select('s.id').whereRef('s.userId', '=', 'a.userId').where('s.deletedAt', 'is', null)),
        // A recent assignment whose server has not been made yet.
        eb.and([
          eb('a.assignedAt', '>', since),
          eb.not(eb.exists(eb.selectFrom('servers as s').select('s.id').whereRef('s.userId', '=', 'a.userId').whereRef('s.createdAt', '>=', 'a.assignedAt'))),
        ]),
      ]))
      .groupBy('a.project')
      .execute();
    const counts: Record<string, number> = Object.fromEntries(projects.map((p) => [p.name, 0]));
    for (const r of rows) counts[r.project] = Number(r.count);
    return counts;
  }

  async function withRoom(excluding: string[]): Promise<CloudProject> {
    const counts = await usage();
    const t = now();
    const open = (p: CloudProject) => !excluding.includes(p.name) && t - (refusedAt.get(p.name) ?? -Infinity) > refusedMs;
    const candidate = projects.find((p) => open(p) && (p.serverLimit === null || (counts[p.name] ?? 0) < p.serverLimit));
    if (!candidate) {
      throw ApplicationFailure.create({
        message: `no cloud project has room for another server (${projects.map((p) => `${p.name}: ${counts[p.name] ?? 0}/${p.serverLimit ?? '∞'}`).join(', ')})`,
        type: ErrorType.CapacityUnavailable,
      });
    }
    return candidate;
  }

  async function assigned(customerId: string): Promise<string | undefined> {
    const row = await db.selectFrom('cloudAssignments').select('project').where('userId', '=', customerId).executeTakeFirst();
    return row?.project;
  }

  return {
    projects,
    usage,
    async projectFor(customerId) {
      const existing = await assigned(customerId);
      if (existing) return byName(existing);
      const choice = await withRoom([]);
      // Two attempts racing agree on whichever assignment was written first.
      await db.insertInto('cloudAssignments').values({ userId: customerId, project: choice.name })
        .onConflict((oc) => oc.column('userId').doNothing()).execute();
      const project = byName((await assigned(customerId))!);
      log.info({ customerId, project: project.name }, 'customer assigned to a cloud project');
      return project;
    },
    async moveOn(customerId, full) {
      refusedAt.set(full, now());
      const next = await withRoom([full]);
      // Compare-and-set: only an assignment still pointing at the full project moves.
      await db.updateTable('cloudAssignments').set({ project: next.name, assignedAt: new Date(now()) })
        .where('userId', '=', customerId).where('project', '=', full).execute();
      const project = byName((await assigned(customerId)) ?? next.name);
      log.warn({ customerId, full, project: project.name }, 'cloud project full: customer moved to the next one with room');
      return project;
    },
  };
}
