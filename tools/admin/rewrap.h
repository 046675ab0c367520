#pragma once

// Master key rotation (DESIGN §6): every value c2d keeps sealed is moved
// under the current master key (the first of C2D_MASTER_KEY) by rewrapping
// its data key (crypto::MasterKeys::Rewrap); the values themselves are not
// decrypted. Sealed values live in three shapes:
//  - four columns <prefix>key_id, _wrapped_key, _nonce, _ciphertext
//    (env vars, webhook secrets, database passwords, ACME and certificate
//    keys, the internal CA's key);
//  - a serialized EncryptedValue (repository URLs with credentials);
//  - EncryptedValues inside a ServiceSpec's JSON (the env snapshot of every
//    build and deployment).
// Each row is updated on its own, only if it did not change meanwhile, so
// the services may keep running (they open both keys while C2D_MASTER_KEY
// lists both). Running it again moves what is left; it is done when it
// reports nothing left under another key.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"

namespace c2d::admin {

struct RewrapReport {
  // Where ("env_vars", "databases.password_a_", "deployments.spec", …) -> count.
  std::map<std::string, int64_t> rewrapped;
  // Values that could not be moved: their key is not in C2D_MASTER_KEY, or
  // they are damaged. Where -> count.
  std::map<std::string, int64_t> failed;
};

absl::StatusOr<RewrapReport> RewrapAll(pg::Pool& pool, const crypto::MasterKeys& keys);

// Every four-column sealed set the rotation knows, as "<table>.<prefix>key_id"
// (tests compare it with the schema).
std::vector<std::string> SealedKeyIdColumns();

}  // namespace c2d::admin
