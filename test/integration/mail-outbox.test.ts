/**
 * Proves: account mails leave the request path through the outbox. A queued mail is sent by the
 * sender, once; a deferred one is composed only when sent — a reset asked for an address with no
 * account queues the same row as one with an account, and sends nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, test } from 'vitest';
import type { SendMailInput } from '../../activities/mail/send.ts';
import { createMailOutbox, type MailOutbox } from '../../api/mail-outbox.ts';
import { passwordResetMail, passwordResetMailName } from '../../api/services.ts';
import { createUser } from '../../db/repositories/users.ts';
import { createLogger } from '../../lib/log.ts';
import { masterKeysFrom } from '../../lib/secrets.ts';
import { useTestDatabase } from '../support/db.ts';

const t = useTestDatabase({ name: 'mail_outbox' });
const masterKeys = masterKeysFrom({ id: 'k1', base64: randomBytes(32).toString('base64') });
const log = createLogger('mail-outbox', 'silent');
const outboxes: MailOutbox[] = [];
afterEach(async () => {
  for (const o of outboxes.splice(0)) await o.stop();
});

function outbox(sent: SendMailInput[]): MailOutbox {
  const o = createMailOutbox({
    db: t.db, masterKeys, log, pollMs: 3_600_000,
    sendMail: async (mail) => { sent.push(mail); },
    composers: { [passwordResetMailName]: passwordResetMail({ db: t.db, tokenSecret: 'x'.repeat(40), appUrl: 'https://berth.example' }) },
  });
  outboxes.push(o);
  return o;
}

test('a reset request queues the same sealed row whether or not the address has an account; only the account gets a mail', async () => {
  const sent: SendMailInput[] = [];
  const o = outbox(sent);
  const user = await createUser(t.db, { name: 'Ada', email: `ada.${randomBytes(3).toString('hex')}@example.com`, passwordHash: 'x' });
  await o.enqueue({ deferred: passwordResetMailName, input: { email: user.email.toUpperCase() } });
  await o.enqueue({ deferred: passwordResetMailName, input: { email: 'nobody@example.com' } });
  const rows = await t.db.selectFrom('mailOutbox').select(['payload', 'keyId']).execute();
  expect(rows).toHaveLength(2);
  // Nothing in the rows tells the two apart but their (sealed) content.
  expect(rows.map((r) => r.keyId)).toEqual(['k1', 'k1']);
  expect(Math.abs(rows[0]!.payload.length - rows[1]!.payload.length)).toBeLessThan(16);

  expect(await o.drain()).toBe(2);
  expect(sent).toEqual([expect.objectContaining({ kind: 'password-reset', to: user.email, userId: user.id })]);
  expect((sent[0]!.data as { resetUrl: string }).resetUrl).toMatch(/^https:\/\/berth\.example\/reset-password\?token=/);
  expect(await t.db.selectFrom('mailOutbox').selectAll().execute()).toEqual([]);
});

test('a mail whose composer is unknown is kept and tried again later, not sent', async () => {
  const sent: SendMailInput[] = [];
  const o = outbox(sent);
  await o.enqueue({ deferred: 'no-such-mail', input: {} });
  expect(await o.drain()).toBe(1);
  expect(sent).toEqual([]);
  const [row] = await t.db.selectFrom('mailOutbox').selectAll().execute();
  expect(row!.attempts).toBe(1);
  expect(row!.notBefore.getTime()).toBeGreaterThan(Date.now());
});
