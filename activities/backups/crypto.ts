/**
 * Chunked authenticated encryption of a backup stream.
 *
 * One AES-GCM stream authenticates only at its end and is limited to ~64 GiB, so the archive is cut
 * into chunks, each sealed on its own with a per-backup data key. The data key is wrapped by a master
 * key (AES-256-GCM, AAD = key id) and stored in the object's header with the key id, so the object
 * alone names the key it needs. Each chunk's AAD binds the header digest, the chunk index and the
 * final-chunk flag: swapped, dropped, reordered or truncated chunks, or a changed header, fail.
 *
 *   header  = "BERTHBK1" | u32 json length | json {v, alg, keyId, wrapNonce, wrappedKey, chunkSize}
 *   record  = u8 final (0|1) | u32 plaintext length | ciphertext | 16-byte tag
 *   nonce   = 4 zero bytes | u64 chunk index     (unique per data key, which is used for one backup)
 *   aad     = sha256(header) | u64 chunk index | u8 final
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, type DecipherGCM } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { ErrorType } from '../../lib/errors.ts';
import { backupFailure } from './errors.ts';

const MAGIC = Buffer.from('BERTHBK1');
const ALG = 'aes-256-gcm-chunked-v1';
const TAG_BYTES = 16;
const RECORD_HEAD = 5;
/** Headers are small JSON; anything bigger is not ours. */
const MAX_HEADER_JSON = 16 * 1024;
/** 1 MiB: per-record work is already noise at this size (measured: 4 MiB was no faster), and buffers stay small. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/** Master keys by id (32 bytes each). The newest id encrypts; any listed id can decrypt. */
export type MasterKeys = Readonly<Record<string, Buffer>>;

interface HeaderJson {
  v: 1;
  alg: string;
  keyId: string;
  wrapNonce: string;
  wrappedKey: string;
  chunkSize: number;
}

function wrapAad(keyId: string): Buffer {
  return Buffer.from(`berth-backup-data-key:${keyId}`);
}

function nonceFor(index: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(index), 4);
  return nonce;
}

function chunkAad(headerDigest: Buffer, index: number, final: boolean): Buffer {
  const aad = Buffer.alloc(32 + 8 + 1);
  headerDigest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), 32);
  aad[40] = final ? 1 : 0;
  return aad;
}

function checkMasterKey(keyId: string, key: Buffer | undefined): Buffer {
  if (!key) throw backupFailure(ErrorType.KeyUnavailable, `master key ${JSON.stringify(keyId)} is not configured`);
  if (key.length !== 32) throw backupFailure(ErrorType.Misconfigured, `master key ${JSON.stringify(keyId)} must be 32 bytes`);
  return key;
}

