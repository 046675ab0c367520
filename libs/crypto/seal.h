#pragma once

// Secrets at rest (DESIGN §6): each value is sealed with AES-256-GCM under a
// fresh 32-byte data key; the data key is itself sealed ("wrapped") under a
// master key, whose id is stored with the value so that master keys can
// rotate: new values use the first (current) key, old values open with the
// key their id names.
//
// C2D_MASTER_KEY holds one or more keys, current first:
//   "mk2:<base64 of 32 bytes>,mk1:<base64 of 32 bytes>"
// tools/c2d-up generates one for the embedded default.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::crypto {

// The stored form; matches c2d.v1.EncryptedValue and the *_key_id,
// *_wrapped_key, *_nonce, *_ciphertext columns.
struct Sealed {
  std::string key_id;
  std::string wrapped_key;  // nonce (12) || AES-GCM(master, data key) (32) || tag (16)
  std::string nonce;        // 12 bytes
  std::string ciphertext;   // AES-GCM(data key, plaintext) || tag (16)
};

class MasterKeys {
 public:
  // Parses the C2D_MASTER_KEY syntax above. InvalidArgument names what is wrong
  // (never the key material).
  static absl::StatusOr<MasterKeys> Parse(absl::string_view spec);
  // From C2D_MASTER_KEY (required).
  static absl::StatusOr<MasterKeys> FromEnv();
  // A new random key spec "<id>:<base64>", for set-up tools.
  static std::string Generate(absl::string_view id);

  const std::string& current_id() const { return current_id_; }

  // `aad` binds the value to its meaning (e.g. "env:KEY"); Open must be
  // given the same aad.
  absl::StatusOr<Sealed> Seal(absl::string_view plaintext, absl::string_view aad) const;
  // DataLoss when the value was tampered with or the aad differs;
  // FailedPrecondition when its master key is not configured.
  absl::StatusOr<std::string> Open(const Sealed& sealed, absl::string_view aad) const;
  // The same value under the current key (master key rotation): its data
  // key unwrapped with the key its id names and wrapped again with the
  // current one; nonce and ciphertext stay. Unchanged when it already is
  // under the current key. FailedPrecondition or DataLoss as Open.
  absl::StatusOr<Sealed> Rewrap(const Sealed& sealed) const;

 private:
  // The sealed value's data key, unwrapped.
  absl::StatusOr<std::string> DataKey(const Sealed& sealed) const;

  std::string current_id_;
  std::map<std::string, std::string> keys_;  // id -> 32 raw bytes
};

// The aad that binds a service env var's sealed value to its key; every
// writer and reader of env values uses it.
inline std::string EnvVarAad(absl::string_view key) { return "c2d/env/" + std::string(key); }

// Random bytes from the OS CSPRNG.
std::string RandomBytes(size_t n);

}  // namespace c2d::crypto
