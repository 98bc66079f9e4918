/**
 * Proves: what verification accepts (createAuthenticateStream, fed slices of any size as storage
 * returns them) is exactly what the encryptor produced, and anything else fails as BackupCorrupt: a
 * flipped bit in a header, record head, ciphertext or tag, a missing, repeated or reordered chunk, a
 * truncation, bytes after the final chunk; and it hands over the header it found.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect, test } from 'vitest';
import { createAuthenticateStream, createEncryptStream } from '../../activities/backups/crypto.ts';
import { ErrorType } from '../../lib/errors.ts';

const masterKeys = { k1: randomBytes(32) };
const chunkSize = 4096;

async function encrypt(plain: Buffer): Promise<{ object: Buffer; header: Buffer }> {
  const enc = createEncryptStream({ keyId: 'k1', masterKeys, chunkSize });
  const out: Buffer[] = [];
  await pipeline(Readable.from([plain.subarray(0, 1000), plain.subarray(1000)].filter((b) => b.length > 0)), enc, async function* (source) {
    for await (const b of source) out.push(b as Buffer);
  });
  return { object: Buffer.concat(out), header: enc.header };
}

/** Feeds `object` in slices of varying sizes (1 byte to 10 KiB), as a network read would. */
async function authenticate(object: Buffer): Promise<Buffer | undefined> {
  const slices: Buffer[] = [];
  for (let at = 0, i = 0; at < object.length; i++) {
    const n = [1, 7, 5, 16, 4096, 10_000, 333][i % 7]!;
    slices.push(object.subarray(at, at + n));
    at += n;
  }
  let header: Buffer | undefined;
  await pipeline(Readable.from(slices), createAuthenticateStream({ masterKeys, onHeader: (h) => { header = h; } }));
  return header;
}

test('accepts exactly what was encrypted, whatever the slicing, and reports its header', async () => {
  for (const size of [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5 * chunkSize, 5 * chunkSize + 123]) {
    const { object, header } = await encrypt(randomBytes(size));
    expect((await authenticate(object))?.equals(header)).toBe(true);
  }
});

test('refuses any change: a flipped bit anywhere, a chunk dropped, repeated or swapped, a truncation, trailing bytes', async () => {
  const { object, header } = await encrypt(randomBytes(3 * chunkSize + 100));
  const record = 5 + chunkSize + 16;
  const body = object.subarray(header.length);
  const records = [0, 1, 2, 3].map((i) => body.subarray(i * record, (i + 1) * record));
  const flipped = (at: number) => {
    const copy = Buffer.from(object);
    copy[at]! ^= 0x04;
    return copy;
  };
  const bad = [
    flipped(20), // header JSON
    flipped(header.length), // first record's final flag
    flipped(header.length + 2), // first record's length
    flipped(header.length + 5 + 100), // ciphertext
    flipped(header.length + record - 1), // tag
    flipped(object.length - 1), // final record's tag
    Buffer.concat([header, records[0]!, records[2]!, records[3]!]), // dropped
    Buffer.concat([header, records[0]!, records[0]!, records[1]!, records[2]!, records[3]!]), // repeated
    Buffer.concat([header, records[1]!, records[0]!, records[2]!, records[3]!]), // swapped
    object.subarray(0, object.length - 1), // truncated inside the last tag
    Buffer.concat([header, records[0]!, records[1]!, records[2]!]), // final chunk missing
    Buffer.concat([object, Buffer.from([0])]), // trailing byte
    object.subarray(0, 10), // inside the header
  ];
  for (const object of bad) {
    await expect(authenticate(object)).rejects.toMatchObject({ type: expect.stringMatching(new RegExp(`^(${ErrorType.BackupCorrupt}|${ErrorType.KeyUnavailable})$`)) });
  }
});
