/**
 * `hyperts run --vhd PATH[,controller=ide][,location=C:L] --dvd ISO`: the drives of a transient VM as a
 * HardwareConfig. IDE drives fill IDE 0:0, 0:1, 1:0, 1:1 in order unless a location is given (Gen 1 boots
 * from IDE 0:0; the DVD drive goes to the next free location, 1:0 on Hyper-V's default).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './args.js';
import { emptyHardware, type DriveConfig, type HardwareConfig } from '../platform/hardware.js';

const IDE_ORDER: Array<[number, number]> = [[0, 0], [0, 1], [1, 0], [1, 1]];

export function hardwareFromDriveOptions(vhd: string | undefined, dvd: string | undefined): HardwareConfig | undefined {
  if (vhd === undefined && dvd === undefined) return undefined;
  const hw = emptyHardware();
  const taken = (c: number, l: number): boolean => hw.drives.some((d) => d.controllerType === 'ide' && d.controllerNumber === c && d.controllerLocation === l);
  const place = (d: Omit<DriveConfig, 'controllerNumber' | 'controllerLocation'>, at?: [number, number]): void => {
    const loc = at ?? IDE_ORDER.find(([c, l]) => !taken(c, l));
    if (!loc) throw new UsageError('run: all four IDE locations are in use');
    if (taken(loc[0], loc[1])) throw new UsageError(`run: IDE ${loc[0]}:${loc[1]} is used twice`);
    hw.drives.push({ ...d, controllerNumber: loc[0], controllerLocation: loc[1] });
  };
  if (vhd !== undefined) {
    const [path, ...opts] = vhd.split(',');
    let controller = 'ide';
    let at: [number, number] | undefined;
    let readOnly = false;
    for (const o of opts) {
      const [k, v] = o.split('=');
      if (k === 'controller') controller = v;
      else if (k === 'location' && /^[01]:[01]$/.test(v ?? '')) at = [Number(v[0]), Number(v[2])];
      else if (k === 'readonly' && v === undefined) readOnly = true;
      else throw new UsageError(`run: --vhd option '${o}' is not understood (controller=ide, location=C:L with C and L 0 or 1, readonly)`);
    }
    if (controller !== 'ide') throw new UsageError(`run: --vhd controller=${controller}: only controller=ide is available in this build`);
    if (!path || !existsSync(path)) throw new UsageError(`run: disk file '${path}' does not exist (create one with: qemu-img create -f raw disk.img 1G)`);
    place({ controllerType: 'ide', kind: 'disk', path: resolve(path), readOnly }, at);
  }
  if (dvd !== undefined) {
    if (!existsSync(dvd)) throw new UsageError(`run: ISO image '${dvd}' does not exist`);
    place({ controllerType: 'ide', kind: 'dvd', path: resolve(dvd), readOnly: true }, taken(1, 0) ? undefined : [1, 0]);
  }
  return hw;
}
