/**
 * A benchmark that measures in child processes: started with `--child`, it reads its input as JSON on
 * stdin and runs `child`; otherwise it runs `main`, which starts those children.
 */
export async function parentOrChild<T>(main: () => Promise<void>, child: (input: T) => Promise<void>): Promise<void> {
  if (!process.argv.includes('--child')) return main();
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return child(JSON.parse(text) as T);
}
