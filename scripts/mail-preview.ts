/**
 * Writes every mail template, rendered with its sample data, to a folder: `<kind>.html` and
 * `<kind>.txt` per kind, plus an index.html linking them with their subjects.
 *
 *   node scripts/mail-preview.ts [out-dir]      (default: .data/mail-preview)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderAll } from '../activities/mail/render.ts';
import { mailSamples } from '../activities/mail/samples.ts';
import { dataDir } from '../lib/paths.ts';

const outDir = path.resolve(process.argv[2] ?? path.join(dataDir, 'mail-preview'));
const appUrl = process.env.APP_URL ?? 'http://localhost:3000';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

await mkdir(outDir, { recursive: true });
const mails = await renderAll(mailSamples, { appUrl });
for (const mail of mails) {
  await writeFile(path.join(outDir, `${mail.kind}.html`), mail.html);
  await writeFile(path.join(outDir, `${mail.kind}.txt`), `Subject: ${mail.subject}\n\n${mail.text}\n`);
}
const rows = mails
  .map((m) => `<li><a href="${m.kind}.html">${escape(m.kind)}</a> (<a href="${m.kind}.txt">text</a>): ${escape(m.subject)}</li>`)
  .join('\n');
await writeFile(path.join(outDir, 'index.html'), `<!doctype html><meta charset="utf-8"><title>Berth mail preview</title><h1>Berth mail preview</h1><ul>\n${rows}\n</ul>\n`);
console.log(`wrote ${mails.length} mails (HTML and text) to ${outDir}`);
