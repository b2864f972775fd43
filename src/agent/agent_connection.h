#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent_types.h"
#include "agent/text_coalescer.h"

namespace tau::agent {

// One conversation with a coding agent over its stdio, "sans-IO": the caller feeds in each line
// the agent writes to stdout (worker::WorkerListener::on_output, stdout lines only; stderr is not
// protocol) and each API call, always with the current time, and gets back the lines to write
// to the agent's stdin (worker::WorkerProcess::write_line, in order) and the typed events to
// append to the session log (in order). Timers are the caller's: it calls poll() at
// next_flush_ms() and expire_permissions() at next_permission_deadline_ms(). Not thread-safe:
// one caller at a time (the session's strand).
//
// The rules every protocol shares live here: turns, coalesced text, requests for permission
// (policy, answers, cancellation, timeouts). AcpClient and StreamJsonClient say how each is
// spelled on the wire.
class AgentConnection {
 public:
  virtual ~AgentConnection() = default;
  AgentConnection(const AgentConnection&) = delete;
  AgentConnection& operator=(const AgentConnection&) = delete;

  // "acp" or "claude_stream_json", as the config file spells the protocol.
  virtual std::string_view protocol() const = 0;
  // The handshake's first lines (ACP), or nothing when the protocol has no handshake.
  virtual Output start(std::int64_t now_ms) = 0;
  // One line of the agent's stdout, without its newline. Lines that break the protocol become
  // agent.protocol_error events; the conversation goes on.
  virtual Output on_line(std::string_view line, std::int64_t now_ms) = 0;

  // Starts a turn with `text`. Only when state() is idle: the caller queues prompts until then.
  // Throws std::logic_error otherwise.
  Output prompt(const std::string& text, std::int64_t now_ms);
  // Asks the agent to stop the current turn and answers its pending requests for permission
  // `cancelled`. The turn ends when the agent says so (agent.turn_ended). Nothing without a turn.
  Output cancel(std::int64_t now_ms);
  // A client's answer to request_id with one of its options.
  PermissionAnswer answer_permission(std::string_view request_id, std::string_view option_id,
                                     std::int64_t now_ms);
  // Rejects the requests whose permission_timeout_ms has passed (outcome timed_out).
  Output expire_permissions(std::int64_t now_ms);
  // Logs the pending text if it is due.
  Output poll(std::int64_t now_ms);
  // The agent's process is gone: logs what text was pending; state() is exited from now on.
  Output on_exit(std::int64_t now_ms);
  // Something the caller found wrong with what the agent sent (a line over the length limit):
  // logged as an agent.protocol_error in its place among the agent's events.
  Output report_protocol_error(std::string detail);

  // When poll() has something to do; nullopt when no text is pending.
  std::optional<std::int64_t> next_flush_ms() const { return text_.due_ms(); }
  // The earliest deadline of a pending request for permission; nullopt when none is pending.
  std::optional<std::int64_t> next_permission_deadline_ms() const;
  // True once startup_timeout_ms has passed since start() without the agent becoming idle (or
  // when the handshake failed): the caller fails the session.
  bool startup_deadline_passed(std::int64_t now_ms) const;
  // When startup_deadline_passed() becomes true; nullopt unless the agent is starting.
  std::optional<std::int64_t> startup_deadline_ms() const;

  AgentState state() const;
  std::uint64_t current_turn() const { return turn_; }  // 0 before the first
  std::uint64_t turns_completed() const { return turns_completed_; }
  const std::string& last_stop_reason() const { return last_stop_reason_; }  // empty: none yet
  const std::vector<PendingPermission>& pending_permissions() const { return pending_; }
  // Whether the agent can continue this session in a new process (ACP loadSession).
  virtual bool supports_load_session() const { return false; }
  // The agent's own session id (ACP sessionId, stream-json session_id); empty until known.
  const std::string& agent_session_id() const { return agent_session_id_; }
  // Why the handshake failed; empty while it has not.
  const std::string& startup_failure() const { return startup_failure_; }
  // {"name","protocol","state","turns_completed","pending_permissions","last_stop_reason"} for
  // the session's snapshot.
  boost::json::object snapshot(std::string_view name) const;

 protected:
  explicit AgentConnection(AgentOptions options)
      : options_(std::move(options)),
        turn_(options_.resume_turns),
        turns_completed_(options_.resume_turns_completed) {}

  // How each protocol spells a turn's prompt, a cancellation, and the reply to a request for
  // permission (`chosen` null: cancelled or rejected without an option; `reason` says why).
  virtual boost::json::object prompt_message(const std::string& text) = 0;
  virtual std::vector<boost::json::object> cancel_messages() = 0;
  virtual boost::json::object permission_reply(const PendingPermission& request,
                                               const PermissionOption* chosen,
                                               std::string_view reason) = 0;

  const AgentOptions& options() const { return options_; }
  bool turn_active() const { return turn_active_; }
  void mark_started(std::int64_t now_ms);
  void mark_ready() { ready_ = true; }
  void fail_startup(Output& out, std::string detail, boost::json::value raw);
  void set_agent_session_id(std::string id) { agent_session_id_ = std::move(id); }

  // Logs `event` after any pending text, and ends the agent message in progress.
  void emit(Output& out, AgentEvent event);
  // A piece of message or thought text. An empty message_id: the agent gave none, and the
  // pieces up to the next other event form one message with an id made up here.
  void add_text(Output& out, TextKind kind, std::string_view message_id, std::string_view text,
                boost::json::value raw, std::int64_t now_ms);
  void end_turn(Output& out, const std::string& stop_reason, boost::json::object details,
                boost::json::value raw);
  void protocol_error(Output& out, std::string detail, boost::json::value raw = nullptr);
  // The JSON object on `line`; nullopt for a blank line (no message) and for anything else
  // (logged as a protocol error; `what` names the expected message).
  std::optional<boost::json::object> parse_line(Output& out, std::string_view line,
                                                std::string_view what);
  // Logs the request and answers it at once under an allow/deny policy; otherwise keeps it.
  void request_permission(Output& out, PendingPermission request, boost::json::value raw,
                          std::int64_t now_ms);
  // The agent withdrew its request (outcome cancelled, by agent); unknown ids are ignored.
  void withdraw_permission(Output& out, const boost::json::value& agent_request_id);

 private:
  enum class Outcome { selected, cancelled, timed_out };
  void flush_text(Output& out);
  void resolve(Output& out, PendingPermission request, Outcome outcome,
               const PermissionOption* chosen, std::string_view by);
  const PermissionOption* policy_choice(const PendingPermission& request) const;

  AgentOptions options_;
  bool started_ = false;
  std::int64_t started_ms_ = 0;
  bool ready_ = false;
  bool exited_ = false;
  std::string startup_failure_;
  std::string agent_session_id_;

  std::uint64_t turn_ = 0;
  bool turn_active_ = false;
  std::uint64_t turns_completed_ = 0;
  std::string last_stop_reason_;

  TextCoalescer text_;
  std::string open_message_id_;  // made up here for the agent message in progress
  std::uint64_t made_up_messages_ = 0;

  std::vector<PendingPermission> pending_;  // in the order asked
  std::set<std::string> resolved_ids_;      // so a late answer is told "already resolved"
  std::uint64_t permission_requests_ = 0;
};

}  // namespace tau::agent
