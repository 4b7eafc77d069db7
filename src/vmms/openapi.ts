/** OpenAPI 3.1 description of the service's REST API (served at /api/v1/openapi.json). */
import { IC_NAMES } from '../vsp/ic/integration-services.js';
import { VM_STATES } from './states.js';
import { storagePaths, storageSchemas } from './openapi-storage.js';

const ref = (n: string): object => ({ $ref: `#/components/schemas/${n}` });
const json = (schema: object): object => ({ content: { 'application/json': { schema } } });
const err = (description: string): object => ({ description, ...json(ref('Error')) });
const name = { name: 'name', in: 'path', required: true, description: 'VM name (case-insensitive)', schema: { type: 'string' } };
const snapshot = { name: 'snapshot', in: 'path', required: true, description: 'checkpoint name (case-insensitive) or id', schema: { type: 'string' } };
const sw = { name: 'switch', in: 'path', required: true, description: 'virtual switch name (case-insensitive)', schema: { type: 'string' } };
const adapter = { name: 'adapter', in: 'path', required: true, description: 'network adapter name (case-insensitive)', schema: { type: 'string' } };
const vmResult = { 200: { description: 'the VM after the operation', ...json(ref('VM')) }, 404: err('no such VM'), 409: err('the VM is in a state that does not allow this') };
const action = (summary: string, extra: object = {}): object => ({ post: { summary, parameters: [name], ...extra, responses: vmResult } });

/** Settable fields of a VM (POST /vms and PATCH /vms/{name}). */
const vmSettingsProperties = {
  name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
  processor: { enum: ['auto', 'kvm', 'emulated'] },
  cpus: { type: 'integer', minimum: 1, maximum: 64 },
  memory: { oneOf: [{ type: 'string', examples: ['512M', '1G'] }, { type: 'integer', description: 'bytes' }], description: '64M to 16G, a multiple of 4K' },
  enlightened: { type: 'boolean' },
  kernel: { type: ['string', 'null'], description: 'null: the default guest image' },
  initrd: { type: ['string', 'null'] },
  cmdline: { type: 'string' },
  com1: { enum: ['console', 'none'] },
  integrationServices: { type: 'object', propertyNames: { enum: [...IC_NAMES] }, additionalProperties: { type: 'boolean' } },
  notes: { type: 'string' },
  checkpointType: { type: 'string', enum: ['Production', 'ProductionOnly', 'Standard', 'Disabled'] },
};

