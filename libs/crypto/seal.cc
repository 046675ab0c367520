#include "libs/crypto/seal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace c2d::crypto {
namespace {

constexpr size_t kKeyBytes = 32, kNonceBytes = 12, kTagBytes = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// AES-256-GCM encryption: returns ciphertext || tag.
std::string GcmSeal(absl::string_view key, absl::string_view nonce, absl::string_view plaintext,
                    absl::string_view aad) {
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string out(plaintext.size() + kTagBytes, '\0');
  int len = 0, total = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1) {
    throw std::runtime_error("AES-GCM encryption failed");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), o + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, o + plaintext.size()) != 1) {
    throw std::runtime_error("AES-GCM encryption failed");
  }
  return out;
}

// AES-256-GCM decryption of ciphertext || tag; false when authentication fails.
bool GcmOpen(absl::string_view key, absl::string_view nonce, absl::string_view sealed,
             absl::string_view aad, std::string* plaintext) {
  if (sealed.size() < kTagBytes || nonce.size() != kNonceBytes || key.size() != kKeyBytes) {
    return false;
  }
  const size_t n = sealed.size() - kTagBytes;
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  plaintext->assign(n, '\0');
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(plaintext->data());
  std::string tag(sealed.substr(n));
  return ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
         EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                            reinterpret_cast<const unsigned char*>(key.data()),
                            reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
         EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                           reinterpret_cast<const unsigned char*>(aad.data()),
                           static_cast<int>(aad.size())) == 1 &&
         EVP_DecryptUpdate(ctx.get(), o, &len,
                           reinterpret_cast<const unsigned char*>(sealed.data()),
                           static_cast<int>(n)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), o + len, &len) == 1;
}

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

absl::StatusOr<MasterKeys> MasterKeys::Parse(absl::string_view spec) {
  MasterKeys keys;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    size_t colon = item.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(
          "C2D_MASTER_KEY: each key must be written <id>:<base64 of 32 bytes>");
    }
    std::string id(item.substr(0, colon));
    std::string raw;
    if (!absl::Base64Unescape(item.substr(colon + 1), &raw) || raw.size() != kKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("C2D_MASTER_KEY: key ", id, " is not the base64 of 32 bytes"));
    }
    if (keys.keys_.contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat("C2D_MASTER_KEY: key id ", id, " repeats"));
    }
    if (keys.current_id_.empty()) keys.current_id_ = id;
    keys.keys_[id] = std::move(raw);
  }
  if (keys.current_id_.empty()) return absl::InvalidArgumentError("C2D_MASTER_KEY is empty");
  return keys;
}

absl::StatusOr<MasterKeys> MasterKeys::FromEnv() {
  const char* spec = std::getenv("C2D_MASTER_KEY");
  if (spec == nullptr || *spec == '\0') {
    return absl::InvalidArgumentError("C2D_MASTER_KEY is not set");
  }
  return Parse(spec);
}

std::string MasterKeys::Generate(absl::string_view id) {
  return absl::StrCat(id, ":", absl::Base64Escape(RandomBytes(kKeyBytes)));
}

absl::StatusOr<Sealed> MasterKeys::Seal(absl::string_view plaintext, absl::string_view aad) const {
  const std::string& master = keys_.at(current_id_);
  std::string data_key = RandomBytes(kKeyBytes);
  Sealed s;
  s.key_id = current_id_;
  std::string wrap_nonce = RandomBytes(kNonceBytes);
  // The wrapped key is bound to its key id, so ids cannot be swapped.
  s.wrapped_key = wrap_nonce + GcmSeal(master, wrap_nonce, data_key, s.key_id);
  s.nonce = RandomBytes(kNonceBytes);
  s.ciphertext = GcmSeal(data_key, s.nonce, plaintext, aad);
  return s;
}

absl::StatusOr<std::string> MasterKeys::DataKey(const Sealed& sealed) const {
  auto it = keys_.find(sealed.key_id);
  if (it == keys_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secret was sealed with master key ", sealed.key_id, ", which C2D_MASTER_KEY lacks"));
  }
  if (sealed.wrapped_key.size() != kNonceBytes + kKeyBytes + kTagBytes) {
    return absl::DataLossError("sealed secret: wrapped key has the wrong length");
  }
  std::string data_key;
  absl::string_view wrapped = sealed.wrapped_key;
  if (!GcmOpen(it->second, wrapped.substr(0, kNonceBytes), wrapped.substr(kNonceBytes),
               sealed.key_id, &data_key)) {
    return absl::DataLossError("sealed secret: data key does not authenticate");
  }
  return data_key;
}

absl::StatusOr<Sealed> MasterKeys::Rewrap(const Sealed& sealed) const {
  if (sealed.key_id == current_id_) return sealed;
  auto data_key = DataKey(sealed);
  if (!data_key.ok()) return data_key.status();
  Sealed out = sealed;
  out.key_id = current_id_;
  std::string wrap_nonce = RandomBytes(kNonceBytes);
  out.wrapped_key = wrap_nonce + GcmSeal(keys_.at(current_id_), wrap_nonce, *data_key, out.key_id);
  return out;
}

absl::StatusOr<std::string> MasterKeys::Open(const Sealed& sealed, absl::string_view aad) const {
  auto data_key = DataKey(sealed);
  if (!data_key.ok()) return data_key.status();
  std::string plaintext;
  if (!GcmOpen(*data_key, sealed.nonce, sealed.ciphertext, aad, &plaintext)) {
    return absl::DataLossError("sealed secret: value does not authenticate");
  }
  return plaintext;
}

}  // namespace c2d::crypto
