// Task ids.
#ifndef REMEX_COMMON_IDS_H_
#define REMEX_COMMON_IDS_H_

#include <cstddef>
#include <string>

namespace remex::common {

// Characters in an id made by NewTaskId(). An id no longer fits
// std::string's inline buffer (15 characters in libstdc++), so each copy of
// one (a snapshot, a reply) allocates: 21 characters keep that allocation in
// glibc's smallest chunk (32 bytes, 24 usable), where the 25 base-32 digits
// that carry as many bits would take the next one (48 bytes) for every
// retained task.
inline constexpr size_t kTaskIdSize = 21;

// The digits of an id: ASCII letters and digits (base 62). URL-safe, safe in
// a file name and a shell word, selected whole by a double click, and never
// starting with '-', so an id is never mistaken for a command-line flag.
inline constexpr char kTaskIdDigits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// Makes a task id that cannot be guessed: 21 base-62 digits, each drawn
// uniformly (by rejection sampling) from the kernel's CSPRNG, 125 bits in
// all. An id says nothing about the server, the time or the ids made before
// or after it; holding one is what lets a caller read or cancel its task,
// so knowing some ids must not help to find others.
//
// The random bytes come from getrandom(2) (the same source as
// /dev/urandom), read in blocks of about 2 KiB into a buffer per thread:
// one system call per ~90 ids instead of one per id. That is still a
// cryptographic source: the bytes are the kernel CSPRNG's output, unchanged,
// each used once and only by the thread that read it, and a block read in a
// parent is dropped in a forked child (pthread_atfork) so parent and child
// never make the same ids. What buffering gives up is only that the next
// ~90 ids of a thread sit in its memory beforehand, where the ids already
// made sit too (the task table); a process that can read its memory can
// read its tasks anyway.
//
// Unique with overwhelming probability: 10^12 ids collide with probability
// below 10^-13. Ids are not ordered; List orders tasks by their
// creation sequence instead (Task::list_position).
//
// Thread-safe. Aborts the process if the kernel gives no random bytes at
// all (no getrandom and no /dev/urandom): no id is better than a guessable
// one.
std::string NewTaskId();

// True if `id` has the shape NewTaskId() makes (cheap syntactic check).
bool IsWellFormedTaskId(const std::string& id);

}  // namespace remex::common

#endif  // REMEX_COMMON_IDS_H_
