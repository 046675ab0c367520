// Image manifests and indexes as a registry answers them. Never throws,
// never crashes, never overflows the size it adds up.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libs/oci/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto m = c2d::oci::ParseManifest(body);
  if (m.ok() && m->total_size < 0) std::abort();
  return 0;
}
