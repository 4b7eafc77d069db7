/** Ownership and mode checks of the data directory and of secret files, done when the service starts. */
import { lstatSync } from 'node:fs';

export class UnsafePermissionsError extends Error {}

const uid = (): number => process.getuid?.() ?? 0;

/**
 * The data directory holds the inventory, the token and every VM's files: it must belong to the service's
 * user and be writable by nobody else (else anyone could swap a VM's files or plant a socket).
 */
export function checkPrivateDirectory(dir: string): void {
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) throw new UnsafePermissionsError(`the data directory ${dir} is a symbolic link: give its real path (--data-dir $(realpath ${dir}))`);
  if (!st.isDirectory()) throw new UnsafePermissionsError(`the data directory ${dir} is not a directory`);
  if (st.uid !== uid()) throw new UnsafePermissionsError(`the data directory ${dir} belongs to uid ${st.uid}, not to this service's user (uid ${uid()}): chown ${uid()} ${dir}, or use another --data-dir`);
  if (st.mode & 0o022) throw new UnsafePermissionsError(`the data directory ${dir} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o777).toString(8)}): chmod 700 ${dir}`);
}

/** A secret (the API token) must be a regular file of the service's user that no one else can read or write. */
export function checkSecretFile(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink() || !st.isFile()) throw new UnsafePermissionsError(`the token file ${path} is not a regular file: remove it (a new token is generated) or point --token-file at the real file`);
  if (st.uid !== uid()) throw new UnsafePermissionsError(`the token file ${path} belongs to uid ${st.uid}, not to this service's user (uid ${uid()}): chown ${uid()} ${path}`);
  if (st.mode & 0o077) throw new UnsafePermissionsError(`the token file ${path} is readable or writable by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${path}, and since others may have read it, delete it to get a new token`);
}
