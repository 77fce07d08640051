// Peer authentication: HMAC-SHA256 with a shared key (libsodium), and the key file format.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "interconnect/wire.h"

namespace hafs::interconnect {

inline constexpr size_t kKeyBytes = 32;
using Key = std::array<uint8_t, kKeyBytes>;

// Reads a key file: 64 hex digits (whitespace around them allowed). The file must not be
// readable by group or others.
Result<Key> load_key_file(const std::string& path);
// Derives a key from a passphrase (for tests and one-machine demos; use a key file in production).
Key key_from_passphrase(const std::string& passphrase);

std::array<uint8_t, kMacBytes> hmac(const Key& key, std::span<const uint8_t> message);
bool hmac_verify(const Key& key, std::span<const uint8_t> message,
                 const std::array<uint8_t, kMacBytes>& mac);
std::array<uint8_t, kNonceBytes> random_nonce();

}  // namespace hafs::interconnect
