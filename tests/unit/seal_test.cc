#include "libs/crypto/seal.h"

#include <catch2/catch.hpp>

#include "libs/crypto/hash.h"

namespace c2d {
namespace {

TEST_CASE("sealed values open with the same key and aad only", "[crypto]") {
  auto keys = crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk1"));
  REQUIRE(keys.ok());
  auto sealed = keys->Seal("postgres://u:p@db/app", "env:DATABASE_URL");
  REQUIRE(sealed.ok());
  CHECK(sealed->key_id == "mk1");
  CHECK(sealed->nonce.size() == 12);
  CHECK(sealed->wrapped_key.size() == 60);
  CHECK(sealed->ciphertext.find("postgres") == std::string::npos);
  CHECK(*keys->Open(*sealed, "env:DATABASE_URL") == "postgres://u:p@db/app");

  // Another variable's aad, a flipped bit, a swapped key id: all refused.
  CHECK(absl::IsDataLoss(keys->Open(*sealed, "env:OTHER").status()));
  crypto::Sealed tampered = *sealed;
  tampered.ciphertext[0] ^= 1;
  CHECK(absl::IsDataLoss(keys->Open(tampered, "env:DATABASE_URL").status()));
  tampered = *sealed;
  tampered.wrapped_key[20] ^= 1;
  CHECK(absl::IsDataLoss(keys->Open(tampered, "env:DATABASE_URL").status()));
  // Two seals of one value differ (fresh data key and nonce).
  CHECK(keys->Seal("x", "a")->ciphertext != keys->Seal("x", "a")->ciphertext);
}

TEST_CASE("master keys rotate: new values use the first key, old ones still open", "[crypto]") {
  const std::string old_spec = crypto::MasterKeys::Generate("mk1");
  auto old_keys = crypto::MasterKeys::Parse(old_spec);
  auto sealed_old = old_keys->Seal("secret", "aad");
  auto rotated = crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk2") + "," + old_spec);
  REQUIRE(rotated.ok());
  CHECK(rotated->current_id() == "mk2");
  CHECK(*rotated->Open(*sealed_old, "aad") == "secret");
  CHECK(rotated->Seal("new", "aad")->key_id == "mk2");
  auto sealed_new = rotated->Seal("new", "aad");
  auto missing = old_keys->Open(*sealed_new, "aad");
  CHECK(absl::IsFailedPrecondition(missing.status()));
  CHECK(std::string(missing.status().message()).find("mk2") != std::string::npos);
}

TEST_CASE("a rewrapped value opens with the new key alone and keeps its ciphertext", "[crypto]") {
  const std::string mk1 = crypto::MasterKeys::Generate("mk1");
  const std::string mk2 = crypto::MasterKeys::Generate("mk2");
  auto old_keys = crypto::MasterKeys::Parse(mk1);
  auto sealed = old_keys->Seal("secret", "aad");
  REQUIRE(sealed.ok());
  auto rotating = crypto::MasterKeys::Parse(mk2 + "," + mk1);
  auto rewrapped = rotating->Rewrap(*sealed);
  REQUIRE(rewrapped.ok());
  CHECK(rewrapped->key_id == "mk2");
  CHECK(rewrapped->ciphertext == sealed->ciphertext);
  CHECK(rewrapped->nonce == sealed->nonce);
  CHECK(rewrapped->wrapped_key != sealed->wrapped_key);
  auto new_only = crypto::MasterKeys::Parse(mk2);
  CHECK(*new_only->Open(*rewrapped, "aad") == "secret");
  CHECK(absl::IsFailedPrecondition(new_only->Open(*sealed, "aad").status()));
  // Already under the current key: left as it is.
  auto again = rotating->Rewrap(*rewrapped);
  REQUIRE(again.ok());
  CHECK(again->wrapped_key == rewrapped->wrapped_key);
  // A key that is not configured, or a damaged wrapped key: refused.
  CHECK(absl::IsFailedPrecondition(new_only->Rewrap(*sealed).status()));
  crypto::Sealed damaged = *sealed;
  damaged.wrapped_key[20] ^= 1;
  CHECK(absl::IsDataLoss(rotating->Rewrap(damaged).status()));
}

TEST_CASE("malformed master key specs are refused without echoing key material", "[crypto]") {
  CHECK_FALSE(crypto::MasterKeys::Parse("").ok());
  CHECK_FALSE(crypto::MasterKeys::Parse("nokey").ok());
  auto short_key = crypto::MasterKeys::Parse("mk1:c2hvcnQ=");
  REQUIRE_FALSE(short_key.ok());
  CHECK(std::string(short_key.status().message()).find("c2hvcnQ") == std::string::npos);
  const std::string k = crypto::MasterKeys::Generate("mk1");
  CHECK_FALSE(crypto::MasterKeys::Parse(k + "," + k).ok());
}

}  // namespace
}  // namespace c2d

TEST_CASE("HMAC-SHA256 matches GitHub's published webhook signature example", "[crypto]") {
  // docs.github.com, "Validating webhook deliveries".
  const std::string expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  const std::string mac = c2d::crypto::HmacSha256Hex("It's a Secret to Everybody", "Hello, World!");
  CHECK(mac == expected);
  CHECK(c2d::crypto::ConstantTimeEquals(mac, expected));
  // One bit of the payload changed ('H' 0x48 -> 'I' 0x49): another signature.
  CHECK_FALSE(c2d::crypto::ConstantTimeEquals(
      c2d::crypto::HmacSha256Hex("It's a Secret to Everybody", "Iello, World!"), expected));
  CHECK_FALSE(c2d::crypto::ConstantTimeEquals(mac, mac.substr(1)));
}
