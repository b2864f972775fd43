#include "gateway/session_launcher.h"

#include <algorithm>
#include <string>

#include "core/errors.h"
#include "core/text.h"

namespace tau::gateway {

const AgentProfile* SessionLauncher::profile_for(
    const std::optional<std::string>& requested) const {
  if (requested) {
    if (const AgentProfile* profile = profiles_.find(*requested))
      return profile;
    std::string defined;
    for (const auto& profile : profiles_.profiles)
      defined += (defined.empty() ? "" : ", ") + profile.name;
    throw core::errors::unknown_agent(*requested, defined.empty() ? "none" : defined);
  }
  if (!profiles_.default_agent.empty())
    return profiles_.find(profiles_.default_agent);
  return nullptr;
}

LaunchResult SessionLauncher::launch(const LaunchRequest& request) {
  const AgentProfile* profile = profile_for(request.agent);
  if (request.prompt)
    core::checked_message(*request.prompt);
  if (profile)
    workers_.check_workspace(core::trim_ascii_whitespace(request.workspace_id));
  const bridge::OpenResult opened = pool_.open(request.workspace_id, profile != nullptr);
  if (opened.created && profile) {
    if (profile->protocol == AgentProtocol::lines)
      workers_.start(opened.session, *profile);
    else
      agents_.start(opened.session, *profile);
  }
  LaunchResult result{opened.session, opened.created, opened.commit_ticket};
  if (request.prompt) {
    const bridge::AppendResult queued =
        deliver_followup(opened.session.session_id, *request.prompt);
    result.session = queued.session;
    result.commit_ticket = std::max(result.commit_ticket, queued.commit_ticket);
  }
  return result;
}

bridge::AppendResult SessionLauncher::deliver_followup(std::string_view session_id,
                                                       std::string_view message) {
  bridge::AppendResult result = pool_.append_followup(session_id, message);
  if (agents_.runs(session_id)) {
    agents_.followup_queued(std::string(session_id));
    return result;
  }
  if (!workers_.enabled() || pool_.routes_followups())
    return result;
  if (auto failure = workers_.deliver_followup(std::string(session_id), result.event.message))
    throw core::errors::worker_failed("could not deliver the follow-up", *failure);
  return result;
}

void SessionLauncher::deliver_routed_followup(const std::string& session_id,
                                              const std::string& message) {
  if (agents_.runs(session_id)) {
    agents_.followup_queued(session_id);
    return;
  }
  workers_.deliver_routed_followup(session_id, message);
}

}  // namespace tau::gateway
