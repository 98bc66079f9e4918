import { useEffect, useRef, useState } from 'react';
import { Link, redirect, useLoaderData } from 'react-router';
import xtermCss from '@xterm/xterm/css/xterm.css?url';
import type { Route } from './+types/terminal.ts';
import { requireUser, services } from '../auth.server.ts';
import { liveBlocker, liveSocketUrl } from '../live/socket.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Terminal — Berth' }];
}

export const links: Route.LinksFunction = () => [{ rel: 'stylesheet', href: xtermCss }];

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  // A shell on the customer's server: only with a password typed recently (the socket checks it too).
  const signedIn = await services(context).auth.session(request.headers.get('cookie'));
  if (!signedIn?.recent) throw redirect('/confirm-password?next=%2Fterminal');
  const view = await services(context).customer.view(user.id);
  return { blocker: liveBlocker(view), address: view?.server && 'ipv4' in view.server ? view.server.ipv4 : null };
}

type Status = { kind: 'connecting' } | { kind: 'ready' } | { kind: 'closed'; message: string };

export default function Terminal() {
  const { blocker, address } = useLoaderData<typeof loader>();
  const box = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>({ kind: 'connecting' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (blocker || !box.current) return;
    let disposed = false;
    let cleanup = () => {};
    setStatus({ kind: 'connecting' });
    // xterm touches the DOM when it loads: it is imported in the browser only.
    void Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]).then(([{ Terminal: XTerm }, { FitAddon }]) => {
      if (disposed || !box.current) return;
      const term = new XTerm({ cursorBlink: true, fontSize: 14, convertEol: false, theme: { background: '#0d1526' } });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box.current);
      fit.fit();
      const socket = new WebSocket(liveSocketUrl('/ws/terminal'));
      socket.binaryType = 'arraybuffer';
      const encoder = new TextEncoder();
      const sendSize = () => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
      };
      let closedWith: string | null = null;
      socket.onopen = sendSize;
      socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
        if (typeof event.data !== 'string') return term.write(new Uint8Array(event.data));
        const message = JSON.parse(event.data) as { type: string; message?: string; code?: number | null };
        if (message.type === 'ready') {
          setStatus({ kind: 'ready' });
          term.focus();
        } else if (message.type === 'error') {
          closedWith = message.message ?? 'The terminal closed.';
        } else if (message.type === 'exit') {
          closedWith = `The shell ended${message.code === null || message.code === undefined ? '' : ` (exit ${message.code})`}.`;
        }
      };
      socket.onclose = () => {
        if (!disposed) setStatus({ kind: 'closed', message: closedWith ?? 'The connection to your server closed.' });
      };
      const typed = term.onData((data) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
      });
      const resized = term.onResize(sendSize);
      const onWindowResize = () => fit.fit();
      window.addEventListener('resize', onWindowResize);
      cleanup = () => {
        window.removeEventListener('resize', onWindowResize);
        typed.dispose();
        resized.dispose();
        socket.close();
        term.dispose();
      };
    });
    return () => {
      disposed = true;
      cleanup();
    };
  }, [blocker, attempt]);

  return (
    <section className="card">
      <div className="row">
        <h1>Terminal</h1>
        {!blocker && (
          <span className={`badge ${status.kind === 'ready' ? 'active' : status.kind === 'closed' ? 'attention' : ''}`} data-testid="terminal-status">
            {status.kind === 'ready' ? 'Connected' : status.kind === 'closed' ? 'Disconnected' : 'Connecting…'}
          </span>
        )}
      </div>
      {blocker ? (
        <p className="attention" role="status">{blocker} <Link to="/dashboard">Go to the dashboard</Link></p>
      ) : (
        <>
          <p className="muted">A shell on your own server{address ? ` (${address})` : ''}, as the user that runs your assistant.</p>
          {status.kind === 'closed' && (
            <p className="attention" role="status">
              {status.message} <button type="button" className="secondary" onClick={() => setAttempt((n) => n + 1)}>Connect again</button>
            </p>
          )}
          <div className="terminal-frame"><div ref={box} className="terminal" data-testid="terminal" /></div>
        </>
      )}
    </section>
  );
}
