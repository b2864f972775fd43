#include "gateway/agent_sessions.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "agent/acp_client.h"
#include "agent/stream_json_client.h"
#include "core/clock.h"
#include "core/errors.h"
#include "gateway/worker_supervisor.h"
#include "worker/worker_process.h"

namespace tau::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxExitedSnapshots = 10000;
constexpr const char* kClientVersion = "0.2.0";  // clientInfo.version in ACP's initialize

namespace event_types {
constexpr std::string_view stderr_line = "subprocess.stderr";
constexpr std::string_view exit = "subprocess.exit";
constexpr std::string_view stdin_error = "subprocess.stdin_error";
constexpr std::string_view undelivered = "agent.followup_undelivered";
// What a restart needs to know: which profile runs the session, and the agent's own session.
constexpr std::string_view started = "agent.started";
constexpr std::string_view ready = "agent.ready";
constexpr std::string_view lost = "agent.lost";
constexpr std::string_view restart = "gateway.restart";
}  // namespace event_types

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

agent::PermissionPolicy policy_of(PermissionPolicy policy) {
  switch (policy) {
    case PermissionPolicy::allow:
      return agent::PermissionPolicy::allow;
    case PermissionPolicy::deny:
      return agent::PermissionPolicy::deny;
    case PermissionPolicy::ask:
      break;
  }
  return agent::PermissionPolicy::ask;
}

std::unique_ptr<agent::AgentConnection> make_connection(const AgentProfile& profile,
                                                        std::string workspace_dir,
                                                        const AgentSessions::ResumePoint& resume) {
  agent::AgentOptions options;
  options.workspace_dir = std::move(workspace_dir);
  options.client_version = kClientVersion;
  options.permission = policy_of(profile.permission);
  options.permission_timeout_ms = profile.permission_timeout_ms;
  options.startup_timeout_ms = profile.startup_timeout_ms;
  options.resume_session_id = resume.agent_session_id;
  options.resume_turns = resume.turns;
  options.resume_turns_completed = resume.turns_completed;
  if (profile.protocol == AgentProtocol::acp)
    return std::make_unique<agent::AcpClient>(std::move(options));
  return std::make_unique<agent::StreamJsonClient>(std::move(options));
}

bool turn_running(agent::AgentState state) {
  return state == agent::AgentState::prompting || state == agent::AgentState::awaiting_permission;
}

}  // namespace

