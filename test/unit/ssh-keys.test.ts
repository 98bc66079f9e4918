import ssh2 from 'ssh2';
import { expect, test } from 'vitest';
import { generateEd25519, generateHostKey, sshFingerprint } from '../../activities/cloud/keys.ts';

// ssh2's generator emits a malformed pair for about one key in 256 (a leading zero byte dropped);
// 2000 keys without the check would contain one with probability 1 − (255/256)^2000 ≈ 99.96 %.
test('every generated ed25519 pair is well-formed and loads, public half matching private', () => {
  for (let i = 0; i < 2000; i++) {
    const pair = generateEd25519(`test-${i}`);
    const [type, base64, comment] = pair.publicKey.split(' ');
    expect(type).toBe('ssh-ed25519');
    expect(comment).toBe(`test-${i}`);
    expect(Buffer.from(base64!, 'base64')).toHaveLength(51);
    const parsed = ssh2.utils.parseKey(pair.privateKey);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    expect(key.getPublicSSH().toString('base64')).toBe(base64);
  }
});

test('a host key comes with the fingerprint of its public half', () => {
  const host = generateHostKey('server');
  expect(host.fingerprint).toBe(sshFingerprint(host.publicKey));
  expect(host.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
});
