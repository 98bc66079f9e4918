import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useLoaderData } from 'react-router';
import type { Route } from './+types/chat.ts';
import { requireUser, services } from '../auth.server.ts';
import { liveBlocker, liveSocketUrl } from '../live/socket.ts';
import { errorMessage } from '../../lib/errors.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Chat — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  const view = await services(context).customer.view(user.id);
  return { blocker: liveBlocker(view), userId: user.id };
}

interface Message { role: 'user' | 'assistant'; content: string }
type Incoming = { type: 'answer'; id: string; content: string } | { type: 'error'; id: string | null; message: string };

/** The assistant sees this many of the latest messages with each question. */
const CONTEXT_MESSAGES = 20;
const MAX_CHARS = 32_000;

export default function Chat() {
  const { blocker, userId } = useLoaderData<typeof loader>();
  const storageKey = `berth-chat:${userId}`;
  // null until this tab's saved conversation was read (the server renders none).
  const [saved, setSaved] = useState<Message[] | null>(null);
  const messages = saved ?? [];
  const setMessages = (update: Message[] | ((list: Message[]) => Message[])) =>
    setSaved((list) => (typeof update === 'function' ? update(list ?? []) : update));
  const [draft, setDraft] = useState('');
  const [waiting, setWaiting] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const socket = useRef<WebSocket | null>(null);
  const log = useRef<HTMLUListElement>(null);

  // The conversation lasts as long as the tab: kept in sessionStorage, never on our servers.
  useEffect(() => {
    let restored: Message[] = [];
    try {
      restored = JSON.parse(sessionStorage.getItem(storageKey) ?? '[]') as Message[];
    } catch {
      // A damaged entry starts a new conversation.
    }
    setSaved(Array.isArray(restored) ? restored : []);
  }, [storageKey]);
  useEffect(() => {
    if (saved === null) return;
    sessionStorage.setItem(storageKey, JSON.stringify(saved));
    log.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [saved, storageKey]);
  useEffect(() => () => socket.current?.close(), []);

  /** The open socket, or a new one (the first question, or after the last one closed). */
  function connect(): Promise<WebSocket> {
    const current = socket.current;
    if (current && current.readyState === WebSocket.OPEN) return Promise.resolve(current);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(liveSocketUrl('/ws/chat'));
      socket.current = ws;
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error('Could not reach Berth; check your connection and try again.'));
      ws.onclose = () => {
        if (socket.current === ws) socket.current = null;
        setWaiting((id) => {
          if (id !== null) setProblem('The connection closed before your assistant answered; send it again.');
          return null;
        });
      };
      ws.onmessage = (event: MessageEvent<string>) => {
        const message = JSON.parse(event.data) as Incoming;
        setWaiting(null);
        if (message.type === 'answer') setMessages((list) => [...list, { role: 'assistant', content: message.content }]);
        else setProblem(message.message);
      };
    });
  }

  async function send(event: FormEvent) {
    event.preventDefault();
    const text = draft.trim();
    if (!text || waiting) return;
    if (text.length > MAX_CHARS) return setProblem(`That message is too long (at most ${MAX_CHARS.toLocaleString()} characters).`);
    const next = [...messages, { role: 'user' as const, content: text }];
    setMessages(next);
    setDraft('');
    setProblem(null);
    const id = crypto.randomUUID();
    setWaiting(id);
    try {
      const ws = await connect();
      ws.send(JSON.stringify({ type: 'ask', id, messages: next.slice(-CONTEXT_MESSAGES) }));
    } catch (err) {
      setWaiting(null);
      setProblem(errorMessage(err));
    }
  }

  if (blocker) {
    return (
      <section className="card">
        <h1>Chat with your assistant</h1>
        <p className="attention" role="status">{blocker} <Link to="/dashboard">Go to the dashboard</Link></p>
      </section>
    );
  }
  return (
    <section className="card chat">
      <div className="row">
        <h1>Chat with your assistant</h1>
        {messages.length > 0 && <button type="button" className="secondary" onClick={() => setMessages([])}>New conversation</button>}
      </div>
      <p className="muted">Your assistant runs on your own server; this conversation goes there through an encrypted tunnel.</p>
      <ul className="chat-log" ref={log} data-testid="chat-log" aria-live="polite">
        {messages.map((m, i) => <li key={i} className={m.role}>{m.content}</li>)}
        {waiting && <li className="assistant progress"><span className="spinner" /> Your assistant is thinking…</li>}
      </ul>
      {problem && <p className="error" role="alert">{problem}</p>}
      <form className="chat-form" onSubmit={(e) => void send(e)}>
        <textarea
          aria-label="Message" placeholder="Ask your assistant…" value={draft} maxLength={MAX_CHARS}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); e.currentTarget.form?.requestSubmit(); } }}
        />
        <button type="submit" disabled={waiting !== null || draft.trim() === ''}>Send</button>
      </form>
    </section>
  );
}