// One agent session. Every call into its connection is made with mutex_ held and only produces
// lines (written to the agent at once: write_line never blocks) and events (queued in outbox_).
// The outbox is appended to the pool by one thread at a time without the lock (flush()); that
// thread also hands the agent its next follow-up when it is idle, so the pool sees this
// session's calls in order.
class AgentSessions::AgentSession : public worker::WorkerListener,
                                    public std::enable_shared_from_this<AgentSession> {
 public:
  AgentSession(AgentSessions& owner, const core::SessionSnapshot& session,
               const AgentProfile& profile, std::string workspace_dir, const ResumePoint& resume)
      : owner_(owner),
        session_id_(session.session_id),
        name_(profile.name),
        protocol_(to_string(profile.protocol)),
        strand_(asio::make_strand(owner.io_)),
        timer_(strand_),
        connection_(make_connection(profile, std::move(workspace_dir), resume)) {}

  asio::strand<asio::io_context::executor_type>& strand() { return strand_; }

  void begin(const std::shared_ptr<worker::WorkerProcess>& process) {
    {
      std::lock_guard lock(mutex_);
      process_ = process;
      outbox_.push_back(Item{
          {std::string(event_types::started), "agent " + name_ + " (" + protocol_ + ") started",
           json::serialize(json::object{{"agent", name_}, {"protocol", protocol_}})},
          {}});
      apply_locked(connection_->start(steady_ms()));
    }
    process->start();  // (not process_: its exit may reset that at once)
    after_change();
  }

  void on_output(worker::OutputStream stream, std::string line) override {
    {
      std::lock_guard lock(mutex_);
      if (stream == worker::OutputStream::stderr_stream) {
        outbox_.push_back(Item{{std::string(event_types::stderr_line), std::move(line)}, {}});
      } else {
        apply_locked(connection_->on_line(line, steady_ms()));
      }
    }
    after_change();
  }

  void on_dropped_line(worker::OutputStream stream, std::size_t line_bytes) override {
    const std::string what = "a line of " + std::to_string(line_bytes) +
                             " bytes dropped: over --worker-max-line-bytes (" +
                             std::to_string(owner_.config_.worker.max_line_bytes) + ")";
    {
      std::lock_guard lock(mutex_);
      // stderr is not protocol: only stdout's lines are the agent's messages.
      if (stream == worker::OutputStream::stderr_stream)
        outbox_.push_back(Item{{std::string(event_types::stderr_line), "(" + what + ")"}, {}});
      else
        apply_locked(connection_->report_protocol_error("stdout: " + what));
    }
    after_change();
  }

  void on_exit(const worker::ExitStatus& status) override {
    {
      std::lock_guard lock(mutex_);
      process_.reset();  // it holds this listener: no cycle once it is gone
      const agent::AgentState before = connection_->state();
      apply_locked(connection_->on_exit(steady_ms()));
      // An agent that leaves mid-turn, before it was ready, or with an error has failed; one
      // that exits cleanly between turns has completed. On the gateway's own shutdown the
      // session stays running: the next start resumes it or fails it (agent.lost).
      std::optional<core::SessionStatus> end;
      if (!owner_.shutting_down())
        end = status.success() && !turn_running(before) && before != agent::AgentState::starting
                  ? core::SessionStatus::completed
                  : core::SessionStatus::failed;
      outbox_.push_back(Item{{std::string(event_types::exit), status.describe()}, end});
    }
    timer_.cancel();
    flush();
    owner_.agent_exited(session_id_);
  }

  json::object snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_locked();
  }

  json::array pending() const {
    std::lock_guard lock(mutex_);
    return connection_->snapshot(name_).at("pending_permissions").as_array();
  }

  void followup_queued() {
    {
      std::lock_guard lock(mutex_);
      want_followup_ = true;
    }
    schedule_flush();
  }

  bool cancel() {
    bool running = false;
    {
      std::lock_guard lock(mutex_);
      running = turn_running(connection_->state());
      if (running)
        apply_locked(connection_->cancel(steady_ms()));
    }
    after_change();
    return running;
  }

  agent::AnswerStatus answer(std::string_view request_id, std::string_view option_id) {
    agent::AnswerStatus status;
    {
      std::lock_guard lock(mutex_);
      auto answer = connection_->answer_permission(request_id, option_id, steady_ms());
      status = answer.status;
      apply_locked(std::move(answer.output));
    }
    after_change();
    return status;
  }

  // The pool's lock is held: nothing here may call into the pool.
  void on_session_end() {
    std::shared_ptr<worker::WorkerProcess> process;
    {
      std::lock_guard lock(mutex_);
      if (ended_)
        return;
      ended_ = true;
      apply_locked(connection_->cancel(steady_ms()));
      process = process_;
    }
    if (process)
      process->terminate();
    post_flush();
  }

  void terminate() {
    std::shared_ptr<worker::WorkerProcess> process;
    {
      std::lock_guard lock(mutex_);
      process = process_;
    }
    if (process)
      process->terminate();
  }

 private:
  struct Item {
    bridge::SessionService::NewEvent event;
    std::optional<core::SessionStatus> end;  // end the session after this event
  };

  json::object snapshot_locked() const {
    json::object agent = connection_->snapshot(name_);
    agent["protocol"] = protocol_;  // as the profile spells it
    return agent;
  }

  void apply_locked(agent::Output out) {
    for (auto& line : out.lines_to_agent) {
      if (!process_)
        break;
      if (auto failure = process_->write_line(line)) {
        // The agent stopped reading: it cannot be spoken to any more.
        outbox_.push_back(Item{{std::string(event_types::stdin_error), *failure}, {}});
        process_->terminate();
        break;
      }
    }
    for (auto& event : out.events) {
      outbox_.push_back(
          Item{{std::move(event.event_type), std::move(event.message), json::serialize(event.data)},
               {}});
    }
    if (connection_->state() == agent::AgentState::idle)
      want_followup_ = true;
    if (!ready_logged_ && connection_->state() != agent::AgentState::starting &&
        connection_->state() != agent::AgentState::exited) {
      ready_logged_ = true;
      const std::string& agent_session = connection_->agent_session_id();
      outbox_.push_back(Item{
          {std::string(event_types::ready),
           "agent ready" + (agent_session.empty() ? std::string() : ": session " + agent_session),
           json::serialize(json::object{{"agent_session_id", agent_session},
                                        {"load_session", connection_->supports_load_session()}})},
          {}});
    }
    if (connection_->startup_deadline_passed(steady_ms()) && !startup_failed_) {
      startup_failed_ = true;
      if (connection_->startup_failure().empty()) {
        apply_locked(connection_->report_protocol_error(
            "the agent was not ready within startup_timeout_ms; stopping it"));
      }
      if (process_)
        process_->terminate();
    }
  }

  // After a change made through the connection: its events go to the pool, and the timer is set
  // for what the connection waits on next.
  void after_change() {
    schedule_flush();
    asio::post(strand_, [self = shared_from_this()] { self->arm_timer(); });
  }

  // On the strand.
  void arm_timer() {
    std::optional<std::int64_t> due;
    {
      std::lock_guard lock(mutex_);
      if (connection_->state() == agent::AgentState::exited)
        return;
      auto earliest = [&due](std::optional<std::int64_t> at) {
        if (at && (!due || *at < *due))
          due = at;
      };
      earliest(connection_->next_flush_ms());
      earliest(connection_->next_permission_deadline_ms());
      if (connection_->state() == agent::AgentState::starting && !startup_failed_)
        earliest(connection_->startup_deadline_ms());
    }
    if (!due)
      return;
    timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(*due)));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
      if (!error)
        self->on_timer();
    });
  }

  void on_timer() {
    {
      std::lock_guard lock(mutex_);
      const std::int64_t now = steady_ms();
      apply_locked(connection_->poll(now));
      apply_locked(connection_->expire_permissions(now));
    }
    after_change();
  }

  void schedule_flush() {
    if (auto executor = owner_.recorder_calls_.executor()) {
      asio::post(*executor, [self = shared_from_this()] { self->flush(); });
      return;
    }
    flush();
  }

  // Not inline: for callers that hold the pool's lock.
  void post_flush() {
    if (auto executor = owner_.recorder_calls_.executor()) {
      asio::post(*executor, [self = shared_from_this()] { self->flush(); });
      return;
    }
    asio::post(strand_, [self = shared_from_this()] { self->flush(); });
  }

  // Appends the outbox in order, then hands the idle agent its next follow-up; one thread at a
  // time (the others leave their items to it).
  void flush() {
    {
      std::lock_guard lock(mutex_);
      if (std::exchange(flushing_, true))
        return;
    }
    while (true) {
      std::vector<bridge::SessionService::NewEvent> batch;
      std::optional<core::SessionStatus> end;
      bool take_followup = false;
      {
        std::lock_guard lock(mutex_);
        while (!outbox_.empty() && !end) {
          end = outbox_.front().end;
          batch.push_back(std::move(outbox_.front().event));
          outbox_.pop_front();
        }
        if (batch.empty()) {
          if (want_followup_ && !ended_ && connection_->state() == agent::AgentState::idle) {
            want_followup_ = false;
            take_followup = true;
          } else {
            flushing_ = false;
            return;
          }
        }
      }
      try {
        if (!batch.empty())
          owner_.pool_.append_events(session_id_, batch);
        if (end)
          owner_.pool_.end_session(session_id_, *end);
        if (take_followup)
          deliver_next_followup();
      } catch (const std::exception& error) {
        spdlog::warn("session {}: cannot record the agent's events: {}", session_id_, error.what());
      }
    }
  }

  // Takes the oldest queued follow-up off the session's queue and makes it the agent's next turn.
  void deliver_next_followup() {
    const core::SessionSnapshot session = owner_.pool_.get(session_id_);
    if (session.status != core::SessionStatus::running || session.queued_followups == 0)
      return;
    bridge::DrainResult taken = owner_.pool_.drain_followups(session_id_, 1);
    if (taken.followups.empty())
      return;
    std::lock_guard lock(mutex_);
    if (ended_ || connection_->state() != agent::AgentState::idle) {
      // The agent left between the look and the take: the follow-up stays in the log.
      outbox_.push_back(Item{
          {std::string(event_types::undelivered),
           "not delivered: the agent is " + std::string(agent::to_string(connection_->state())),
           json::serialize(json::object{{"message", taken.followups.front()}})},
          {}});
      return;
    }
    apply_locked(connection_->prompt(taken.followups.front(), steady_ms()));
    asio::post(strand_, [self = shared_from_this()] { self->arm_timer(); });
  }

  AgentSessions& owner_;
  const std::string session_id_;
  const std::string name_;
  const std::string protocol_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // strand only

  mutable std::mutex mutex_;  // never held while calling into the pool
  std::unique_ptr<agent::AgentConnection> connection_;
  std::shared_ptr<worker::WorkerProcess> process_;
  std::deque<Item> outbox_;
  bool flushing_ = false;
  bool want_followup_ = false;
  bool ended_ = false;
  bool startup_failed_ = false;
  bool ready_logged_ = false;
};

