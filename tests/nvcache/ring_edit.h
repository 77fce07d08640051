// Test helpers that edit a ring in memory the way a crash can leave it.
#pragma once

#include <array>

#include "nvcache/log_format.h"
#include "nvcache/log_reader.h"
#include "nvcache/store.h"

namespace hafs::nvcache::testing {

// Sets both copies of the ring's complete mark to (lsn, pos): the records from there on were
// still in flight when the node crashed (log-format.md §8a), so a scan may take a bad one among
// them for a torn tail. lsn 1 at pos 0 stands for a ring whose records were all in flight.
inline void rewind_complete_mark(MemStore& store, uint64_t lsn, uint64_t pos) {
  auto header = read_ring_header(store);
  std::array<std::byte, kEncodedCompleteMark> mark{};
  encode_complete_mark(CompleteMark{header->ring_id, lsn, pos}, mark);
  for (uint64_t copy = 0; copy < 2; ++copy)
    std::copy(mark.begin(), mark.end(), store.bytes().data() + copy * kHeaderSlotBytes + kCompleteMarkOffset);
}

}  // namespace hafs::nvcache::testing
