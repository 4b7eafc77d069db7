/** OpenAPI description of the drive and VHD endpoints (merged into openapi.ts's document). */
const ref = (n: string): object => ({ $ref: `#/components/schemas/${n}` });
const json = (schema: object): object => ({ content: { 'application/json': { schema } } });
const err = (description: string): object => ({ description, ...json(ref('Error')) });
const name = { name: 'name', in: 'path', required: true, description: 'VM name (case-insensitive)', schema: { type: 'string' } };
const size = { oneOf: [{ type: 'integer', description: 'bytes' }, { type: 'string', examples: ['10GB', '512MB'], description: 'binary multiples, as Hyper-V' }] };
const path = { type: 'string', description: 'absolute, or relative to DATA_DIR/Virtual Hard Disks' };
const accepted = { 202: { description: 'started: poll GET /operations/{id} for progress and the result (a Vhd)', ...json(ref('Operation')) }, 400: err('invalid input') };

export const storageSchemas = {
  NewVMDisk: {
    type: 'object', description: 'New-VM disk options (with the VMSettings): a new dynamic VHDX, or an existing disk; attached at SCSI 0:0',
    properties: { newVhdPath: path, newVhdSizeBytes: size, vhdPath: path },
  },
  Drive: {
    type: 'object',
    properties: {
      vmName: { type: 'string' }, controllerType: { enum: ['SCSI', 'IDE'] }, controllerNumber: { type: 'integer' }, controllerLocation: { type: 'integer' },
      kind: { enum: ['disk', 'dvd'] }, path: { type: ['string', 'null'], description: 'null: an empty DVD drive' },
      sizeBytes: { type: ['integer', 'null'], description: 'virtual size; null when the file cannot be read' },
      fileSizeBytes: { type: ['integer', 'null'], description: 'size of the file on the host' },
    },
  },
  Vhd: {
    type: 'object', description: 'Get-VHD',
    properties: {
      path: { type: 'string' }, vhdFormat: { enum: ['VHDX', 'VHD', 'RAW'] }, vhdType: { enum: ['Fixed', 'Dynamic', 'Differencing'] },
      fileSize: { type: 'integer' }, size: { type: 'integer' }, minimumSize: { type: ['integer', 'null'] },
      logicalSectorSize: { type: 'integer' }, physicalSectorSize: { type: 'integer' }, blockSize: { type: 'integer' },
      parentPath: { type: ['string', 'null'] }, diskIdentifier: { type: ['string', 'null'] }, fragmentationPercentage: { type: ['number', 'null'] },
      attached: { type: ['boolean', 'null'], description: 'attached to a VM of the inventory' }, attachedTo: { type: ['string', 'null'], description: '"VM (SCSI 0:0)"' },
    },
  },
  Operation: {
    type: 'object', description: 'a long-running VHD operation; finished ones are kept for the last 100',
    properties: {
      id: { type: 'string' }, kind: { enum: ['new-vhd', 'resize-vhd', 'merge-vhd', 'convert-vhd', 'optimize-vhd'] }, path: { type: 'string' },
      state: { enum: ['Running', 'Completed', 'Failed'] }, percentComplete: { type: 'integer' }, bytesDone: { type: 'integer' }, bytesTotal: { type: 'integer' },
      bytesPerSecond: { type: ['integer', 'null'] }, secondsRemaining: { type: ['integer', 'null'] },
      started: { type: 'string', format: 'date-time' }, finished: { type: ['string', 'null'], format: 'date-time' },
      result: { description: 'the Vhd after the operation, once Completed' }, error: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    },
  },
};

const slot = (n: string, d: string, schema: object): object => ({ name: n, in: 'path', required: true, description: d, schema });