export function openApiDocument(): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'hyperts management service', version: '1.0.0',
      description: 'VMMS-style API: inventory, VM state changes, integration services, KVP and metrics. ' +
        'Unix socket: no token. TCP: every request needs "Authorization: Bearer <token or session>" (never in the URL); ' +
        'bodies must be sent as "Content-Type: application/json" (else 415); browsers get a session from POST /sessions and open ' +
        'WebSockets with a single-use ticket from POST /tickets (?ticket=, valid 30 s, for one path); the Host must be the service\'s ' +
        'and a browser\'s Origin its own. ' +
        'WebSockets: /api/v1/live (JSON messages {type:"vms"|"event"}) and /api/v1/vms/{name}/console (binary COM1 stream, both ways).',
    },
    servers: [{ url: '/api/v1' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Switch: { type: 'object', properties: { name: { type: 'string' }, type: { enum: ['NAT', 'Private', 'Internal', 'External'] }, netAdapterName: { type: 'string', description: 'External: the host interface the bridge enslaves' }, bridge: { type: 'string', description: 'Internal/External: the host bridge (the host\'s interface on the switch)' }, forwards: { type: 'array', items: { type: 'object', properties: { protocol: { enum: ['tcp', 'udp'] }, hostPort: { type: 'integer' }, guestPort: { type: 'integer' } } } }, notes: { type: 'string' }, adapters: { type: 'array', items: { type: 'object', properties: { vmName: { type: 'string' }, adapter: { type: 'string' } } } } } },
        NetworkAdapter: { type: 'object', properties: { vmName: { type: 'string' }, name: { type: 'string' }, macAddress: { type: 'string' }, switchName: { type: ['string', 'null'] }, legacy: { type: 'boolean' }, ipAddresses: { type: 'array', items: { type: 'string' }, description: 'the guest\'s addresses on this adapter (KVP_OP_GET_IP_INFO by its MAC); empty until the guest reports them' }, status: { type: ['object', 'null'], description: 'while running: linkUp, ready, rxFrames, txFrames, rxDropped, malformed, ipAddresses and ipConfiguration (subnets, gateways, dnsServers, dhcpEnabled, reportedAt) as the guest\'s KVP daemon last reported them' } } },
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        VMSettings: { type: 'object', additionalProperties: false, properties: vmSettingsProperties },
        NewVM: {
          type: 'object', additionalProperties: false, required: ['name'], description: 'New-VM: the VM settings, plus a disk at SCSI 0:0 (a new VM has one SCSI controller)',
          properties: { ...vmSettingsProperties, ...storageSchemas.NewVMDisk.properties },
        },
        VM: {
          type: 'object',
          properties: {
            id: { type: 'string' }, name: { type: 'string' }, state: { enum: [...VM_STATES] }, status: { type: 'string' },
            cpuUsage: { type: 'number', description: 'percent of the host\'s total processor time' },
            memoryAssignedBytes: { type: 'integer' }, uptimeSeconds: { type: 'integer' },
            heartbeat: { type: ['string', 'null'] }, osName: { type: ['string', 'null'] }, osVersion: { type: ['string', 'null'] },
            ipAddresses: { type: 'array', items: { type: 'string' } }, backend: { type: ['string', 'null'] },
            workerPid: { type: ['integer', 'null'] }, created: { type: 'string', format: 'date-time' }, config: { type: 'object' },
          },
        },
        IntegrationService: { type: 'object', properties: { name: { enum: [...IC_NAMES] }, enabled: { type: 'boolean' }, status: { type: ['string', 'null'] }, protocol: { type: ['string', 'null'] } } },
        Checkpoint: {
          type: 'object',
          properties: {
            id: { type: 'string' }, vmName: { type: 'string' }, name: { type: 'string' }, snapshotType: { enum: ['Standard', 'Production'], description: 'Production: disks of a frozen guest, no memory state (applying it leaves the VM Off)' },
            disks: { type: 'array', items: { type: 'object', properties: { slot: { type: 'string' }, path: { type: 'string' } } }, description: 'the disk file each drive pointed at when it was taken' },
            creationTime: { type: 'string', format: 'date-time' }, parentSnapshotId: { type: ['string', 'null'] }, parentSnapshotName: { type: ['string', 'null'] },
            runningState: { type: 'boolean', description: 'holds the guest\'s running state (applying it leaves the VM Saved); false: configuration only (Off)' },
            current: { type: 'boolean', description: 'the VM\'s current state descends from this checkpoint' }, config: { type: 'object' },
          },
        },
        ...storageSchemas,
        Event: { type: 'object', properties: { seq: { type: 'integer' }, time: { type: 'integer' }, vmId: { type: ['string', 'null'] }, vmName: { type: ['string', 'null'] }, from: { type: ['string', 'null'] }, to: { type: ['string', 'null'] }, message: { type: 'string' } } },
      },
    },
    security: [{}, { bearer: [] }],
    paths: {
      '/openapi.json': { get: { summary: 'this document', responses: { 200: { description: 'OpenAPI document' } } } },
      '/tickets': {
        post: {
          summary: 'a single-use ticket (30 s): for one WebSocket ({"path": "/live"} or {"path": "/vms/NAME/console"}, then ws://.../api/v1/PATH?ticket=T) or for a browser login ({"purpose": "login"}, then POST /sessions {"ticket": T})',
          requestBody: { required: true, ...json({ type: 'object', properties: { path: { type: 'string' }, purpose: { const: 'login' } } }) },
          responses: { 201: { description: 'the ticket', ...json({ type: 'object', properties: { ticket: { type: 'string' }, expiresInSeconds: { type: 'integer' } } }) }, 400: err('neither a WebSocket path nor a login'), 401: err('no token') },
        },
      },
      '/sessions': {
        post: {
          summary: 'browser sign-in (TCP only): the API token in the Authorization header, or a login ticket in the body; the session then goes in "Authorization: Bearer" (idle 1 h, at most 12 h)',
          security: [{ bearer: [] }, {}],
          requestBody: { required: false, ...json({ type: 'object', properties: { ticket: { type: 'string' } } }) },
          responses: { 201: { description: 'the session', ...json({ type: 'object', properties: { session: { type: 'string' }, idleSeconds: { type: 'integer' } } }) }, 401: err('wrong token or ticket') },
        },
      },
      '/host': { get: { summary: 'Get-VMHost: host check and capacity', responses: { 200: { description: 'host facts, check report and capacity' } } } },
      '/vms': {
        get: { summary: 'Get-VM: all VMs', responses: { 200: { description: 'VMs', ...json({ type: 'array', items: ref('VM') }) } } },
        post: { summary: 'New-VM (with NewVMDisk options: a new or an existing disk at SCSI 0:0; a new VM has one SCSI controller)', requestBody: { required: true, ...json(ref('NewVM')) }, responses: { 201: { description: 'created', ...json(ref('VM')) }, 400: err('invalid settings or malformed body'), 409: err('duplicate name') } },
      },
      '/vms/{name}': {
        get: { summary: 'Get-VM NAME', parameters: [name], responses: { 200: { description: 'the VM', ...json(ref('VM')) }, 404: err('no such VM') } },
        patch: { summary: 'Set-VM', parameters: [name], requestBody: { required: true, ...json(ref('VMSettings')) }, responses: { ...vmResult, 400: err('invalid settings') } },
        delete: { summary: 'Remove-VM (the VM must be Off or Saved; a saved state is deleted with it)', parameters: [name], responses: { 204: { description: 'removed' }, 404: err('no such VM'), 409: err('not Off') } },
      },
      '/vms/{name}/start': action('Start-VM: Off -> Starting -> Running; a Saved VM is restored and continues where it was saved'),
      '/vms/{name}/save': action('Save-VM: Running/Paused -> Saving -> Saved (emulated processor only); the worker ends'),
      '/vms/{name}/saved-state': { delete: { summary: 'Remove-VMSavedState: Saved -> Off, the saved state is discarded', parameters: [name], responses: vmResult } },
      '/vms/{name}/export': {
        post: { summary: 'Export-VM: the VM with its disks, checkpoints and state to PATH/NAME (a running VM from a checkpoint taken for the purpose)', parameters: [name],
          requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path: { type: 'string' } } }) },
          responses: { 200: { description: 'the export folder', ...json({ type: 'object', properties: { path: { type: 'string' } } }) }, 404: err('no such VM'), 409: err('running, or the folder exists') } },
      },
      '/imports': {
        post: { summary: 'Import-VM: register an export in place, or a copy of its disks (copy); generateNewId gives new ids',
          requestBody: { required: true, ...json({ type: 'object', required: ['path'], properties: { path: { type: 'string' }, copy: { type: 'boolean' }, generateNewId: { type: 'boolean' } } }) },
          responses: { 201: { description: 'the imported VM', ...json(ref('VM')) }, 400: err('not an export'), 409: err('name or id already registered') } },
      },
      '/vms/{name}/snapshots': {
        get: { summary: 'Get-VMSnapshot: the VM\'s checkpoints, oldest first', parameters: [name], responses: { 200: { description: 'checkpoints', ...json({ type: 'array', items: ref('Checkpoint') }) }, 404: err('no such VM') } },
        post: {
          summary: 'Checkpoint-VM (standard): Running/Paused VMs keep running (emulated processor), a Saved VM\'s state is copied, an Off VM\'s checkpoint holds its configuration only',
          parameters: [name], requestBody: { required: false, ...json({ type: 'object', properties: { name: { type: 'string', maxLength: 100, description: 'default "VM - (M/D/YYYY - h:mm:ss AM)"' } } }) },
          responses: { 201: { description: 'the new checkpoint', ...json(ref('Checkpoint')) }, 400: err('invalid name'), 404: err('no such VM'), 409: err('duplicate name, limit of 50 reached or a state that does not allow it') },
        },
      },
      '/vms/{name}/snapshots/{snapshot}': {
        get: { summary: 'Get-VMSnapshot NAME SNAPSHOT', parameters: [name, snapshot], responses: { 200: { description: 'the checkpoint', ...json(ref('Checkpoint')) }, 404: err('no such VM or checkpoint') } },
        patch: { summary: 'Rename-VMSnapshot', parameters: [name, snapshot], requestBody: { required: true, ...json({ type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 100 } } }) }, responses: { 200: { description: 'the renamed checkpoint', ...json(ref('Checkpoint')) }, 400: err('invalid name'), 404: err('no such VM or checkpoint'), 409: err('duplicate name') } },
        delete: { summary: 'Remove-VMSnapshot: deletes the checkpoint and its state file; its children move up to its parent', parameters: [name, snapshot], responses: { 204: { description: 'removed' }, 404: err('no such VM or checkpoint') } },
      },
      '/vms/{name}/snapshots/{snapshot}/restore': { post: { summary: 'Restore-VMSnapshot (Apply): the VM must be Off or Saved; it takes the checkpoint\'s configuration and becomes Saved with its state (start-vm resumes there), or Off for a configuration-only checkpoint', parameters: [name, snapshot], responses: { ...vmResult, 404: err('no such VM or checkpoint') } } },
      '/vms/{name}/stop': action('Stop-VM: graceful through the Shutdown integration service; turnOff powers off at once; force turns off when the guest does not comply', {
        requestBody: { required: false, ...json({ type: 'object', properties: { turnOff: { type: 'boolean' }, force: { type: 'boolean' }, wait: { type: 'boolean', description: 'wait for Off (default true)' }, timeoutSeconds: { type: 'number' } } }) },
      }),
      '/vms/{name}/suspend': action('Suspend-VM: Running -> Paused'),
      '/vms/{name}/resume': action('Resume-VM: Paused -> Running'),
      '/vms/{name}/restart': action('Restart-VM (Reset): hard reset'),
      '/vms/{name}/integration-services': { get: { summary: 'Get-VMIntegrationService', parameters: [name], responses: { 200: { description: 'services', ...json({ type: 'array', items: ref('IntegrationService') }) }, 404: err('no such VM') } } },
      '/vms/{name}/integration-services/{service}': {
        put: {
          summary: 'Enable-/Disable-VMIntegrationService', parameters: [name, { name: 'service', in: 'path', required: true, schema: { enum: [...IC_NAMES] } }],
          requestBody: { required: true, ...json({ type: 'object', required: ['enabled'], properties: { enabled: { type: 'boolean' } } }) },
          responses: { 200: { description: 'services', ...json({ type: 'array', items: ref('IntegrationService') }) }, 400: err('unknown service'), 404: err('no such VM') },
        },
      },
      '/vms/{name}/kvp': { get: { summary: 'KVP: the guest\'s intrinsic pool (OSName, OSVersion, addresses) and the host keys', parameters: [name], responses: { 200: { description: 'pools', ...json({ type: 'object', properties: { guest: { type: 'object' }, host: { type: 'object' } } }) }, 409: err('not running or KVP not available') } } },
      '/vms/{name}/kvp/{key}': {
        put: { summary: 'set a host key (pool 0)', parameters: [name, { name: 'key', in: 'path', required: true, schema: { type: 'string' } }], requestBody: { required: true, ...json({ type: 'object', required: ['value'], properties: { value: { type: 'string' } } }) }, responses: { 204: { description: 'set' }, 409: err('not available') } },
        delete: { summary: 'remove a host key', parameters: [name, { name: 'key', in: 'path', required: true, schema: { type: 'string' } }], responses: { 204: { description: 'removed' }, 409: err('not available') } },
      },
      '/vms/{name}/events': { get: { summary: 'event log of one VM', parameters: [name, { name: 'limit', in: 'query', schema: { type: 'integer' } }, { name: 'after', in: 'query', schema: { type: 'integer' } }], responses: { 200: { description: 'events', ...json({ type: 'array', items: ref('Event') }) } } } },
      '/switches': {
        get: { summary: 'Get-VMSwitch: every virtual switch ("Default Switch" is NAT and always exists)', responses: { 200: { description: 'switches', ...json({ type: 'array', items: ref('Switch') }) } } },
        post: { summary: 'New-VMSwitch: NAT (user-mode NAT through passt, optional host port mappings), Private (the VMs on it only), Internal (plus the host, through a bridge) or External (bridged to a host interface); Internal and External need a root service', requestBody: { required: true, ...json({ type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, switchType: { enum: ['NAT', 'Private', 'Internal', 'External'] }, netAdapterName: { type: 'string' }, natForwards: { type: 'array', items: { type: 'string', examples: ['8080:80'] } }, notes: { type: 'string' } } }) }, responses: { 201: { description: 'created', ...json(ref('Switch')) }, 400: err('invalid settings'), 403: err('Internal/External without root'), 409: err('name taken, or the host bridge could not be set up') } },
      },
      '/switches/{switch}': {
        get: { summary: 'Get-VMSwitch NAME', parameters: [sw], responses: { 200: { description: 'the switch', ...json(ref('Switch')) }, 404: err('no such switch') } },
        delete: { summary: 'Remove-VMSwitch: adapters of stopped VMs are left disconnected', parameters: [sw], responses: { 204: { description: 'removed' }, 404: err('no such switch'), 409: err('a running VM uses it, or it is the Default Switch') } },
      },
      '/vms/{name}/network-adapters': {
        get: { summary: 'Get-VMNetworkAdapter: configured adapters, with link state and counters while the VM runs', parameters: [name], responses: { 200: { description: 'adapters', ...json({ type: 'array', items: ref('NetworkAdapter') }) }, 404: err('no such VM') } },
        post: { summary: 'Add-VMNetworkAdapter (synthetic, or legacy with isLegacy; the VM must be Off)', parameters: [name], requestBody: { required: false, ...json({ type: 'object', additionalProperties: false, properties: { name: { type: 'string' }, switchName: { type: ['string', 'null'] }, staticMacAddress: { type: 'string', description: 'default: random in 00:15:5d:xx:xx:xx' }, isLegacy: { type: 'boolean', description: 'the emulated DEC 21140 (legacy network adapter) instead of the synthetic one' } } }) }, responses: { 201: { description: 'added', ...json(ref('NetworkAdapter')) }, 409: err('the VM is not Off, or the name/MAC is taken') } },
      },
      '/vms/{name}/network-adapters/{adapter}': { delete: { summary: 'Remove-VMNetworkAdapter (the VM must be Off)', parameters: [name, adapter], responses: { 204: { description: 'removed' }, 404: err('no such VM or adapter') } } },
      '/vms/{name}/network-adapters/{adapter}/switch': { put: { summary: 'Connect-VMNetworkAdapter ({"switchName": NAME}) / Disconnect-VMNetworkAdapter ({"switchName": null}); a running guest sees its link go up or down', parameters: [name, adapter], requestBody: { required: true, ...json({ type: 'object', required: ['switchName'], properties: { switchName: { type: ['string', 'null'] } } }) }, responses: { 200: { description: 'the adapter', ...json(ref('NetworkAdapter')) }, 404: err('no such VM, adapter or switch') } } },
      ...storagePaths,
      '/events': { get: { summary: 'event log of the service', parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }, { name: 'after', in: 'query', schema: { type: 'integer' } }], responses: { 200: { description: 'events', ...json({ type: 'array', items: ref('Event') }) } } } },
    },
  };
}
