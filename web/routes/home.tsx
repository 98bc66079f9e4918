import type { Route } from './+types/home.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Berth — your own AI assistant on your own server' }];
}

export default function Home() {
  return (
    <>
      <section className="card">
        <h1>Your own AI assistant, on your own server</h1>
        <p>
          Berth gives you a private cloud server running OpenClaw, a personal AI assistant. We set it up,
          back it up every day, and keep your data safe even after your subscription ends.
        </p>
      </section>
      <section className="card">
        <h2>How it works</h2>
        <ol className="steps">
          <li><strong>Subscribe</strong><br />Pick a plan and pay securely.</li>
          <li><strong>We build your server</strong><br />Ready in minutes; we email you.</li>
          <li><strong>Use your assistant</strong><br />Chat, terminal and settings in one place.</li>
          <li><strong>Come back any time</strong><br />Your data is kept and restored on renewal.</li>
        </ol>
      </section>
    </>
  );
}