AgentSessions::AgentSessions(asio::io_context& io, bridge::SessionService& pool,
                             const GatewayConfig& config)
    : io_(io), pool_(pool), config_(config), recorder_calls_(pool.calls_block(), 2) {}

AgentSessions::~AgentSessions() {
  recorder_calls_.join();
}

void AgentSessions::start(const core::SessionSnapshot& session, const AgentProfile& profile) {
  try {
    launch(session, profile, ResumePoint{});
  } catch (const std::exception& error) {
    {
      std::lock_guard lock(mutex_);
      ++failed_to_start_;
    }
    pool_.discard(session.session_id);
    throw start_failure(error.what());
  }
}

void AgentSessions::launch(const core::SessionSnapshot& session, const AgentProfile& profile,
                           const ResumePoint& resume) {
  try {
    const std::string directory = prepare_workspace(config_, session);
    auto agent_session = std::make_shared<AgentSession>(*this, session, profile, directory, resume);
    worker::WorkerOptions options = worker_options(config_);
    options.drop_long_lines = true;
    auto process = worker::WorkerProcess::spawn(
        agent_session->strand(), worker::WorkerCommand{profile.command, profile.args, profile.env},
        directory, session_env(session), std::move(options), agent_session);
    {
      std::lock_guard lock(mutex_);
      running_.emplace(session.session_id, agent_session);
      ++started_;
    }
    agent_session->begin(process);
  } catch (...) {
    std::lock_guard lock(mutex_);
    running_.erase(session.session_id);
    throw;
  }
}

