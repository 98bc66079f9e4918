import { useEffect } from 'react';
import { useRevalidator } from 'react-router';

/** Reloads the page's data every `everyMs` while `active` (long work on the server), without a page reload. */
export function useRefreshWhile(active: boolean, everyMs: number): void {
  const revalidator = useRevalidator();
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => { if (revalidator.state === 'idle') void revalidator.revalidate(); }, everyMs);
    return () => clearInterval(timer);
  }, [active, everyMs, revalidator]);
}
