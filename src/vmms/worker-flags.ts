/**
 * Node/V8 flags of every VM worker process (forked, or started in its sandbox), and of the benchmark boots
 * that stand for one (bench/boot.ts).
 *
 * --max-semi-space-size=4: V8's young generation grows to 2 x 16 MiB by default, and stays resident; the
 * worker allocates little that dies young (decoded blocks live long), so 2 x 4 MiB costs no measurable CPU
 * in a boot and keeps ~24 MiB off every worker (issue 17, bench/README.md).
 */
export const WORKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
