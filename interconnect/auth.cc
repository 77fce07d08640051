#include "interconnect/auth.h"

#include <sodium.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace hafs::interconnect {
namespace {
void init_sodium() {
  // sodium_init is idempotent and thread-safe; it only picks CPU-specific implementations.
  HAFS_CHECK(sodium_init() >= 0, "libsodium could not initialize");
}
}  // namespace

Result<Key> load_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::from_errno(errno, "interconnect key file " + path);
  if (st.st_mode & 077)
    return Status::error(Code::kInvalidArgument, "interconnect key file " + path +
                                                     " is readable by group or others (chmod 600)");
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string hex;
  for (char c : s.str())
    if (!std::isspace(static_cast<unsigned char>(c))) hex += c;
  Key key{};
  size_t bin_len = 0;
  if (hex.size() != 2 * kKeyBytes ||
      sodium_hex2bin(key.data(), key.size(), hex.data(), hex.size(), nullptr, &bin_len, nullptr) != 0 ||
      bin_len != kKeyBytes)
    return Status::error(Code::kInvalidArgument,
                         "interconnect key file " + path + " must hold 64 hex digits");
  return key;
}

Key key_from_passphrase(const std::string& passphrase) {
  init_sodium();
  Key key{};
  crypto_generichash(key.data(), key.size(), reinterpret_cast<const uint8_t*>(passphrase.data()),
                     passphrase.size(), reinterpret_cast<const uint8_t*>("hafs-interconnect"), 17);
  return key;
}

std::array<uint8_t, kMacBytes> hmac(const Key& key, std::span<const uint8_t> message) {
  init_sodium();
  static_assert(kMacBytes == crypto_auth_hmacsha256_BYTES);
  static_assert(kKeyBytes == crypto_auth_hmacsha256_KEYBYTES);
  std::array<uint8_t, kMacBytes> mac{};
  crypto_auth_hmacsha256(mac.data(), message.data(), message.size(), key.data());
  return mac;
}

bool hmac_verify(const Key& key, std::span<const uint8_t> message,
                 const std::array<uint8_t, kMacBytes>& mac) {
  init_sodium();
  return crypto_auth_hmacsha256_verify(mac.data(), message.data(), message.size(), key.data()) == 0;
}

std::array<uint8_t, kNonceBytes> random_nonce() {
  init_sodium();
  std::array<uint8_t, kNonceBytes> n{};
  randombytes_buf(n.data(), n.size());
  return n;
}

}  // namespace hafs::interconnect
