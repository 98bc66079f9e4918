/**
 * Ports and credentials of the run command's local services. Credentials here are local-only
 * placeholders for loopback services with no real data; production takes its own from the environment.
 */
export function localDefaults(_dataDir: string) {
  return {
    appPort: Number(process.env.PORT ?? 3000),
    postgresPort: 54329,
    temporalPort: 7233,
    temporalUiPort: 8233,
    minioPort: 9000,
    minioConsolePort: 9001,
    s3AccessKeyId: 'berth-local',
    s3SecretAccessKey: 'berth-local-secret',
    s3Bucket: 'berth-backups',
    smtpPort: 1025,
    maildevWebPort: 1080,
    localCloudPort: 4010,
  };
}
