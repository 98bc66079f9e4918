import { Form, Link, useActionData, useLoaderData, useNavigation } from 'react-router';
import type { Route } from './+types/dashboard.ts';
import { requireUser, services } from '../auth.server.ts';
import { useRefreshWhile } from '../refresh.ts';
import { formatDate, formatDateTime } from '../format.ts';
import type { BackupInProgress } from '../../workflows/messages.ts';
import { customerView } from '../customer-view.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Dashboard — Berth' }];
}

const stageText: Record<string, { label: string; explain: string }> = {
  awaiting_payment: { label: 'Waiting for payment', explain: 'Choose a plan to get your own server.' },
  provisioning: { label: 'Setting up', explain: 'We are creating your server and installing your assistant. This takes a few minutes.' },
  active: { label: 'Active', explain: 'Your server is running.' },
  idle: { label: 'Resting', explain: 'Your server was stopped after a day without use. It starts again when you use your assistant.' },
  past_due: { label: 'Payment failed', explain: 'Your last payment did not go through. Update your card to keep your server.' },
  expiring: { label: 'Ending soon', explain: 'Your subscription will not renew. Your data is backed up before the server is removed.' },
  expired: { label: 'Ended', explain: 'Your server was removed after a verified backup. Subscribe again to get it back with your data.' },
  restoring: { label: 'Restoring', explain: 'We are bringing your server back and restoring your latest backup.' },
  purged: { label: 'Closed', explain: 'Your data was deleted after the retention period.' },
};

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  const view = await services(context).customer.view(user.id);
  // Why the customer needs our attention, and failures' internal messages, are for operators (the
  // Temporal UI), not for the page or its data.
  return { name: user.name, view: view && customerView(view) };
}

export async function action({ request, context }: Route.ActionArgs) {
  const user = await requireUser(request, context);
  const form = await request.formData();
  const command = String(form.get('command'));
  if (command !== 'backup_now' && command !== 'power_on' && command !== 'power_off') {
    return { ok: false, message: 'Unknown command.' };
  }
  return services(context).customer.command(user.id, command);
}

/** "Backing up: 40% (1.2 of 3.0 GB)"; without an estimate yet, just what is done. */
function backupProgressText(backup: BackupInProgress): string {
  const gb = (bytes: number) => (bytes / 1e9).toFixed(1);
  if (backup.phase === null) return 'Backing up: starting…';
  if (backup.phase === 'verifying') return 'Backing up: checking the stored copy…';
  if (backup.bytesEstimate === null || backup.bytesEstimate <= 0) return `Backing up: ${gb(backup.bytesDone)} GB so far…`;
  // The estimate is the files' size; tar's count (headers included) can run past it, so the line stops at 99%.
  const percent = Math.min(99, Math.floor((backup.bytesDone / backup.bytesEstimate) * 100));
  return `Backing up: ${percent}% (${gb(backup.bytesDone)} of ${gb(backup.bytesEstimate)} GB)`;
}

export default function Dashboard() {
  const { name, view } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const busy = navigation.state !== 'idle';
  const backup = view?.backupInProgress ?? null;
  const working = view && (['provisioning', 'restoring'].includes(view.stage) || backup !== null);

  // While the server is being built, restored or backed up, keep the page current without a reload.
  useRefreshWhile(Boolean(working), 3000);

  if (!view || view.stage === 'awaiting_payment') {
    return (
      <section className="card">
        <h1>Welcome, {name}</h1>
        <p>Choose a plan and we set up your own server with your personal assistant.</p>
        <p><Link className="button" to="/billing">See the plans</Link></p>
      </section>
    );
  }
  const stage = stageText[view.stage] ?? { label: view.stage, explain: '' };
  const server = view.server;
  return (
    <>
      {view.needsAttention && (
        <p className="attention" role="status">
          We are on it: something needs our team’s attention. Your data is safe.
        </p>
      )}
      {result && <p className={result.ok ? 'notice' : 'error'} role="status">{result.message}</p>}
      <section className="card">
        <div className="row">
          <h1>Your server</h1>
          <span className={`badge ${view.stage}`} data-testid="stage">{stage.label}</span>
        </div>
        <p>{stage.explain}</p>
        {working && !backup && <p className="progress" aria-live="polite"><span className="spinner" /> Working on it… this page updates by itself.</p>}
        {backup && <p className="progress" aria-live="polite" data-testid="backup-progress"><span className="spinner" /> {backupProgressText(backup)}</p>}
        <dl className="facts">
          <dt>Plan</dt><dd>{view.plan ?? '—'}</dd>
          <dt>Access until</dt><dd>{formatDate(view.accessEndsAt)}{view.willRenew ? ' (renews automatically)' : ''}</dd>
          {server && 'serverType' in server && (
            <>
              <dt>Server</dt><dd>{server.serverType} in {server.location} · {server.power === 'running' ? 'running' : 'stopped'}</dd>
              <dt>Address</dt><dd>{server.ipv4 ?? '—'}</dd>
            </>
          )}
          {server && server.power === 'hibernated' && (<><dt>Server</dt><dd>hibernating: it comes back when you use your assistant</dd></>)}
          {view.dataKeptUntil && (<><dt>Data kept until</dt><dd>{formatDate(view.dataKeptUntil)}</dd></>)}
          {view.nextDeadline && (<><dt>Next</dt><dd>{formatDateTime(view.nextDeadline.at)}: {view.nextDeadline.description}</dd></>)}
        </dl>
        {server && 'serverType' in server && (
          <Form method="post" className="actions">
            <button type="submit" name="command" value="backup_now" disabled={busy}>Back up now</button>
            {server.power === 'running'
              ? <button type="submit" name="command" value="power_off" className="secondary" disabled={busy}>Stop server</button>
              : <button type="submit" name="command" value="power_on" disabled={busy}>Start server</button>}
          </Form>
        )}
        {server && 'serverType' in server && server.power === 'running' && view.stage !== 'provisioning' && view.stage !== 'restoring' && (
          <p className="actions"><Link className="button" to="/chat">Chat with your assistant</Link> <Link className="button secondary-link" to="/terminal">Open a terminal</Link></p>
        )}
      </section>
      <section className="card">
        <h2>Backups</h2>
        {view.recentBackups.length === 0 ? <p className="muted">No backups yet; the first one runs within a day.</p> : (
          <table className="table">
            <thead><tr><th>Made</th><th>Why</th><th>Size</th><th>Verified</th></tr></thead>
            <tbody>
              {[...view.recentBackups].reverse().map((b) => (
                <tr key={b.backupId}><td>{formatDateTime(b.createdAt)}</td><td>{b.reason}</td><td>{(b.sizeBytes / 1e6).toFixed(1)} MB</td><td>{formatDateTime(b.verifiedAt)}</td></tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section className="card">
        <h2>What happened</h2>
        <ol className="timeline">
          {[...view.timeline].reverse().map((t, i) => (<li key={i}><time>{formatDateTime(t.at)}</time> {t.what}</li>))}
        </ol>
      </section>
    </>
  );
}
