/** The app's own WebSocket URL for a live path (same host; wss behind https). */
export function liveSocketUrl(path: '/ws/terminal' | '/ws/chat'): string {
  const { protocol, host } = window.location;
  return `${protocol === 'https:' ? 'wss' : 'ws'}://${host}${path}`;
}

/** What the page says about the customer's server before offering a live connection. */
export function liveBlocker(view: { stage: string; server: { power: string } | null } | null): string | null {
  if (!view || view.server === null) return 'You have no server yet. Choose a plan and it is set up for you.';
  if (view.stage === 'provisioning' || view.stage === 'restoring') return 'Your server is being set up; this page works once it is ready.';
  if (view.server.power !== 'running') return 'Your server is resting. Start it from the dashboard, then come back.';
  return null;
}
