#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tau::store {

// The sequence mark, a small file beside the SQLite database (SqliteStore writes and reads it).
//
// Sequence ids must never be handed out twice, but SQLite keeps the newest commits only in the
// WAL, and a WAL that loses its tail (a power loss with synchronous=NORMAL, or a file truncated
// or garbled on disk) silently starts the database with less history: the sessions' counters
// go back and the next events reuse ids that clients may have seen. So the checkpointer also
// keeps, beside the database, each session's highest committed sequence id as of its last
// write (at most a second old while writes go on, and exact after a clean shutdown), and
// opening continues each session past it. Ids committed after the newest mark can still come
// back after such damage; ids before it never do.

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};
// Session id -> highest sequence id committed for it.
using SequenceMarks = std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>>;

// `<database>.seqmark`.
std::string mark_path_of(const std::string& database_path);
// The marks in `mark_path`, or nothing if there is no such file. Throws StoreError if it is
// unreadable or damaged.
std::optional<SequenceMarks> read_marks(const std::string& mark_path);
// Replaces the mark file atomically and durably: a temporary file, fsynced, renamed over it,
// then the directory fsynced. Returns an error message, empty on success.
std::string write_marks(const std::string& mark_path, const SequenceMarks& marks);

}  // namespace tau::store
