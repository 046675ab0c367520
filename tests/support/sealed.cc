#include "tests/support/sealed.h"

#include <catch2/catch.hpp>

namespace c2d::testing {

v1::EnvVar SealedEnvVar(const crypto::MasterKeys& keys, const std::string& key,
                        const std::string& value, bool secret) {
  auto sealed = keys.Seal(value, crypto::EnvVarAad(key));
  REQUIRE(sealed.ok());
  v1::EnvVar var;
  var.set_key(key);
  var.set_secret(secret);
  var.mutable_value()->set_key_id(sealed->key_id);
  var.mutable_value()->set_wrapped_data_key(sealed->wrapped_key);
  var.mutable_value()->set_nonce(sealed->nonce);
  var.mutable_value()->set_ciphertext(sealed->ciphertext);
  return var;
}

}  // namespace c2d::testing