export const storagePaths = {
  '/hard-disk-drives': { get: { summary: 'Get-VMHardDiskDrive of every VM', responses: { 200: { description: 'drives', ...json({ type: 'array', items: ref('Drive') }) } } } },
  '/vms/{name}/hard-disk-drives': {
    get: { summary: 'Get-VMHardDiskDrive', parameters: [name], responses: { 200: { description: 'drives', ...json({ type: 'array', items: ref('Drive') }) }, 404: err('no such VM') } },
    post: {
      summary: 'Add-VMHardDiskDrive: the first free location unless given; a running VM takes SCSI disks only (hot-added by its worker)', parameters: [name],
      requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path, controllerType: { enum: ['SCSI', 'IDE'], default: 'SCSI' }, controllerNumber: { type: 'integer' }, controllerLocation: { type: 'integer' } } }) },
      responses: { 201: { description: 'the drive', ...json(ref('Drive')) }, 400: err('invalid slot or path'), 404: err('no such VM or file'), 409: err('slot in use, disk attached to another VM (named), no controller, or a state that does not allow it') },
    },
  },
  '/vms/{name}/hard-disk-drives/{type}/{number}/{location}': {
    delete: {
      summary: 'Remove-VMHardDiskDrive: the file stays', parameters: [name, slot('type', 'SCSI or IDE', { enum: ['SCSI', 'IDE'] }), slot('number', 'controller number', { type: 'integer' }), slot('location', 'controller location', { type: 'integer' })],
      responses: { 204: { description: 'removed' }, 404: err('no such VM or drive'), 409: err('a state that does not allow it') },
    },
  },
  '/vms/{name}/scsi-controllers': { post: { summary: 'Add-VMScsiController (VM off; at most 4)', parameters: [name], responses: { 201: { description: 'the VM\'s controller count', ...json({ type: 'object', properties: { scsiControllers: { type: 'integer' } } }) }, 409: err('limit reached or not Off') } } },
  '/dvd-drives': { get: { summary: 'Get-VMDvdDrive of every VM', responses: { 200: { description: 'DVD drives', ...json({ type: 'array', items: ref('Drive') }) } } } },
  '/vms/{name}/dvd-drives': { get: { summary: 'Get-VMDvdDrive', parameters: [name], responses: { 200: { description: 'DVD drives', ...json({ type: 'array', items: ref('Drive') }) } } } },
  '/vms/{name}/dvd-drive': {
    put: {
      summary: 'Set-VMDvdDrive: inserts an ISO (path) or ejects ("" or null); without a DVD drive one is added on IDE (VM off)', parameters: [name],
      requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path: { type: ['string', 'null'] }, controllerNumber: { type: 'integer' }, controllerLocation: { type: 'integer' } } }) },
      responses: { 200: { description: 'the DVD drive', ...json(ref('Drive')) }, 404: err('no such VM, file or drive'), 409: err('a state that does not allow it') },
    },
  },
  '/vhds': {
    get: { summary: 'Get-VHD', parameters: [{ name: 'path', in: 'query', required: true, schema: path }], responses: { 200: { description: 'the disk', ...json(ref('Vhd')) }, 404: err('no such file'), 400: err('not a disk the engine can read') } },
    post: {
      summary: 'New-VHD (never overwrites)', requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path, sizeBytes: size, type: { enum: ['Dynamic', 'Fixed', 'Differencing'], default: 'Dynamic' }, parentPath: path, blockSizeBytes: size, logicalSectorSizeBytes: { enum: [512, 4096] }, physicalSectorSizeBytes: { enum: [512, 4096] } } }) },
      responses: accepted,
    },
  },
  '/vhds/resize': { post: { summary: 'Resize-VHD', requestBody: { required: true, ...json({ type: 'object', required: ['path', 'sizeBytes'], properties: { path, sizeBytes: size } }) }, responses: accepted } },
  '/vhds/merge': { post: { summary: 'Merge-VHD: a differencing disk into its parent (or destinationPath, an ancestor)', requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path, destinationPath: path } }) }, responses: accepted } },
  '/vhds/convert': { post: { summary: 'Convert-VHD: writes a new file', requestBody: { required: true, ...json({ type: 'object', required: ['path', 'destinationPath'], properties: { path, destinationPath: path, vhdType: { enum: ['Fixed', 'Dynamic'] } } }) }, responses: accepted } },
  '/vhds/optimize': { post: { summary: 'Optimize-VHD: compacts a dynamic disk', requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path } }) }, responses: accepted } },
  '/vhds/test': { post: { summary: 'Test-VHD', requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path } }) }, responses: { 200: { description: 'ok, or the problems found', ...json({ type: 'object', properties: { path: { type: 'string' }, ok: { type: 'boolean' }, problems: { type: 'array', items: { type: 'string' } }, message: { type: 'string' } } }) } } } },
  '/operations': { get: { summary: 'long-running VHD operations, running and recently finished', responses: { 200: { description: 'operations', ...json({ type: 'array', items: ref('Operation') }) } } } },
  '/operations/{id}': { get: { summary: 'one operation: percent, rate and time left while Running; the result or the error once finished', parameters: [slot('id', 'operation id', { type: 'string' })], responses: { 200: { description: 'the operation', ...json(ref('Operation')) }, 404: err('unknown or long-forgotten operation') } } },
};
