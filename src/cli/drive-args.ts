/**
 * `hyperts run --vhd PATH[,controller=scsi|ide][,location=...][,readonly] --dvd ISO`: the drives of a transient
 * VM as a HardwareConfig, like QEMU's -drive. `--vhd` repeats. SCSI disks (the default) fill locations 0, 1, ...
 * of synthetic SCSI controller 0; IDE drives fill IDE 0:0, 0:1, 1:0, 1:1 in order unless a location is given
 * (Gen 1 boots from IDE 0:0; the DVD drive goes to 1:0 when free, as on Hyper-V's default).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './args.js';
import { emptyHardware, SCSI_LOCATIONS, type DriveConfig, type HardwareConfig } from '../platform/hardware.js';

const IDE_ORDER: Array<[number, number]> = [[0, 0], [0, 1], [1, 0], [1, 1]];

/** Pulls every `--vhd V` / `--vhd=V` out of argv (parseArgs keeps only the last of a repeated option). */
export function takeRepeated(args: string[], name: string): { rest: string[]; values: string[] } {
  const rest: string[] = [], values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === `--${name}`) {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`run: --${name} needs a value`);
      values.push(v);
    } else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { rest, values };
}

export function hardwareFromDriveOptions(vhds: string[], dvd: string | undefined): HardwareConfig | undefined {
  if (vhds.length === 0 && dvd === undefined) return undefined;
  const hw = emptyHardware();
  const ideTaken = (c: number, l: number): boolean => hw.drives.some((d) => d.controllerType === 'ide' && d.controllerNumber === c && d.controllerLocation === l);
  const placeIde = (d: Omit<DriveConfig, 'controllerNumber' | 'controllerLocation'>, at?: [number, number]): void => {
    const loc = at ?? IDE_ORDER.find(([c, l]) => !ideTaken(c, l));
    if (!loc) throw new UsageError('run: all four IDE locations are in use');
    if (ideTaken(loc[0], loc[1])) throw new UsageError(`run: IDE ${loc[0]}:${loc[1]} is used twice`);
    hw.drives.push({ ...d, controllerNumber: loc[0], controllerLocation: loc[1] });
  };
  let scsiNext = 0;
  for (const vhd of vhds) {
    const [path, ...opts] = vhd.split(',');
    let controller = 'scsi';
    let location: string | undefined;
    let readOnly = false;
    for (const o of opts) {
      const [k, v] = o.split('=');
      if (k === 'controller' && (v === 'scsi' || v === 'ide')) controller = v;
      else if (k === 'location' && v !== undefined) location = v;
      else if ((k === 'readonly' || k === 'ro') && v === undefined) readOnly = true;
      else throw new UsageError(`run: --vhd option '${o}' is not understood (controller=scsi|ide, location=L for SCSI or C:L for IDE, readonly)`);
    }
    if (!path || !existsSync(path)) throw new UsageError(`run: disk file '${path}' does not exist (create one with: hyperts new-vhd ${path || 'disk.vhdx'} --size-bytes 1GB)`);
    const base = { kind: 'disk' as const, path: resolve(path), readOnly };
    if (controller === 'ide') {
      if (location !== undefined && !/^[01]:[01]$/.test(location)) throw new UsageError(`run: --vhd location=${location}: IDE locations are C:L with C and L 0 or 1`);
      placeIde({ ...base, controllerType: 'ide' }, location ? [Number(location[0]), Number(location[2])] : undefined);
    } else {
      const l = location === undefined ? scsiNext : Number(location);
      if (!Number.isInteger(l) || l < 0 || l >= SCSI_LOCATIONS) throw new UsageError(`run: --vhd location=${location}: SCSI locations are 0-${SCSI_LOCATIONS - 1}`);
      if (hw.drives.some((d) => d.controllerType === 'scsi' && d.controllerLocation === l)) throw new UsageError(`run: SCSI location ${l} is used twice`);
      hw.drives.push({ ...base, controllerType: 'scsi', controllerNumber: 0, controllerLocation: l });
      scsiNext = l + 1;
      hw.scsiControllers = 1;
    }
  }
  if (dvd !== undefined) {
    if (!existsSync(dvd)) throw new UsageError(`run: ISO image '${dvd}' does not exist`);
    placeIde({ controllerType: 'ide', kind: 'dvd', path: resolve(dvd), readOnly: true }, ideTaken(1, 0) ? undefined : [1, 0]);
  }
  return hw;
}
