#pragma once

// Test support: env vars sealed as the gateway seals them, for specs.

#include <string>

#include "libs/crypto/seal.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::testing {

// `value` sealed under `keys` for env var `key` (fails the test on error).
v1::EnvVar SealedEnvVar(const crypto::MasterKeys& keys, const std::string& key,
                        const std::string& value, bool secret = false);

}  // namespace c2d::testing
