/**
 * Loaded with `node --import` by bench/ssh-native-crypto.ts: makes `import 'ssh2'` load the copy of
 * ssh2 whose optional native crypto binding was built (BENCH_SSH2_NATIVE_MAIN), instead of the
 * project's, which has none. Only for measuring what not loading the binding costs.
 */
import { register } from 'node:module';

const main = process.env.BENCH_SSH2_NATIVE_MAIN;
if (!main) throw new Error('BENCH_SSH2_NATIVE_MAIN must name the built copy of ssh2/lib/index.js');
register(`data:text/javascript,${encodeURIComponent(`
  const target = ${JSON.stringify(new URL(`file://${main}`).href)};
  export async function resolve(specifier, context, next) {
    return specifier === 'ssh2' ? { url: target, format: 'commonjs', shortCircuit: true } : next(specifier, context);
  }
`)}`);
