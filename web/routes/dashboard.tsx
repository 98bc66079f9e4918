import type { Route } from './+types/dashboard.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Dashboard — Berth' }];
}

export default function Dashboard() {
  return (
    <section className="card">
      <h1>Dashboard</h1>
      <p className="muted">Sign in to see your server, backups and billing.</p>
    </section>
  );
}
