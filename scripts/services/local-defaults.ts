import { localDefaults as env } from '../../lib/config.ts';

const portOf = (url: string) => Number(new URL(url).port);

/**
 * Ports and credentials of the run command's local services, derived from the local defaults in
 * lib/config.ts so the processes and the services they talk to always agree. The credentials are
 * local-only placeholders for loopback services; production takes its own from the environment.
 */
export const localServices = {
  appPort: Number(process.env.PORT ?? env.PORT),
  postgresPort: portOf(env.DATABASE_URL),
  temporalPort: Number(env.TEMPORAL_ADDRESS.split(':').at(-1)),
  temporalUiPort: 8233,
  minioPort: portOf(env.AWS_ENDPOINT_URL_S3),
  minioConsolePort: 9001,
  s3AccessKeyId: env.AWS_ACCESS_KEY_ID,
  s3SecretAccessKey: env.AWS_SECRET_ACCESS_KEY,
  s3Bucket: env.S3_BUCKET,
  smtpPort: portOf(env.SMTP_URL),
  maildevWebPort: 1080,
  localCloudPort: portOf(env.HCLOUD_ENDPOINT),
};
