// CRC32C (Castagnoli), the checksum of every on-disk and on-wire structure in hafs.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; same result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hafs {

// Extends `crc` (the value returned by an earlier call, or 0 to start) over `data`.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len);

inline uint32_t crc32c(const void* data, size_t len) { return crc32c_extend(0, data, len); }
inline uint32_t crc32c(std::span<const std::byte> data) {
  return crc32c_extend(0, data.data(), data.size());
}

}  // namespace hafs
