// The engine's JSON progress stream (build, push, pull), fed in pieces of
// any size: part of it is a tenant's build output. Never throws, never
// crashes, and no line handed on is longer than the stream's cap.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libs/engine/json_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the chunk size the bytes arrive in.
  const size_t chunk = 1 + data[0] % 64;
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  c2d::engine::LogFn on_log = [&](absl::string_view line) {
    if (line.size() > input.size() + c2d::engine::JsonStream::kMaxPartial) std::abort();
  };
  c2d::engine::JsonStream stream;
  stream.on_log = &on_log;
  for (size_t at = 0; at < input.size(); at += chunk) {
    if (!stream.splitter.Feed(absl::string_view(input).substr(at, chunk))) break;
  }
  stream.Finish();
  return 0;
}
