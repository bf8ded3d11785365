#!/usr/bin/env bash
# Builds the stream + stanza parser fuzzer with clang (libFuzzer, ASan, UBSan) from the sources
# in runfiles and runs it for a bounded time over the seed corpus. Fails on any crash.
set -euo pipefail
seconds="${FUZZ_SECONDS:-30}"
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
work="${TEST_TMPDIR}/fuzz"
mkdir -p "$work/corpus"
cp "$root"/tests/fuzz/corpus/* "$work/corpus/"
srcs=(core/xml/xml_element.cc core/xml/xml_serializer.cc core/xml/xml_stream_parser_expat.cc
      core/stanza/errors.cc core/stanza/presence.cc core/stanza/roster.cc core/stanza/stanza.cc
      core/jid/jid.cc core/base/random.cc tests/fuzz/xml_stanza_fuzzer.cc)
cd "$root"
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. "${srcs[@]}" -o "$work/fuzzer" \
  -lexpat -lidn -lcrypto -labsl_status -labsl_cord -labsl_cord_internal -labsl_cordz_info \
  -labsl_cordz_functions -labsl_cordz_handle -labsl_strings -labsl_strings_internal \
  -labsl_str_format_internal -labsl_throw_delegate -labsl_raw_logging_internal \
  -labsl_int128 -labsl_base -labsl_spinlock_wait -labsl_synchronization -labsl_statusor \
  -labsl_time -labsl_time_zone -labsl_stacktrace -labsl_symbolize -labsl_malloc_internal
cd "$work"
./fuzzer -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 corpus \
  2>&1 | tail -n 25
