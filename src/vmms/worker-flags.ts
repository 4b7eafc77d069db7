/**
 * Node/V8 flags of every VM worker process (forked, or started in its sandbox), and of the benchmark boots
 * that stand for one (bench/boot.ts).
 *
 * The worker's long-lived data (decoded blocks) is promoted to the old generation; V8's defaults let the young
 * generation grow to 2 x 16 MiB and the old one to a multiple of its live size before collecting, all of it
 * resident. A 2 x 4 MiB young generation and old-generation growth of 30% keep ~15 MiB off a booted worker at no
 * measurable CPU cost in bench:boot (issue 17; numbers in bench/README.md). The smaller young generation alone
 * saved nothing: what it no longer held was promoted and waited in the old generation.
 */
export const WORKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=30'];
