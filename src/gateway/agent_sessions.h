#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bridge/session_service.h"
#include "gateway/agent_profiles.h"
#include "gateway/blocking_calls.h"
#include "gateway/config.h"

namespace tau::gateway {

// Agent sessions: each joins a session to one supervised agent process that speaks acp or
// claude-stream-json, through a sans-IO client of src/agent. The agent's output becomes typed
// agent.* events in the session's log; the session's queued follow-ups become its turns, one at
// a time, oldest first, each taken off the queue when the agent is ready for it (so a drain
// withdraws exactly the undelivered ones); the API cancels turns and answers requests for
// permission. The agent's exit ends the session; the session's end stops the agent and cancels
// its requests for permission.
//
// Thread-safe. Each session's events are appended in the order they happened, by one thread at a
// time and never with a lock held; with a pool whose calls block, from threads of its own.
class AgentSessions {
 public:
  AgentSessions(boost::asio::io_context& io, bridge::SessionService& pool,
                const GatewayConfig& config);
  ~AgentSessions();
  AgentSessions(const AgentSessions&) = delete;
  AgentSessions& operator=(const AgentSessions&) = delete;

  // Starts `profile`'s agent (acp or claude-stream-json) for a session open() has just created.
  // When it cannot start, the session is discarded and this throws core::Error worker_failed.
  void start(const core::SessionSnapshot& session, const AgentProfile& profile);
  // At start-up, for the running sessions whose agent or worker the last run left behind: an
  // acp agent that offered session/load is started again on its agent session (agent.resumed);
  // another agent session ends as failed with an `agent.lost` event, a worker's (protocol
  // lines) with `gateway.restart`. Queued follow-ups stay queued for the resumed agent.
  void recover(const std::vector<std::string>& session_ids);
  // Whether this gateway runs (or ran) an agent for the session.
  bool runs(std::string_view session_id) const;
  // A follow-up was queued on the session: it becomes a turn once the agent is ready for it.
  void followup_queued(const std::string& session_id);
  // The snapshot's `agent` object, or null when the session has no agent here.
  boost::json::value agent_json(std::string_view session_id) const;

  // Asks the agent to stop its turn; false when no turn runs. Throws not_an_agent_session.
  bool cancel(std::string_view session_id);
  // The requests for permission waiting for an answer, oldest first.
  boost::json::array pending_permissions(std::string_view session_id) const;
  // Answers a request with one of its options. Throws permission_request_not_found,
  // permission_request_resolved, invalid_option, not_an_agent_session.
  void answer_permission(std::string_view session_id, std::string_view request_id,
                         std::string_view option_id);

  // For the pool's end listener (called with the pool's lock held): cancels the session's
  // requests for permission and stops its agent.
  void on_session_end(const core::SessionSnapshot& session);
  // The `runtime.agents` status object.
  boost::json::object status_json() const;
  // Stops every agent (their sessions stay as they are, to be resumed or failed on the next
  // start); calls `done` once all have exited.
  void shutdown(std::function<void()> done);

  class AgentSession;
  // Where a resumed agent picks up, as its session's log says.
  struct ResumePoint {
    std::string agent_session_id;  // empty: a new agent session
    std::uint64_t turns = 0;
    std::uint64_t turns_completed = 0;
  };

 private:
  friend class AgentSession;
  std::shared_ptr<AgentSession> find(std::string_view session_id) const;
  void launch(const core::SessionSnapshot& session, const AgentProfile& profile,
              const ResumePoint& resume);
  // Why the session's agent cannot be resumed; empty when it can (and sets `profile`, `resume`).
  std::string resume_refusal(const std::string& session_id, const AgentProfile*& profile,
                             ResumePoint& resume, bool& agent_session);
  std::shared_ptr<AgentSession> find_or_throw(std::string_view session_id) const;
  void agent_exited(const std::string& session_id);
  bool shutting_down() const;

  boost::asio::io_context& io_;
  bridge::SessionService& pool_;
  const GatewayConfig& config_;

  mutable std::mutex mutex_;  // never held while calling into the pool or a session
  std::unordered_map<std::string, std::shared_ptr<AgentSession>> running_;
  // Sessions whose agent has exited (its connection's final state, no process), the oldest
  // forgotten past a bound.
  std::unordered_map<std::string, std::shared_ptr<AgentSession>> exited_;
  std::deque<std::string> exited_order_;
  std::uint64_t started_ = 0;
  std::uint64_t failed_to_start_ = 0;
  bool shutting_down_ = false;
  std::function<void()> on_all_exited_;
  // Last, so that it is joined first: its calls use the members above.
  BlockingCalls recorder_calls_;
};

}  // namespace tau::gateway
