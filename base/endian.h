// Little-endian field access for on-disk and on-wire formats: every integer hafs stores or
// sends is little-endian, written byte by byte so the code is right on any host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hafs {

template <typename T>
void put_le(std::span<std::byte> out, size_t off, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out[off + i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

template <typename T>
T get_le(std::span<const std::byte> in, size_t off) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<uint64_t>(std::to_integer<uint8_t>(in[off + i])) << (8 * i);
  return static_cast<T>(v);
}

}  // namespace hafs