/** A fresh data key for one backup and the header that carries it wrapped by the master key. */
export function newBackupHeader(keyId: string, masterKeys: MasterKeys, chunkSize = DEFAULT_CHUNK_SIZE): { header: Buffer; dataKey: Buffer } {
  const master = checkMasterKey(keyId, masterKeys[keyId]);
  const dataKey = randomBytes(32);
  const wrapNonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', master, wrapNonce);
  cipher.setAAD(wrapAad(keyId));
  const wrapped = Buffer.concat([cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  const json: HeaderJson = { v: 1, alg: ALG, keyId, wrapNonce: wrapNonce.toString('base64'), wrappedKey: wrapped.toString('base64'), chunkSize };
  const body = Buffer.from(JSON.stringify(json));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return { header: Buffer.concat([MAGIC, len, body]), dataKey };
}

/** Parses a header from the start of `buf`; undefined if more bytes are needed. */
export function parseHeader(buf: Buffer): { json: HeaderJson; length: number } | undefined {
  if (buf.length < MAGIC.length + 4) return undefined;
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw backupFailure(ErrorType.BackupCorrupt, 'not a Berth backup object (bad magic)');
  const jsonLength = buf.readUInt32BE(MAGIC.length);
  if (jsonLength > MAX_HEADER_JSON) throw backupFailure(ErrorType.BackupCorrupt, 'backup header is implausibly large');
  const length = MAGIC.length + 4 + jsonLength;
  if (buf.length < length) return undefined;
  let json: HeaderJson;
  try {
    json = JSON.parse(buf.subarray(MAGIC.length + 4, length).toString('utf8')) as HeaderJson;
  } catch (err) {
    throw backupFailure(ErrorType.BackupCorrupt, 'backup header is not valid JSON', err);
  }
  if (json.v !== 1 || json.alg !== ALG || typeof json.keyId !== 'string' || !(json.chunkSize > 0 && json.chunkSize <= 64 * 1024 * 1024)) {
    throw backupFailure(ErrorType.BackupCorrupt, 'backup header has an unknown format');
  }
  return { json, length };
}

/** Unwraps the data key; KeyUnavailable if the key id is unknown or the key does not open it. */
export function unwrapDataKey(json: HeaderJson, masterKeys: MasterKeys): Buffer {
  const master = checkMasterKey(json.keyId, masterKeys[json.keyId]);
  const wrapped = Buffer.from(json.wrappedKey, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', master, Buffer.from(json.wrapNonce, 'base64'));
    decipher.setAAD(wrapAad(json.keyId));
    decipher.setAuthTag(wrapped.subarray(wrapped.length - TAG_BYTES));
    return Buffer.concat([decipher.update(wrapped.subarray(0, wrapped.length - TAG_BYTES)), decipher.final()]);
  } catch (err) {
    throw backupFailure(ErrorType.KeyUnavailable, `master key ${JSON.stringify(json.keyId)} does not open this backup's data key (wrong key?)`, err);
  }
}

/** A data key re-wrapped under a newer master key (stored with the backup's record, not in the object). */
interface RewrappedKeyJson {
  v: 1;
  keyId: string;
  nonce: string;
  wrappedKey: string;
}

function rewrapAad(keyId: string, backupId: string): Buffer {
  return Buffer.from(`berth-backup-data-key:${keyId}:${backupId}`);
}

/**
 * Master key rotation for a backup without rewriting its object: the data key, unwrapped with the
 * key the header names (or a previous re-wrap), sealed again under `keyId`, bound to `backupId` so
 * it opens no other backup. Returns the JSON to store with the record.
 */
export function rewrapDataKey(dataKey: Buffer, keyId: string, masterKeys: MasterKeys, backupId: string): string {
  const master = checkMasterKey(keyId, masterKeys[keyId]);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', master, nonce);
  cipher.setAAD(rewrapAad(keyId, backupId));
  const wrapped = Buffer.concat([cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  const json: RewrappedKeyJson = { v: 1, keyId, nonce: nonce.toString('base64'), wrappedKey: wrapped.toString('base64') };
  return JSON.stringify(json);
}

/** The data key from a record's re-wrapped key; KeyUnavailable if its master key is not configured or does not open it. */
export function unwrapRewrapped(stored: string, masterKeys: MasterKeys, backupId: string): { keyId: string; dataKey: Buffer } {
  let json: RewrappedKeyJson;
  try {
    json = JSON.parse(stored) as RewrappedKeyJson;
  } catch (err) {
    throw backupFailure(ErrorType.BackupCorrupt, `backup ${backupId} has an unreadable re-wrapped data key`, err);
  }
  const master = checkMasterKey(json.keyId, masterKeys[json.keyId]);
  const wrapped = Buffer.from(json.wrappedKey, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', master, Buffer.from(json.nonce, 'base64'));
    decipher.setAAD(rewrapAad(json.keyId, backupId));
    decipher.setAuthTag(wrapped.subarray(wrapped.length - TAG_BYTES));
    return { keyId: json.keyId, dataKey: Buffer.concat([decipher.update(wrapped.subarray(0, wrapped.length - TAG_BYTES)), decipher.final()]) };
  } catch (err) {
    throw backupFailure(ErrorType.KeyUnavailable, `master key ${JSON.stringify(json.keyId)} does not open backup ${backupId}'s re-wrapped data key`, err);
  }
}

/** Plaintext in, header + sealed chunk records out; the last record carries the final flag. */
export function createEncryptStream(opts: { keyId: string; masterKeys: MasterKeys; chunkSize?: number }): Transform & { header: Buffer } {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const { header, dataKey } = newBackupHeader(opts.keyId, opts.masterKeys, chunkSize);
  const headerDigest = createHash('sha256').update(header).digest();
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let index = 0;
  let headerSent = false;

  // A record goes out as three buffers (head, ciphertext, tag): no copy to join them, the uploader
  // cuts parts from the stream anyway. The plaintext of a chunk is joined once, then encrypted once.
  const seal = (stream: Transform, plain: Buffer, final: boolean): void => {
    const cipher = createCipheriv('aes-256-gcm', dataKey, nonceFor(index));
    cipher.setAAD(chunkAad(headerDigest, index, final));
    const head = Buffer.allocUnsafe(RECORD_HEAD);
    head[0] = final ? 1 : 0;
    head.writeUInt32BE(plain.length, 1);
    const body = cipher.update(plain);
    cipher.final();
    index++;
    stream.push(head);
    if (body.length > 0) stream.push(body);
    stream.push(cipher.getAuthTag());
  };

  const stream = new Transform({
    // Counted in bytes: one sealed chunk may sit here while the uploader is busy, not more.
    readableHighWaterMark: chunkSize,
    transform(data: Buffer, _enc, done: TransformCallback) {
      if (!headerSent) {
        this.push(header);
        headerSent = true;
      }
      pending.push(data);
      pendingLength += data.length;
      if (pendingLength >= chunkSize) {
        let all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLength);
        while (all.length >= chunkSize) {
          seal(this, all.subarray(0, chunkSize), false);
          all = all.subarray(chunkSize);
        }
        pending = all.length > 0 ? [all] : [];
        pendingLength = all.length;
      }
      done();
    },
    flush(done: TransformCallback) {
      if (!headerSent) this.push(header);
      seal(this, pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLength), true);
      pending = [];
      done();
    },
  });
  // The header names this object's data key: a re-read whose header is this one and whose every chunk
  // authenticates is byte for byte what this stream produced.
  return Object.assign(stream, { header });
}

/**
 * Header + sealed records in, plaintext out. Each chunk is authenticated before any of its bytes
 * go on; a missing final record, bytes after it, or a failed tag is BackupCorrupt; a key that is
 * not configured or does not open the data key is KeyUnavailable.
 */
export function createDecryptStream(opts: { masterKeys: MasterKeys; /** The data key, when the record holds it re-wrapped (rotation); otherwise the header's is used. */ dataKey?: Buffer }): Transform {
  // Incoming blocks are kept as a list and joined only once a whole header or record is there.
  let parts: Buffer[] = [];
  let partsLength = 0;
  let need = MAGIC.length + 4;
  let dataKey: Buffer | undefined;
  let headerDigest: Buffer | undefined;
  let chunkSize = 0;
  let index = 0;
  let finished = false;

  /** Consumes whole records from `buf`; returns the unconsumed rest and sets `need`. */
  const consume = (input: Buffer, push: (b: Buffer) => void): Buffer => {
    let buf = input;
    if (!dataKey) {
      const parsed = parseHeader(buf);
      if (!parsed) {
        need = buf.length < MAGIC.length + 4 ? MAGIC.length + 4 : MAGIC.length + 4 + buf.readUInt32BE(MAGIC.length);
        return buf;
      }
      dataKey = opts.dataKey ?? unwrapDataKey(parsed.json, opts.masterKeys);
      headerDigest = createHash('sha256').update(buf.subarray(0, parsed.length)).digest();
      chunkSize = parsed.json.chunkSize;
      buf = buf.subarray(parsed.length);
    }
    for (;;) {
      need = RECORD_HEAD;
      if (buf.length === 0) return buf;
      if (finished) throw backupFailure(ErrorType.BackupCorrupt, 'backup object has data after its final chunk');
      if (buf.length < RECORD_HEAD) return buf;
      const flag = buf[0]!;
      const length = buf.readUInt32BE(1);
      if (flag > 1 || length > chunkSize) throw backupFailure(ErrorType.BackupCorrupt, `backup chunk ${index} has a corrupt record header`);
      const recordLength = RECORD_HEAD + length + TAG_BYTES;
      need = recordLength;
      if (buf.length < recordLength) return buf;
      const final = flag === 1;
      try {
        const decipher = createDecipheriv('aes-256-gcm', dataKey, nonceFor(index));
        decipher.setAAD(chunkAad(headerDigest!, index, final));
        decipher.setAuthTag(buf.subarray(RECORD_HEAD + length, recordLength));
        const plain = decipher.update(buf.subarray(RECORD_HEAD, RECORD_HEAD + length));
        decipher.final();
        push(plain);
      } catch (err) {
        throw backupFailure(ErrorType.BackupCorrupt, `backup chunk ${index} failed authentication (corrupt, reordered or truncated object)`, err);
      }
      index++;
      finished = final;
      buf = buf.subarray(recordLength);
    }
  };

  return new Transform({
    transform(data: Buffer, _enc, done: TransformCallback) {
      parts.push(data);
      partsLength += data.length;
      if (partsLength < need) return done();
      try {
        const rest = consume(parts.length === 1 ? parts[0]! : Buffer.concat(parts, partsLength), (b) => this.push(b));
        parts = rest.length > 0 ? [rest] : [];
        partsLength = rest.length;
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      if (!dataKey) return done(backupFailure(ErrorType.BackupCorrupt, 'backup object ends inside its header'));
      if (!finished || partsLength > 0) return done(backupFailure(ErrorType.BackupCorrupt, `backup object is truncated or has trailing data (final chunk seen: ${finished}, after ${index} chunks)`));
      done();
    },
  });
}

/**
 * Authenticates a whole object without keeping any of it: the header is parsed and handed to
 * `onHeader`, then every record's ciphertext is fed to AES-GCM slice by slice as it arrives (no
 * joining into chunks), its plaintext dropped at once, and its tag checked at the record's end. For
 * verifying what storage holds, where nothing is extracted: a restore, which passes plaintext on,
 * uses createDecryptStream, which releases a chunk only after its tag is checked. Errors as there.
 */
export function createAuthenticateStream(opts: { masterKeys: MasterKeys; onHeader?: (header: Buffer) => void }): Writable {
  let head: Buffer = Buffer.alloc(0);
  let dataKey: Buffer | undefined;
  let headerDigest: Buffer | undefined;
  let chunkSize = 0;
  let index = 0;
  let finished = false;
  // Within a record: its head (5 bytes), then `remaining` ciphertext bytes, then the 16-byte tag.
  let decipher: DecipherGCM | undefined;
  let remaining = 0;
  let small: Buffer[] = [];
  let smallLength = 0;

  /** Takes up to `want` bytes into `small`; true once it holds `want`. */
  const gather = (data: Buffer, at: number, want: number): number => {
    const n = Math.min(want - smallLength, data.length - at);
    small.push(data.subarray(at, at + n));
    smallLength += n;
    return n;
  };
  const takeSmall = (): Buffer => {
    const all = small.length === 1 ? small[0]! : Buffer.concat(small, smallLength);
    small = [];
    smallLength = 0;
    return all;
  };

  const consume = (data: Buffer): void => {
    let at = 0;
    if (!dataKey) {
      head = Buffer.concat([head, data]);
      const parsed = parseHeader(head);
      if (!parsed) return;
      dataKey = unwrapDataKey(parsed.json, opts.masterKeys);
      const header = Buffer.from(head.subarray(0, parsed.length));
      headerDigest = createHash('sha256').update(header).digest();
      chunkSize = parsed.json.chunkSize;
      opts.onHeader?.(header);
      data = head.subarray(parsed.length);
      head = Buffer.alloc(0);
    }
    while (at < data.length) {
      if (!decipher) {
        if (finished) throw backupFailure(ErrorType.BackupCorrupt, 'backup object has data after its final chunk');
        at += gather(data, at, RECORD_HEAD);
        if (smallLength < RECORD_HEAD) return;
        const recordHead = takeSmall();
        const flag = recordHead[0]!;
        const length = recordHead.readUInt32BE(1);
        if (flag > 1 || length > chunkSize) throw backupFailure(ErrorType.BackupCorrupt, `backup chunk ${index} has a corrupt record header`);
        finished = flag === 1;
        decipher = createDecipheriv('aes-256-gcm', dataKey, nonceFor(index));
        decipher.setAAD(chunkAad(headerDigest!, index, finished));
        remaining = length;
      }
      if (remaining > 0) {
        const n = Math.min(remaining, data.length - at);
        decipher.update(data.subarray(at, at + n));
        remaining -= n;
        at += n;
        continue;
      }
      at += gather(data, at, TAG_BYTES);
      if (smallLength < TAG_BYTES) return;
      try {
        decipher.setAuthTag(takeSmall());
        decipher.final();
      } catch (err) {
        throw backupFailure(ErrorType.BackupCorrupt, `backup chunk ${index} failed authentication (corrupt, reordered or truncated object)`, err);
      }
      decipher = undefined;
      index++;
    }
  };

  return new Writable({
    write(data: Buffer, _enc, done) {
      try {
        consume(data);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    final(done) {
      if (!dataKey) return done(backupFailure(ErrorType.BackupCorrupt, 'backup object ends inside its header'));
      if (!finished || decipher || smallLength > 0) return done(backupFailure(ErrorType.BackupCorrupt, `backup object is truncated (final chunk seen: ${finished}, after ${index} chunks)`));
      done();
    },
  });
}
