import { ApplicationFailure } from '@temporalio/common';
import type { Db } from '../../db/database.ts';
import { findUserById } from '../../db/repositories/users.ts';
import { ErrorType } from '../../lib/errors.ts';
import type { Plans } from '../billing/plans.ts';
import type { MailActivities, SendMailInput } from '../contracts.ts';
import type { MailData, MailKind } from './registry.ts';
import type { createMailActivities } from './send.ts';

type Sender = ReturnType<typeof createMailActivities>;

/**
 * The lifecycle workflow's mails, sent through the mail activity (templates, log, transport): the
 * workflow names a kind and its facts; this looks up who the customer is and fills the template.
 */
export function createLifecycleMailActivities(deps: { db: Db; sender: Sender; plans: Plans; appUrl: string }): MailActivities {
  const appHost = new URL(deps.appUrl).hostname;
  function template(input: SendMailInput, name: string): { kind: MailKind; data: MailData<MailKind> } {
    const d = input.data;
    const need = <T>(value: T | undefined | null, field: string): T => {
      if (value === undefined || value === null) {
        throw ApplicationFailure.nonRetryable(`mail ${input.kind} needs ${field}`, ErrorType.InvalidInput);
      }
      return value;
    };
    switch (input.kind) {
      case 'welcome':
        return { kind: 'welcome', data: { name } };
      case 'server_ready':
        return { kind: 'server-ready', data: { name, serverAddress: d.serverAddress ?? appHost } };
      case 'access_ending':
        return {
          kind: 'subscription-ending',
          data: {
            name,
            daysLeft: need(d.daysLeft, 'daysLeft') as 7 | 3 | 1,
            endsAt: need(d.accessEndsAt, 'accessEndsAt'),
            retentionDays: deps.plans[need(d.plan, 'plan')].backupRetentionDays,
          },
        };
      case 'expired':
        return { kind: 'subscription-expired', data: { name, dataKeptUntil: need(d.dataKeptUntil, 'dataKeptUntil') } };
      case 'provisioning_trouble':
        return { kind: 'provisioning-delayed', data: { name } };
    }
  }

  return {
    async sendMail(input) {
      const user = await findUserById(deps.db, input.customerId);
      if (!user) throw ApplicationFailure.nonRetryable(`no user ${input.customerId}`, ErrorType.NotFound);
      const { kind, data } = template(input, user.name);
      // The workflow's key already names customer, kind and period: it is the mail's period here.
      const result = await deps.sender.sendMail({ kind, to: user.email, userId: user.id, period: input.idempotencyKey, data });
      // 'unknown' (a crash right after the provider took the mail) is not sent again: at most once.
      return { status: result.status === 'sent' ? 'sent' : 'already_sent' };
    },
  };
}
