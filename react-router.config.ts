import type { Config } from '@react-router/dev/config';

// The customer web app: React Router framework mode (Remix v2's successor), rendered on the server
// by api/ (Express), with its sources in web/.
export default {
  appDirectory: 'web',
  buildDirectory: 'build',
  ssr: true,
} satisfies Config;
