// Task ids.
#ifndef REMEX_COMMON_IDS_H_
#define REMEX_COMMON_IDS_H_

#include <string>

namespace remex::common {

// Characters in an id made by NewTaskId(). At most 15, so that an id fits
// std::string's inline buffer: copying one (snapshots, replies, the task
// table) never allocates.
inline constexpr size_t kTaskIdSize = 15;

// Makes task ids that are unique within this process and, with high
// probability, across processes and restarts: a random 25-bit instance
// prefix chosen once per process followed by a 50-bit sequence number, both
// fixed-width in the base-32 digits 0-9a-v (15 characters). The digits sort
// in ASCII order, so within one process ids compare (as strings) in the order
// they were made, which List relies on for paging.
//
// Thread-safe.
std::string NewTaskId();

// True if `id` has the shape NewTaskId() makes (cheap syntactic check).
bool IsWellFormedTaskId(const std::string& id);

}  // namespace remex::common

#endif  // REMEX_COMMON_IDS_H_
