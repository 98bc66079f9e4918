import { createContext, useContext, type ReactNode } from 'react';

/** The CSP nonce of the page being rendered on the server; '' in the browser (which hides it anyway). */
const NonceContext = createContext('');

export function NonceProvider({ value, children }: { value: string; children: ReactNode }) {
  return <NonceContext.Provider value={value}>{children}</NonceContext.Provider>;
}

export function useNonce(): string {
  return useContext(NonceContext);
}
