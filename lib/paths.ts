import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, wherever it was cloned. */
export const rootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Built tools (scripts/bootstrap); BERTH_CACHE_DIR overrides, as in scripts/lib.sh. */
export const cacheDir = process.env.BERTH_CACHE_DIR ?? path.join(rootDir, '.cache');
/** Local state of the run command: PostgreSQL, Temporal's SQLite file, MinIO's objects, the local cloud. */
export const dataDir = process.env.BERTH_DATA_DIR ?? path.join(rootDir, '.data');
