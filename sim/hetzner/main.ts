/**
 * Runs the local Hetzner cloud on its own: `node sim/hetzner/main.ts`.
 * HCLOUD_SIM_PORT (default 4010), HCLOUD_SIM_DATA_DIR (default .data/hetzner), HCLOUD_SIM_TOKEN
 * (optional: accept only this token), HCLOUD_SIM_ACTION_MS (default 1000), HCLOUD_SIM_PROJECTS (optional:
 * several projects, as JSON `[{"name","token","serverLimit"?,"rateLimit"?:{"limit","windowMs"}}]`).
 */
import { createLogger } from '../../lib/log.ts';
import { startLocalCloud, type LocalCloudProject } from './local-cloud.ts';

const log = createLogger('local-cloud');
const cloud = await startLocalCloud({
  port: Number(process.env.HCLOUD_SIM_PORT ?? 4010),
  dataDir: process.env.HCLOUD_SIM_DATA_DIR ?? '.data/hetzner',
  token: process.env.HCLOUD_SIM_TOKEN || undefined,
  projects: process.env.HCLOUD_SIM_PROJECTS ? (JSON.parse(process.env.HCLOUD_SIM_PROJECTS) as LocalCloudProject[]) : undefined,
  actionDurationMs: Number(process.env.HCLOUD_SIM_ACTION_MS ?? 1000),
  log,
});
log.info({ endpoint: cloud.endpoint }, 'set HCLOUD_ENDPOINT to this');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void cloud.stop().then(() => process.exit(0));
  });
}
