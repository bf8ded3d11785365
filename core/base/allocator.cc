// Linked into the service binaries (not the tests: sanitizers bring their own allocator), with
// jemalloc: its options, read by jemalloc at start. One arena (the services run their logic on
// one loop thread; gRPC's threads allocate little) and pages given back after half a second of
// disuse, so that a burst's memory does not stay resident.
extern "C" {
const char* malloc_conf = "narenas:1,dirty_decay_ms:500,muzzy_decay_ms:0";
}
