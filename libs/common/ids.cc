#include "libs/common/ids.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace c2d::ids {
namespace {

constexpr absl::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kBodyLength = 26;

// CSPRNG bytes, drawn from OpenSSL a few kilobytes at a time: a request
// makes several ids, and each RAND_bytes call takes locks and runs the DRBG.
void RandomBytes(unsigned char* out, size_t n) {
  thread_local std::array<unsigned char, 4096> buffer;
  thread_local size_t used = buffer.size();
  if (used + n > buffer.size()) {
    if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
      // The CSPRNG failing means the process cannot make secrets either.
      throw std::runtime_error("RAND_bytes failed");
    }
    used = 0;
  }
  std::memcpy(out, buffer.data() + used, n);
  OPENSSL_cleanse(buffer.data() + used, n);
  used += n;
}

}  // namespace

std::string New(absl::string_view prefix) {
  uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  std::array<unsigned char, 10> random{};
  RandomBytes(random.data(), random.size());
  std::string out(prefix);
  out.push_back('_');
  // 48-bit timestamp → 10 characters (50 bits, top 2 always zero).
  for (int i = 9; i >= 0; --i) out.push_back(kAlphabet[(ms >> (5 * i)) & 31]);
  // 80 random bits → 16 characters.
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 5; ++i) hi = (hi << 8) | random[i];
  for (int i = 5; i < 10; ++i) lo = (lo << 8) | random[i];
  for (int i = 7; i >= 0; --i) out.push_back(kAlphabet[(hi >> (5 * i)) & 31]);
  for (int i = 7; i >= 0; --i) out.push_back(kAlphabet[(lo >> (5 * i)) & 31]);
  return out;
}

bool Valid(absl::string_view id, absl::string_view prefix) {
  if (id.size() != prefix.size() + 1 + kBodyLength) return false;
  if (id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') return false;
  for (char c : id.substr(prefix.size() + 1)) {
    if (kAlphabet.find(c) == absl::string_view::npos) return false;
  }
  return true;
}

}  // namespace c2d::ids
