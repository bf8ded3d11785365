// Linked into the service binaries (not the tests: sanitizers bring their own allocator), with
// jemalloc: its options, read by jemalloc at start (MALLOC_CONF in the environment overrides
// them). One arena (the services run their logic on one loop thread; gRPC's threads allocate
// little); pages given back after 100 ms of disuse, so that a burst's memory does not stay
// resident; thread caches of at most 16 objects per small size class. At K=5000 the two last
// took the cluster's peak from 20.0–20.4 to 19.3–19.7 KB per user with no throughput or CPU
// cost measured (docs/performance.md, "Afternoon of 2026-12-04").
extern "C" {
const char* malloc_conf =
    "narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0,tcache_nslots_small_max:16";
}
