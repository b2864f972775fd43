#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/session_types.h"
#include "metrics/histogram.h"
#include "store/ticket.h"

namespace tau::store {

// What the store keeps of a session besides its events and follow-ups.
struct SessionRecord {
  core::SessionSnapshot snapshot;  // `queued_followups` is not stored: the queue is
  bool has_worker = false;         // a worker process was started for it
  std::int64_t ended_unix_ms = 0;  // when it left `running`; 0 while running
  std::uint64_t last_sequence_id = 0;
};

// The writes the store records. Each carries the session's record as it is after the write, so
// the store never has to read to apply one.

// A session opened, reused (activity), ended or otherwise changed.
struct SaveSession {
  SessionRecord record;
};
// An event appended; with `queued_followup`, also a message added to the follow-up queue.
// Events with sequence ids below `oldest_retained_sequence_id` are dropped (retention).
struct AppendEvent {
  SessionRecord record;
  core::SessionEvent event;
  std::uint64_t oldest_retained_sequence_id = 1;
  std::optional<std::string> queued_followup;
};
// The `count` oldest queued follow-ups removed.
struct DrainFollowups {
  SessionRecord record;
  std::uint64_t count = 0;
};
// A session removed with its events and follow-ups.
struct DeleteSession {
  std::string session_id;
};
using StoreWrite = std::variant<SaveSession, AppendEvent, DrainFollowups, DeleteSession>;

struct StoredSession {
  SessionRecord record;
  std::vector<core::SessionEvent> events;  // retained ones, oldest first
  std::vector<std::string> followups;      // queued ones, oldest first
  // False when the store left this ended session's events on disk (LoadScope::running_events):
  // `events` is empty and read_events() gives them, from `first_stored_sequence_id` to
  // `last_stored_sequence_id` (both 0 when it has none).
  bool events_loaded = true;
  std::uint64_t first_stored_sequence_id = 0;
  std::uint64_t last_stored_sequence_id = 0;
};

// What load() reads: every session's events, or only running sessions' (ended sessions' events
// stay on disk, for a store that reads_events()).
enum class LoadScope { all_events, running_events };

// Every session the store holds, as loaded at start-up.
struct StoredState {
  std::vector<StoredSession> sessions;  // in no particular order
};

struct StoreInfo {
  std::string kind;                  // "memory" or "sqlite"
  std::string path;                  // empty for memory
  std::string durability;            // "none" for memory; "normal" or "full"
  std::uint64_t database_bytes = 0;  // main file plus write-ahead log
  std::uint64_t pending_writes = 0;  // submitted, not yet committed
  std::uint64_t commits = 0;         // transactions committed since start (group commit)
  bool failed = false;               // a commit failed; nothing more is made durable
};

// Raised when a store cannot be opened or loaded (unreadable, corrupt, newer schema). The
// message names the file and says why.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the bridge records every change it acknowledges. Writes are applied in the order they
// are submitted; a ticket becomes durable once its write and every earlier one are committed.
// Thread-safe. `submit` never waits for I/O, so it may be called under the bridge's lock.
class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Everything stored, for start-up. Called before any submit.
  StoredState load() { return load_sessions(LoadScope::all_events); }
  // The same, with ended sessions' events left on disk when `scope` says so and the store
  // reads_events(); a store that cannot read events back loads them all.
  virtual StoredState load_sessions(LoadScope scope) = 0;
  // Whether read_events() reads events back from disk, so that a pool may let them go from
  // memory.
  virtual bool reads_events() const { return false; }
  // A session's stored events with after < sequence_id <= through, oldest first, at most
  // `limit`: what is committed (durable) of them. Waits on disk reads and on a commit in
  // progress: not for I/O threads. Throws StoreError when the read fails.
  virtual std::vector<core::SessionEvent> read_events(std::string_view /*session_id*/,
                                                      std::uint64_t /*after*/,
                                                      std::uint64_t /*through*/,
                                                      std::size_t /*limit*/) {
    return {};
  }
  // Queues a write and returns its ticket (increasing from 1).
  virtual Ticket submit(StoreWrite write) = 0;
  // Every ticket up to this one is durable.
  virtual Ticket durable_ticket() const = 0;
  // Calls `done(true)` once `ticket` is durable, or `done(false)` if the store has failed and it
  // never will be. May call it at once on the calling thread, or later on the store's writer
  // thread; `done` must not block.
  virtual void when_durable(Ticket ticket, std::function<void(bool)> done) = 0;
  // Called on the writer thread after each commit with the newest durable ticket. Never called
  // from `submit` (a store that commits inside `submit` never calls it). Set before use.
  virtual void set_durable_listener(std::function<void(Ticket)> listener) = 0;
  // Blocks until everything submitted so far is durable (or the store failed). Not for I/O
  // threads: for shutdown and tests.
  virtual void flush() = 0;
  virtual StoreInfo info() const = 0;
  // Whether a commit has failed (cheap, unlike info(): no file sizes), for readiness probes.
  virtual bool failed() const = 0;
  // How long each commit (one transaction, a group of writes) took, in seconds. A store that
  // commits nothing to disk observes nothing.
  virtual const metrics::Histogram& commit_seconds() const = 0;
};

}  // namespace tau::store
