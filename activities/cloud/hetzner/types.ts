/**
 * The subset of Hetzner Cloud API shapes Berth reads and writes (spec: ../shared/specs/
 * hetzner-cloud.openapi.json). Fields we never read are left out; the API may send more.
 */

export type Labels = Record<string, string>;

export interface ActionError {
  code: string;
  message: string;
}

export interface Action {
  id: number;
  command: string;
  status: 'running' | 'success' | 'error';
  progress: number;
  started: string;
  finished: string | null;
  resources: { id: number; type: string }[];
  error: ActionError | null;
}

export interface Location {
  id: number;
  name: string;
  description: string;
  country: string;
  city: string;
  latitude: number;
  longitude: number;
  network_zone: string;
}

export interface DeprecationInfo {
  announced: string;
  unavailable_after: string;
}

export interface ServerTypeLocation {
  id: number;
  name: string;
  deprecation: DeprecationInfo | null;
  /** Whether the type can be had there now (the live API; absent from older spec copies). */
  available?: boolean;
  /** Whether Hetzner recommends the type there now (the live API). */
  recommended?: boolean;
}

export interface ServerType {
  id: number;
  name: string;
  description: string;
  cores: number;
  memory: number;
  disk: number;
  cpu_type: 'shared' | 'dedicated';
  architecture: 'x86' | 'arm';
  storage_type: 'local' | 'network';
  deprecated: boolean | null;
  /** Type-wide deprecation (being phased out for the per-location one). */
  deprecation?: DeprecationInfo | null;
  locations: ServerTypeLocation[];
  prices: { location: string; price_hourly: { net: string; gross: string }; price_monthly: { net: string; gross: string } }[];
}

export interface Image {
  id: number;
  type: 'system' | 'app' | 'snapshot' | 'backup';
  status: 'available' | 'creating' | 'unavailable';
  name: string | null;
  description: string;
  image_size: number | null;
  disk_size: number;
  created: string;
  created_from: { id: number; name: string } | null;
  bound_to: number | null;
  os_flavor: string;
  os_version: string | null;
  architecture: 'x86' | 'arm';
  labels: Labels;
  deleted: string | null;
  deprecated: string | null;
  protection: { delete: boolean };
}

export interface SshKey {
  id: number;
  name: string;
  fingerprint: string;
  public_key: string;
  labels: Labels;
  created: string;
}

export type ServerStatus =
  | 'running' | 'initializing' | 'starting' | 'stopping' | 'off' | 'deleting' | 'migrating' | 'rebuilding' | 'unknown';

export interface Server {
  id: number;
  name: string;
  status: ServerStatus;
  created: string;
  labels: Labels;
  locked: boolean;
  server_type: ServerType;
  location: Location;
  image: Image | null;
  public_net: {
    ipv4: { ip: string; blocked: boolean; dns_ptr: string } | null;
    ipv6: { ip: string; blocked: boolean; dns_ptr: { ip: string; dns_ptr: string }[] | null } | null;
    floating_ips: number[];
  };
  primary_disk_size: number;
}

export interface Pagination {
  page: number;
  per_page: number;
  previous_page: number | null;
  next_page: number | null;
  last_page: number | null;
  total_entries: number | null;
}

export interface CreateServerInput {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  labels?: Labels;
  /** SSH key ids or names; Hetzner puts them into root's authorized_keys. */
  ssh_keys?: string[];
  /** cloud-init user data, at most 32 KiB. */
  user_data?: string;
  start_after_create?: boolean;
}

export interface CreateServerResult {
  server: Server;
  action: Action;
  next_actions: Action[];
  root_password: string | null;
}

export interface CreateImageInput {
  type?: 'snapshot' | 'backup';
  description?: string;
  labels?: Labels;
}