std::string AgentSessions::resume_refusal(const std::string& session_id,
                                          const AgentProfile*& profile, ResumePoint& resume,
                                          bool& agent_session) {
  const bridge::Replay replay =
      pool_.replay(session_id, std::nullopt, pool_.limits().max_events_per_session);
  std::string name;
  bool load_session = false;
  for (const auto& retained : replay.events) {
    const core::SessionEvent& event = retained->event;
    if (event.event_type == agent::event_types::turn_started) {
      // Numbered from the turn the log names (retention may have dropped the first ones).
      const json::value turn = json::parse(event.data).at("turn");
      resume.turns = std::max(resume.turns, turn.to_number<std::uint64_t>());
    }
    if (event.event_type == agent::event_types::turn_ended)
      ++resume.turns_completed;
    if (event.event_type != event_types::started && event.event_type != event_types::ready)
      continue;
    const json::value data = json::parse(event.data);
    if (event.event_type == event_types::started) {
      name = data.at("agent").as_string();
    } else {
      resume.agent_session_id = data.at("agent_session_id").as_string();
      load_session = data.at("load_session").as_bool();
    }
  }
  agent_session = !name.empty();
  if (!agent_session)
    return "a worker";
  profile = config_.agents.find(name);
  if (!profile)
    return "its profile '" + name + "' is no longer configured";
  if (profile->protocol != AgentProtocol::acp || !load_session || resume.agent_session_id.empty())
    return "agent " + name + " cannot load a session (ACP loadSession)";
  return {};
}

void AgentSessions::recover(const std::vector<std::string>& session_ids) {
  for (const auto& session_id : session_ids) {
    try {
      const AgentProfile* profile = nullptr;
      ResumePoint resume;
      bool agent_session = false;
      std::string refusal = resume_refusal(session_id, profile, resume, agent_session);
      if (refusal.empty()) {
        try {
          launch(pool_.get(session_id), *profile, resume);
          continue;
        } catch (const std::exception& error) {
          refusal = error.what();
        }
      }
      if (agent_session) {
        pool_.append_event(session_id, event_types::lost,
                           "the gateway restarted and the agent could not be resumed: " + refusal);
      } else {
        pool_.append_event(session_id, event_types::restart,
                           "the gateway restarted; the session's worker process was lost");
      }
      pool_.end_session(session_id, core::SessionStatus::failed);
    } catch (const std::exception& error) {
      spdlog::warn("session {}: cannot recover after the restart: {}", session_id, error.what());
    }
  }
}

