/** Mails about the customer's server: ready, idle stop, provisioning trouble, backups, restores. */
import { z } from 'zod';
import { defineMail, isoTimestamp, personName, serverAddress } from '../define.ts';
import { formatBytes, formatDateTime } from '../format.ts';
import { button, code, greeting, layout, p } from '../layout.ts';

export const serverReady = defineMail({
  schema: z.object({
    name: personName,
    serverAddress,
  }),
  subject: () => 'Your Berth server is ready',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'Your assistant is running on your own server.',
      heading: 'Your server is ready',
      children: [
        greeting(data.name),
        p('Your server is up and your personal assistant is running on it.'),
        p('Server address: ', code(data.serverAddress)),
        p('Reach your assistant from your dashboard: chat with it, open a terminal on the server, and change its settings there. The assistant itself is not exposed to the internet; the dashboard reaches it through an encrypted SSH tunnel.'),
        button(links.dashboard, 'Open your dashboard'),
      ],
    }),
});

export const serverStoppedIdle = defineMail({
  schema: z.object({
    name: personName,
    idleHours: z.number().int().positive(),
  }),
  subject: () => 'Your Berth server was stopped while idle',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'Start it again from your dashboard whenever you need it.',
      heading: 'Your server is stopped',
      children: [
        greeting(data.name),
        p(`Your assistant had no activity for ${data.idleHours} hours, so we stopped your server. Everything on it is kept: its data, settings and memory.`),
        p('Start it again from your dashboard whenever you need it; it is back within a few minutes.'),
        button(links.dashboard, 'Start your server'),
      ],
    }),
});

export const provisioningDelayed = defineMail({
  schema: z.object({ name: personName }),
  subject: () => 'Setting up your server is taking longer: we are on it',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'We keep trying automatically; you do not need to do anything.',
      heading: 'We are on it',
      children: [
        greeting(data.name),
        p('Setting up your server is taking longer than it should: our cloud provider did not give us a server in time.'),
        p('We keep trying automatically and our team has been told. You do not need to do anything; we mail you as soon as your server is ready. You can follow its status in your dashboard.'),
        button(links.dashboard, 'See the status'),
      ],
    }),
});

export const backupCreated = defineMail({
  schema: z.object({
    name: personName,
    createdAt: isoTimestamp,
    sizeBytes: z.number().int().nonnegative(),
  }),
  subject: () => 'Your Berth server has been backed up',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: `Backup of ${formatDateTime(data.createdAt)}, verified in storage.`,
      heading: 'Backup created',
      children: [
        greeting(data.name),
        p(`We made a backup of your server on ${formatDateTime(data.createdAt)} (${formatBytes(data.sizeBytes)}). We read it back from storage and checked it before sending this mail.`),
        p('Your backups are listed in your dashboard, where you can also restore one.'),
        button(links.dashboard, 'See your backups'),
      ],
    }),
});

export const restoreComplete = defineMail({
  schema: z.object({
    name: personName,
    backupCreatedAt: isoTimestamp,
    serverAddress,
  }),
  subject: () => 'Your Berth server has been restored',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'Your assistant is back, with its data and settings.',
      heading: 'Restore complete',
      children: [
        greeting(data.name),
        p(`Your assistant is back: we restored the backup of ${formatDateTime(data.backupCreatedAt)}, with its data, settings and memory as they were then.`),
        p('Server address: ', code(data.serverAddress)),
        button(links.dashboard, 'Open your dashboard'),
      ],
    }),
});
