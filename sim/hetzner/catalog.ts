/** The local cloud's fixed catalogue: locations, data centres, server types and system images. */

import type { Location } from '../../activities/cloud/hetzner/types.ts';

/** A location as the API describes it, plus the data centre servers there are placed in. */
export interface SimLocation extends Location {
  datacenter: { id: number; name: string; description: string };
}

export const locations: SimLocation[] = [
  { id: 1, name: 'fsn1', description: 'Falkenstein DC Park 1', country: 'DE', city: 'Falkenstein', latitude: 50.47612, longitude: 12.370071, network_zone: 'eu-central', datacenter: { id: 4, name: 'fsn1-dc14', description: 'Falkenstein 1 virtual DC 14' } },
  { id: 2, name: 'nbg1', description: 'Nuremberg DC Park 1', country: 'DE', city: 'Nuremberg', latitude: 49.452102, longitude: 11.076665, network_zone: 'eu-central', datacenter: { id: 2, name: 'nbg1-dc3', description: 'Nuremberg 1 virtual DC 3' } },
  { id: 3, name: 'hel1', description: 'Helsinki DC Park 1', country: 'FI', city: 'Helsinki', latitude: 60.169855, longitude: 24.938379, network_zone: 'eu-central', datacenter: { id: 3, name: 'hel1-dc2', description: 'Helsinki 1 virtual DC 2' } },
  { id: 4, name: 'ash', description: 'Ashburn, VA', country: 'US', city: 'Ashburn, VA', latitude: 39.045821, longitude: -77.487073, network_zone: 'us-east', datacenter: { id: 5, name: 'ash-dc1', description: 'Ashburn virtual DC 1' } },
];

export interface SimServerType {
  id: number;
  name: string;
  cores: number;
  memory: number;
  /** GB of the disk a server of this type is created with. */
  disk: number;
  cpu_type: 'shared' | 'dedicated';
  architecture: 'x86' | 'arm';
  storage_type: 'local' | 'network';
  monthlyNet: string;
  /** Locations where the type is sold at all. */
  locationNames: string[];
}

const eu = ['fsn1', 'nbg1', 'hel1'];
const shared = { cpu_type: 'shared', architecture: 'x86', storage_type: 'local' } as const;
/** Hetzner's current line-up (CX*3 cost-optimised, CPX*2 regular, CAX Arm, CCX dedicated) with their disks. */
export const serverTypes: SimServerType[] = [
  { id: 114, name: 'cx23', cores: 2, memory: 4, disk: 40, ...shared, monthlyNet: '3.4900', locationNames: eu },
  { id: 115, name: 'cx33', cores: 4, memory: 8, disk: 80, ...shared, monthlyNet: '5.4900', locationNames: eu },
  { id: 116, name: 'cx43', cores: 8, memory: 16, disk: 160, ...shared, monthlyNet: '9.4900', locationNames: eu },
  { id: 117, name: 'cx53', cores: 16, memory: 32, disk: 320, ...shared, monthlyNet: '17.4900', locationNames: eu },
  { id: 107, name: 'cpx12', cores: 1, memory: 2, disk: 40, ...shared, monthlyNet: '4.9900', locationNames: [...eu, 'ash'] },
  { id: 108, name: 'cpx22', cores: 2, memory: 4, disk: 80, ...shared, monthlyNet: '6.4900', locationNames: [...eu, 'ash'] },
  { id: 109, name: 'cpx32', cores: 4, memory: 8, disk: 160, ...shared, monthlyNet: '10.9900', locationNames: [...eu, 'ash'] },
  { id: 111, name: 'cpx52', cores: 12, memory: 24, disk: 480, ...shared, monthlyNet: '27.9900', locationNames: [...eu, 'ash'] },
  { id: 45, name: 'cax11', cores: 2, memory: 4, disk: 40, ...shared, architecture: 'arm', monthlyNet: '3.7900', locationNames: eu },
  { id: 93, name: 'cax21', cores: 4, memory: 8, disk: 80, ...shared, architecture: 'arm', monthlyNet: '6.4900', locationNames: eu },
  { id: 96, name: 'ccx13', cores: 2, memory: 8, disk: 80, ...shared, cpu_type: 'dedicated', monthlyNet: '12.4900', locationNames: [...eu, 'ash'] },
  { id: 97, name: 'ccx23', cores: 4, memory: 16, disk: 160, ...shared, cpu_type: 'dedicated', monthlyNet: '24.4900', locationNames: [...eu, 'ash'] },
];

export interface SimSystemImage {
  id: number;
  name: string;
  description: string;
  os_flavor: 'debian' | 'ubuntu';
  os_version: string;
}

export const systemImages: SimSystemImage[] = [
  { id: 114690387, name: 'debian-12', description: 'Debian 12', os_flavor: 'debian', os_version: '12' },
  { id: 161547269, name: 'ubuntu-24.04', description: 'Ubuntu 24.04', os_flavor: 'ubuntu', os_version: '24.04' },
];
