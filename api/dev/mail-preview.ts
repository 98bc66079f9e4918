import { Router } from 'express';
import { renderAll } from '../../activities/mail/render.ts';
import { mailSamples } from '../../activities/mail/samples.ts';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Development only: every mail template rendered with its sample data, at /dev/mail (HTML, and the
 * plain-text part at /dev/mail/<kind>.txt). Rendered per request so template edits show at once.
 */
export function createMailPreviewRouter(opts: { appUrl: string }): Router {
  const router = Router();
  const render = () => renderAll(mailSamples, { appUrl: opts.appUrl });
  const find = (mails: Awaited<ReturnType<typeof render>>, kind: string) => mails.find((m) => m.kind === kind);

  router.get('/dev/mail', async (_req, res) => {
    const mails = await render();
    const rows = mails.map((m) => `<tr><td><a href="/dev/mail/${m.kind}">${escape(m.kind)}</a></td><td>${escape(m.subject)}</td>`
      + `<td><a href="/dev/mail/${m.kind}.txt">text</a></td></tr>`).join('\n');
    res.type('html').send(`<!doctype html><meta charset="utf-8"><title>Mail preview — Berth</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td{padding:.3rem 1rem .3rem 0}</style>
<h1>Mail preview</h1><p>Every mail Berth sends, rendered with sample data.</p><table>${rows}</table>`);
  });
  router.get('/dev/mail/:kind.txt', async (req, res) => {
    const mail = find(await render(), req.params.kind);
    if (!mail) return void res.status(404).type('text').send('no such mail kind');
    res.type('text').send(`Subject: ${mail.subject}\n\n${mail.text}\n`);
  });
  router.get('/dev/mail/:kind', async (req, res) => {
    const mail = find(await render(), req.params.kind);
    if (!mail) return void res.status(404).type('text').send('no such mail kind');
    res.type('html').send(mail.html);
  });
  return router;
}
