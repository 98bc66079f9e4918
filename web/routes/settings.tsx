import { Form, useActionData, useLoaderData, useNavigation } from 'react-router';
import type { Route } from './+types/settings.ts';
import { clientOf, refused, requireUser, services } from '../auth.server.ts';
import { useRefreshWhile } from '../refresh.ts';
import { timeZoneChoices } from '../../lib/time-zones.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Settings — Berth' }];
}

/** Suggestions only: any provider/model the assistant knows is accepted. */
const suggestedModels = ['anthropic/claude-sonnet-4-5', 'anthropic/claude-opus-4-1', 'openai/gpt-5', 'openai/gpt-5-mini', 'google/gemini-2.5-pro'];

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  const view = await services(context).customer.view(user.id);
  return { settings: view?.settings ?? null, timeZones: timeZoneChoices };
}

export async function action({ request, context }: Route.ActionArgs) {
  const user = await requireUser(request, context);
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).customer.saveSettings(user.id, form, { cookieHeader: request.headers.get('cookie'), client: clientOf(context) });
  return result.ok ? { message: result.value.message, errors: {} } : refused(result, { message: null, errors: result.errors });
}

export default function Settings() {
  const { settings, timeZones } = useLoaderData<typeof loader>();
  const data = useActionData<typeof action>();
  const busy = useNavigation().state !== 'idle';
  const errors: Record<string, string | undefined> = data?.errors ?? {};
  const pending = settings?.pending ?? false;

  // While the worker applies the settings on the server, keep the page current.
  useRefreshWhile(Boolean(pending), 2000);

  if (settings === null) {
    return (
      <section className="card">
        <h1>Settings</h1>
        <p className="attention" role="status">Choose a plan first; your assistant is set up with it.</p>
      </section>
    );
  }
  return (
    <section className="card narrow-wide">
      <h1>Settings</h1>
      <p className="muted">How your assistant works. Leave a field empty to keep what it has.</p>
      {data?.message && <p className="notice" role="status">{data.message}</p>}
      {errors.form && <p className="error" role="alert">{errors.form}</p>}
      <p data-testid="settings-state" className={pending ? 'progress' : 'muted'}>
        {pending ? <><span className="spinner" /> Applying your settings to your server…</> : 'Your server has these settings.'}
      </p>
      <dl className="facts">
        <dt>Model</dt><dd>{settings.model ?? 'the assistant’s default'}</dd>
        <dt>Time zone</dt><dd>{settings.timeZone ?? 'UTC'}</dd>
        <dt>Model API key</dt><dd>{settings.apiKeySaved ? 'saved (encrypted; never shown again)' : 'none'}</dd>
      </dl>
      <Form method="post" className="form" noValidate>
        {/* Errors sit outside the labels, so a field's name stays its label alone. */}
        <div className="field">
          <label htmlFor="model">Model</label>
          <input id="model" name="model" list="models" placeholder={settings.model ?? 'provider/model'} autoComplete="off"
            aria-invalid={errors.model ? true : undefined} aria-describedby={errors.model ? 'model-error' : undefined} />
          <datalist id="models">{suggestedModels.map((m) => <option key={m} value={m} />)}</datalist>
          {errors.model && <span id="model-error" className="error">{errors.model}</span>}
        </div>
        <div className="field">
          <label htmlFor="timeZone">Time zone</label>
          <select id="timeZone" name="timeZone" defaultValue="" aria-invalid={errors.timeZone ? true : undefined}
            aria-describedby={errors.timeZone ? 'zone-error' : undefined}>
            <option value="">{settings.timeZone ? `Keep ${settings.timeZone}` : 'Keep UTC'}</option>
            {timeZones.map((tz) => <option key={tz} value={tz}>{tz}</option>)}
          </select>
          {errors.timeZone && <span id="zone-error" className="error">{errors.timeZone}</span>}
        </div>
        <div className="field">
          <label htmlFor="apiKey">Model API key</label>
          <input id="apiKey" name="apiKey" type="password" autoComplete="off" placeholder={settings.apiKeySaved ? 'a key is saved; paste a new one to replace it' : 'paste your provider’s API key'}
            aria-invalid={errors.apiKey ? true : undefined} aria-describedby={errors.apiKey ? 'key-error' : undefined} />
          {errors.apiKey && <span id="key-error" className="error">{errors.apiKey}</span>}
        </div>
        <div className="field">
          <label htmlFor="password">Your password (to change the API key)</label>
          <input id="password" name="password" type="password" autoComplete="current-password" placeholder="only asked if you signed in a while ago"
            aria-invalid={errors.password ? true : undefined} aria-describedby={errors.password ? 'password-error' : undefined} />
          {errors.password && <span id="password-error" className="error">{errors.password}</span>}
        </div>
        <button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Save settings'}</button>
      </Form>
    </section>
  );
}
