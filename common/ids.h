// Task ids.
#ifndef REMEX_COMMON_IDS_H_
#define REMEX_COMMON_IDS_H_

#include <string>

namespace remex::common {

// Makes task ids that are unique within this process and, with high
// probability, across processes and restarts: a random 32-bit instance prefix
// chosen once per process followed by a 64-bit sequence number, both in
// fixed-width lowercase hex (24 characters). Within one process, ids compare
// (as strings) in the order they were made, which List relies on for paging.
//
// Thread-safe.
std::string NewTaskId();

// True if `id` has the shape NewTaskId() makes (cheap syntactic check).
bool IsWellFormedTaskId(const std::string& id);

}  // namespace remex::common

#endif  // REMEX_COMMON_IDS_H_
