/** Mails about the subscription and payments. */
import { z } from 'zod';
import { currencyCode, defineMail, httpUrl, isoTimestamp, personName } from '../define.ts';
import { formatDate, formatMoney } from '../format.ts';
import { button, greeting, layout, link, p, strong } from '../layout.ts';

const reminderDays = z.union([z.literal(7), z.literal(3), z.literal(1)]);

export const subscriptionEnding = defineMail({
  schema: z.object({
    name: personName,
    daysLeft: reminderDays,
    endsAt: isoTimestamp,
    /** How long backups are kept after the end, by plan (7–90 days). */
    retentionDays: z.number().int().min(1).max(365),
  }),
  subject: (data) => (data.daysLeft === 1 ? 'Your Berth subscription ends tomorrow' : `Your Berth subscription ends in ${data.daysLeft} days`),
  keyVariant: (data) => `${data.daysLeft}d`,
  component: (data, { appUrl, links }) => {
    const keptUntil = new Date(Date.parse(data.endsAt) + data.retentionDays * 86_400_000).toISOString();
    return layout({
      appUrl,
      preview: `Access ends on ${formatDate(data.endsAt)}. Renew to keep your server.`,
      heading: data.daysLeft === 1 ? 'Your subscription ends tomorrow' : `Your subscription ends in ${data.daysLeft} days`,
      children: [
        greeting(data.name),
        p('Your Berth subscription will not renew. Access ends on ', strong(formatDate(data.endsAt)), '.'),
        p('What happens then: we take a final backup of your server and check it, then delete the server. Your assistant stops answering.'),
        p(`We keep that backup for ${data.retentionDays} days, until ${formatDate(keptUntil)}. Renew before then and we restore it onto a new server; after that it is deleted for good.`),
        p('Renew now and nothing stops.'),
        button(links.billing, 'Renew your subscription'),
      ],
    });
  },
});

export const subscriptionExpired = defineMail({
  schema: z.object({
    name: personName,
    dataKeptUntil: isoTimestamp,
  }),
  subject: () => 'Your Berth subscription has ended',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: `Your data is kept until ${formatDate(data.dataKeptUntil)}.`,
      heading: 'Your subscription has ended',
      children: [
        greeting(data.name),
        p('Your subscription has ended. We made a final backup of your server, checked it, and deleted the server.'),
        p('We keep your data until ', strong(formatDate(data.dataKeptUntil)), '. After that date the backup is deleted for good.'),
        p('To come back, renew your subscription before then: we set up a new server and restore your latest backup onto it, with your assistant\'s data, settings and memory.'),
        button(links.billing, 'Renew and restore'),
      ],
    }),
});

export const paymentSucceeded = defineMail({
  schema: z.object({
    name: personName,
    /** Integer in the currency's minor unit, as Stripe reports it. */
    amountMinor: z.number().int().nonnegative(),
    currency: currencyCode,
    paidUntil: isoTimestamp.optional(),
    invoiceUrl: httpUrl.optional(),
  }),
  subject: (data) => `Payment received: ${formatMoney(data.amountMinor, data.currency)}`,
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: `We received ${formatMoney(data.amountMinor, data.currency)}. Thank you.`,
      heading: 'Payment received',
      children: [
        greeting(data.name),
        p('Thank you: we received your payment of ', strong(formatMoney(data.amountMinor, data.currency)), ' for your Berth subscription.'),
        ...(data.paidUntil ? [p(`Your subscription is paid until ${formatDate(data.paidUntil)}.`)] : []),
        ...(data.invoiceUrl ? [p('Your invoice: ', link(data.invoiceUrl, 'view or download it'), '.')] : []),
        button(links.billing, 'See your billing'),
      ],
    }),
});

export const paymentFailed = defineMail({
  schema: z.object({
    name: personName,
    amountMinor: z.number().int().nonnegative(),
    currency: currencyCode,
    nextAttemptAt: isoTimestamp.optional(),
  }),
  subject: () => 'Your Berth payment did not go through',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'Update your payment method to keep your server running.',
      heading: 'Your payment did not go through',
      children: [
        greeting(data.name),
        p('We could not charge ', strong(formatMoney(data.amountMinor, data.currency)), ' for your Berth subscription.'),
        ...(data.nextAttemptAt ? [p(`We will try again on ${formatDate(data.nextAttemptAt)}.`)] : []),
        p('Please update your payment method so your server keeps running. If payment keeps failing, your subscription ends; we back up your server before deleting it.'),
        button(links.billingPortal, 'Update payment method'),
      ],
    }),
});