std::shared_ptr<AgentSessions::AgentSession> AgentSessions::find(
    std::string_view session_id) const {
  std::lock_guard lock(mutex_);
  if (auto found = running_.find(std::string(session_id)); found != running_.end())
    return found->second;
  if (auto found = exited_.find(std::string(session_id)); found != exited_.end())
    return found->second;
  return nullptr;
}

std::shared_ptr<AgentSessions::AgentSession> AgentSessions::find_or_throw(
    std::string_view session_id) const {
  if (auto session = find(session_id))
    return session;
  throw core::errors::not_an_agent_session();
}

bool AgentSessions::runs(std::string_view session_id) const {
  return find(session_id) != nullptr;
}

void AgentSessions::followup_queued(const std::string& session_id) {
  if (auto session = find(session_id))
    session->followup_queued();
}

json::value AgentSessions::agent_json(std::string_view session_id) const {
  if (auto session = find(session_id))
    return session->snapshot();
  return nullptr;
}

bool AgentSessions::cancel(std::string_view session_id) {
  return find_or_throw(session_id)->cancel();
}

json::array AgentSessions::pending_permissions(std::string_view session_id) const {
  return find_or_throw(session_id)->pending();
}

void AgentSessions::answer_permission(std::string_view session_id, std::string_view request_id,
                                      std::string_view option_id) {
  switch (find_or_throw(session_id)->answer(request_id, option_id)) {
    case agent::AnswerStatus::answered:
      return;
    case agent::AnswerStatus::not_found:
      throw core::Error(
          core::ErrorCode::permission_request_not_found,
          "no request for permission '" + std::string(request_id) + "' in this session");
    case agent::AnswerStatus::already_resolved:
      throw core::Error(
          core::ErrorCode::permission_request_resolved,
          "the request for permission '" + std::string(request_id) + "' is already resolved");
    case agent::AnswerStatus::invalid_option:
      throw core::Error(core::ErrorCode::invalid_option,
                        "'" + std::string(option_id) + "' is not one of the request's options");
  }
}

void AgentSessions::on_session_end(const core::SessionSnapshot& session) {
  if (auto agent_session = find(session.session_id))
    agent_session->on_session_end();
}

void AgentSessions::agent_exited(const std::string& session_id) {
  std::function<void()> all_exited;
  {
    std::lock_guard lock(mutex_);
    auto found = running_.find(session_id);
    if (found == running_.end())
      return;
    if (exited_.insert_or_assign(session_id, std::move(found->second)).second)
      exited_order_.push_back(session_id);
    running_.erase(found);
    while (exited_order_.size() > kMaxExitedSnapshots) {
      exited_.erase(exited_order_.front());
      exited_order_.pop_front();
    }
    if (running_.empty() && on_all_exited_)
      all_exited = std::exchange(on_all_exited_, nullptr);
  }
  if (all_exited)
    all_exited();
}

bool AgentSessions::shutting_down() const {
  std::lock_guard lock(mutex_);
  return shutting_down_;
}

json::object AgentSessions::status_json() const {
  std::lock_guard lock(mutex_);
  json::array profiles;
  for (const auto& profile : config_.agents.profiles) {
    if (profile.protocol != AgentProtocol::lines)
      profiles.push_back(
          json::object{{"name", profile.name}, {"protocol", to_string(profile.protocol)}});
  }
  return json::object{
      {"profiles", std::move(profiles)},     {"default_agent", config_.agents.default_agent},
      {"running", running_.size()},          {"started", started_},
      {"failed_to_start", failed_to_start_},
  };
}

void AgentSessions::shutdown(std::function<void()> done) {
  std::vector<std::shared_ptr<AgentSession>> running;
  std::function<void()> done_now;
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    for (const auto& [session_id, session] : running_)
      running.push_back(session);
    if (running.empty())
      done_now = std::move(done);
    else
      on_all_exited_ = std::move(done);
  }
  if (done_now) {
    done_now();
    return;
  }
  for (const auto& session : running)
    session->terminate();
}

}  // namespace tau::gateway
