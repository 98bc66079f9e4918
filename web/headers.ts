/**
 * A route's `headers` export for forms that can be refused for coming too often: the action's
 * Retry-After reaches the page's response (React Router applies an action's status by itself, its
 * headers only through this export).
 */
export function retryAfterHeaders({ actionHeaders }: { actionHeaders: Headers }): Headers {
  const headers = new Headers();
  const retryAfter = actionHeaders.get('Retry-After');
  if (retryAfter) headers.set('Retry-After', retryAfter);
  return headers;
}
