import { createContext } from 'react-router';
import type { WebServices } from '../api/services.ts';

/**
 * How loaders and actions reach the server's services (database, Temporal, billing): api/ puts them
 * into the request's router context. It is exported from entry.server so that api/ uses this very
 * object as the key, and web/ never imports server modules.
 */
export const servicesContext = createContext<WebServices>();
