/**
 * A multipart upload as a Writable with a fixed pool of part buffers: bytes are copied once into a
 * part buffer, at most `queueSize` parts are in flight, and the same `queueSize + 1` buffers are
 * reused for the whole object. Memory is therefore partSize × (queueSize + 1) whatever the size of
 * the backup, and no multi-MiB buffer is allocated and freed per part (with lib-storage's Upload,
 * which concatenates a new buffer for each part, the allocator's churn put peak RSS past 256 MiB).
 *
 * A stream that ends before its first part is full goes up as one PutObject. On any error the
 * parts in flight are allowed to settle and the multipart upload is aborted, so no parts are left.
 */
import { Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand, type CompletedPart, type S3Client,
} from '@aws-sdk/client-s3';

export interface PartUploadOptions {
  s3: S3Client;
  bucket: string;
  key: string;
  /** Bytes per part (≥ 5 MiB except the last, S3's rule); at most 10,000 parts. */
  partSize: number;
  /** Parts uploaded at once. */
  queueSize: number;
  contentType?: string;
}

export interface PartUpload {
  /** Write the object's bytes here; it finishes once the object is complete in storage. */
  stream: Writable;
  /** Resolves when, after an error, the parts in flight settled and the upload was aborted. */
  cleanedUp: () => Promise<void>;
}

const MAX_PARTS = 10_000;

export function createPartUpload(opts: PartUploadOptions): PartUpload {
  const { s3, bucket, key, partSize, queueSize } = opts;
  const Bucket = bucket;
  const Key = key;
  const free: Buffer[] = [];
  let allocated = 0;
  let current: Buffer | undefined;
  let filled = 0;
  let partNumber = 0;
  let uploadId: Promise<string> | undefined;
  const parts: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  let waiting: (() => void) | undefined;
  let cleanup: Promise<void> = Promise.resolve();
  let completed = false;

  const takeBuffer = async (): Promise<Buffer> => {
    for (;;) {
      if (failure) throw failure;
      const buf = free.pop();
      if (buf) return buf;
      if (allocated < queueSize + 1) {
        allocated++;
        // Outside Node's pool and never freed while the upload runs: reused for every part.
        return Buffer.allocUnsafeSlow(partSize);
      }
      await new Promise<void>((resolve) => { waiting = resolve; });
    }
  };

  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };

  const createUpload = () => {
    uploadId ??= s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ContentType: opts.contentType })).then((r) => {
      if (!r.UploadId) throw new Error(`CreateMultipartUpload for ${Key} returned no UploadId`);
      return r.UploadId;
    });
    return uploadId;
  };

  /** Sends the filled part buffer; resolves once there is room for another part in flight. */
  const dispatch = async (buf: Buffer, length: number): Promise<void> => {
    const PartNumber = ++partNumber;
    if (PartNumber > MAX_PARTS) throw new Error(`${Key} needs more than ${MAX_PARTS} parts of ${partSize} bytes: raise partSize`);
    const sent = (async () => {
      const UploadId = await createUpload();
      const res = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: buf.subarray(0, length), ContentLength: length }));
      if (!res.ETag) throw new Error(`UploadPart ${PartNumber} of ${Key} returned no ETag`);
      parts.push({ PartNumber, ETag: res.ETag, ...(res.ChecksumCRC32 && { ChecksumCRC32: res.ChecksumCRC32 }) });
    })().then(() => {
      free.push(buf);
    }, (err: unknown) => {
      failure ??= err as Error;
      stream.destroy(failure);
    }).finally(() => {
      inFlight.delete(sent);
      wake();
    });
    inFlight.add(sent);
    while (inFlight.size >= queueSize && !failure) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  const settleAndAbort = async () => {
    await Promise.allSettled([...inFlight]);
    if (!uploadId) return;
    const id = await uploadId.catch(() => undefined);
    if (id) await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: id })).catch(() => {});
  };

  const stream = new Writable({
    // One part's worth may wait here while every buffer is in flight.
    highWaterMark: Math.min(partSize, 8 * 1024 * 1024),
    write(chunk: Buffer, _enc, done) {
      (async () => {
        let offset = 0;
        while (offset < chunk.length) {
          current ??= await takeBuffer();
          const n = chunk.copy(current, filled, offset);
          filled += n;
          offset += n;
          if (filled === partSize) {
            const full = current;
            current = undefined;
            filled = 0;
            await dispatch(full, partSize);
          }
        }
      })().then(() => done(), (err: unknown) => done(err as Error));
    },
    final(done) {
      (async () => {
        if (partNumber === 0) {
          // Small object: one PutObject, no multipart upload at all.
          await s3.send(new PutObjectCommand({ Bucket, Key, ContentType: opts.contentType, Body: current ? current.subarray(0, filled) : Buffer.alloc(0), ContentLength: filled }));
          return;
        }
        if (filled > 0) await dispatch(current!, filled);
        await Promise.all([...inFlight]);
        if (failure) throw failure;
        parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
        await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: await createUpload(), MultipartUpload: { Parts: parts } }));
      })().then(() => {
        completed = true;
        // The part buffers are garbage now: let them go before the verification re-read allocates its own.
        free.length = 0;
        current = undefined;
        done();
      }, (err: unknown) => done(err as Error));
    },
    destroy(err, done) {
      if (completed && !err) return done(null);
      failure ??= err ?? new Error('upload destroyed before it completed');
      wake();
      cleanup = settleAndAbort();
      cleanup.then(() => done(err), () => done(err));
    },
  });
  return { stream, cleanedUp: () => cleanup };
}
