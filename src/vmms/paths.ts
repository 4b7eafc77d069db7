/** Where the service keeps its state: $XDG_DATA_HOME/hyperts (default ~/.local/share/hyperts). */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultDataDir(): string {
  const x = process.env.XDG_DATA_HOME;
  return join(x && x.startsWith('/') ? x : join(homedir(), '.local', 'share'), 'hyperts');
}

export const socketPath = (dataDir: string): string => join(dataDir, 'vmms.sock');
export const tokenPath = (dataDir: string): string => join(dataDir, 'api-token');
/** Default folder of virtual disks (Hyper-V's "Virtual Hard Disks"), one of the roots API paths are confined to. */
export const defaultVirtualDiskDir = (dataDir: string): string => join(dataDir, 'Virtual Hard Disks');
