import { createContext } from 'react-router';
import type { WebServices } from '../api/services.ts';

/**
 * How loaders and actions reach the server's services (database, Temporal, billing): api/ puts them
 * into the request's router context. It is exported from entry.server so that api/ uses this very
 * object as the key, and web/ never imports server modules.
 */
export const servicesContext = createContext<WebServices>();

/** What the server knows of one request beyond its headers. */
export interface RequestMeta {
  /** The client's address (behind a trusted proxy, from X-Forwarded-For): what throttling counts by. */
  clientIp: string;
  /** This response's CSP nonce: every script React Router renders carries it. */
  cspNonce: string;
}

/** The request's {@link RequestMeta}; set by api/ like servicesContext. */
export const requestContext = createContext<RequestMeta>();
