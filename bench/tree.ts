/** Trees the benchmarks back up. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** A tree like an assistant's state: JSON/log text (compressible), binary blobs (not), many small files. */
export async function makeTree(dir: string, bytes: number): Promise<void> {
  const blobs = Math.max(1, Math.floor((bytes * 0.5) / (64 * MiB)));
  const textFiles = Math.max(1, Math.floor((bytes * 0.45) / (4 * MiB)));
  const small = Math.floor((bytes * 0.05) / (16 * 1024));
  await run('bash', ['-eu', '-c', `
    mkdir -p "$1"/blobs "$1"/logs "$1"/sessions && cd "$1"
    for i in $(seq 1 ${blobs}); do head -c ${64 * MiB} /dev/urandom > blobs/blob$i.bin; done
    for i in $(seq 1 ${textFiles}); do head -c ${3 * MiB} /dev/urandom | base64 -w 120 | head -c ${4 * MiB} > logs/log$i.jsonl; done
    for i in $(seq 1 ${small}); do head -c 12288 /dev/urandom | base64 > sessions/s$i.json; done
  `, 'bash', dir], { maxBuffer: 16 * MiB });
}

/** `count` small JSON-ish files of ~`bytes` each, 100 to a directory: per-file costs dominate. */
export async function makeSmallFiles(dir: string, count: number, bytes = 4096): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sub = path.join(dir, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) await mkdir(sub, { recursive: true });
    await writeFile(path.join(sub, `s${i}.json`), randomBytes(Math.floor((bytes * 3) / 4)).toString('base64'));
  }
}
