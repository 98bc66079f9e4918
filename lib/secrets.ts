/**
 * Envelope encryption of small secrets at rest (invariant 6, docs/invariants.md): each secret gets a fresh data
 * key, the secret is sealed with it (AES-256-GCM), and the data key is wrapped by a master key
 * (AES-256-GCM). The envelope names the master key id, so keys can be rotated: the current key
 * encrypts, any configured key decrypts. `context` (e.g. "<owner>/<purpose>") is bound as AAD, so a
 * ciphertext moved to another row does not open.
 *
 * Failures are ApplicationFailures of type KeyUnavailable (unknown key id, wrong key, tampering) or
 * Misconfigured (a master key of the wrong size): retrying cannot fix either.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from './errors.ts';

/** Master keys by id (32 bytes each); `currentKeyId` encrypts, every listed key can decrypt. */
export interface MasterKeys {
  currentKeyId: string;
  keys: Readonly<Record<string, Buffer>>;
}

/** A sealed secret: the bytes to store and the master key id to store beside them. */
export interface SealedSecret {
  ciphertext: Buffer;
  keyId: string;
}

interface EnvelopeJson {
  v: 1;
  alg: 'aes-256-gcm+wrap';
  keyId: string;
  /** The data key wrapped by the master key: nonce | ciphertext | tag, base64. */
  wrappedKey: string;
  /** The secret sealed by the data key: nonce | ciphertext | tag, base64. */
  sealed: string;
}

const NONCE = 12;
const TAG = 16;

/** Builds MasterKeys from the config's base64 MASTER_KEY and MASTER_KEY_ID (plus older keys for rotation). */
export function masterKeysFrom(current: { id: string; base64: string }, older: { id: string; base64: string }[] = []): MasterKeys {
  const keys: Record<string, Buffer> = {};
  for (const k of [...older, current]) keys[k.id] = checkKey(k.id, Buffer.from(k.base64, 'base64'));
  return { currentKeyId: current.id, keys };
}

/** Encrypts `plaintext` under the current master key. */
export function encryptSecret(masterKeys: MasterKeys, plaintext: Buffer | string, context: string): SealedSecret {
  const keyId = masterKeys.currentKeyId;
  const master = keyFor(masterKeys, keyId);
  const dataKey = randomBytes(32);
  try {
    const envelope: EnvelopeJson = {
      v: 1,
      alg: 'aes-256-gcm+wrap',
      keyId,
      wrappedKey: seal(master, dataKey, Buffer.from(`berth-secret-key:${keyId}`)).toString('base64'),
      sealed: seal(dataKey, Buffer.isBuffer(plaintext) ? plaintext : Buffer.from(plaintext, 'utf8'), aad(keyId, context)).toString('base64'),
    };
    return { ciphertext: Buffer.from(JSON.stringify(envelope), 'utf8'), keyId };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Decrypts an envelope. `keyId` is the id stored beside the ciphertext; it must match the one inside
 * the envelope. An unknown key id or a key that does not open the envelope is KeyUnavailable.
 */
export function decryptSecret(masterKeys: MasterKeys, sealed: SealedSecret, context: string): Buffer {
  let envelope: EnvelopeJson;
  try {
    envelope = JSON.parse(sealed.ciphertext.toString('utf8')) as EnvelopeJson;
  } catch {
    throw failure(ErrorType.KeyUnavailable, 'the stored secret is not a Berth secret envelope');
  }
  if (envelope.v !== 1 || envelope.alg !== 'aes-256-gcm+wrap') throw failure(ErrorType.KeyUnavailable, `unsupported secret envelope ${String(envelope.alg)}`);
  if (envelope.keyId !== sealed.keyId) {
    throw failure(ErrorType.KeyUnavailable, `secret envelope names master key ${JSON.stringify(envelope.keyId)} but the row says ${JSON.stringify(sealed.keyId)}`);
  }
  const master = keyFor(masterKeys, envelope.keyId);
  let dataKey: Buffer;
  try {
    dataKey = open(master, Buffer.from(envelope.wrappedKey, 'base64'), Buffer.from(`berth-secret-key:${envelope.keyId}`));
  } catch {
    throw failure(ErrorType.KeyUnavailable, `master key ${JSON.stringify(envelope.keyId)} does not open this secret (wrong key or tampered data)`);
  }
  try {
    return open(dataKey, Buffer.from(envelope.sealed, 'base64'), aad(envelope.keyId, context));
  } catch {
    throw failure(ErrorType.KeyUnavailable, 'the secret does not open in this context (tampered, or stored under another owner/purpose)');
  } finally {
    dataKey.fill(0);
  }
}

function keyFor(masterKeys: MasterKeys, keyId: string): Buffer {
  const key = masterKeys.keys[keyId];
  if (!key) {
    throw failure(ErrorType.KeyUnavailable, `master key ${JSON.stringify(keyId)} is not configured (known: ${Object.keys(masterKeys.keys).map((k) => JSON.stringify(k)).join(', ') || 'none'})`);
  }
  return checkKey(keyId, key);
}

function checkKey(keyId: string, key: Buffer): Buffer {
  if (key.length !== 32) throw failure(ErrorType.Misconfigured, `master key ${JSON.stringify(keyId)} must be 32 bytes (AES-256), got ${key.length}`);
  return key;
}

function aad(keyId: string, context: string): Buffer {
  return Buffer.from(`berth-secret:${keyId}:${context}`, 'utf8');
}

function seal(key: Buffer, plaintext: Buffer, additional: Buffer): Buffer {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(additional);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

function open(key: Buffer, data: Buffer, additional: Buffer): Buffer {
  if (data.length < NONCE + TAG) throw new Error('sealed data too short');
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE));
  decipher.setAAD(additional);
  decipher.setAuthTag(data.subarray(data.length - TAG));
  return Buffer.concat([decipher.update(data.subarray(NONCE, data.length - TAG)), decipher.final()]);
}

function failure(type: ErrorType, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}
