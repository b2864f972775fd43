#include "gateway/session_launcher.h"

#include <string>

#include "core/errors.h"
#include "core/text.h"

namespace tau::gateway {

LaunchResult SessionLauncher::launch(const LaunchRequest& request) {
  const bool with_worker = workers_.enabled();
  if (with_worker)
    workers_.check_workspace(core::trim_ascii_whitespace(request.workspace_id));
  const bridge::OpenResult opened = pool_.open(request.workspace_id, with_worker);
  if (opened.created && with_worker)
    workers_.start(opened.session);
  return LaunchResult{opened.session, opened.created, opened.commit_ticket};
}

bridge::AppendResult SessionLauncher::deliver_followup(std::string_view session_id,
                                                       std::string_view message) {
  bridge::AppendResult result = pool_.append_followup(session_id, message);
  if (!workers_.enabled() || pool_.routes_followups())
    return result;
  if (auto failure = workers_.deliver_followup(std::string(session_id), result.event.message))
    throw core::errors::worker_failed("could not deliver the follow-up", *failure);
  return result;
}

}  // namespace tau::gateway
