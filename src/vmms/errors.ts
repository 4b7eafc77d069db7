/** Errors the service reports to its clients: an HTTP status, a stable code and a message that says what to do. */
export class VmmsError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

export const badRequest = (msg: string): VmmsError => new VmmsError(400, 'InvalidArgument', msg);
export const notFound = (name: string): VmmsError =>
  new VmmsError(404, 'VMNotFound', `no virtual machine named '${name}' (list them with 'hyperts get-vm')`);
export const conflict = (msg: string): VmmsError => new VmmsError(409, 'InvalidState', msg);
