#include "gateway/api_error.h"

namespace tau::gateway {

unsigned http_status_of(core::ErrorCode code) {
  switch (code) {
    case core::ErrorCode::invalid_workspace_id:
    case core::ErrorCode::invalid_message:
    case core::ErrorCode::unknown_agent:
    case core::ErrorCode::invalid_option:
      return 400;
    case core::ErrorCode::session_not_found:
    case core::ErrorCode::permission_request_not_found:
      return 404;
    case core::ErrorCode::not_an_agent_session:
    case core::ErrorCode::permission_request_resolved:
    case core::ErrorCode::session_not_running:
    case core::ErrorCode::session_limit_reached:
      return 409;
    case core::ErrorCode::worker_failed:
      return 502;
    case core::ErrorCode::store_unavailable:
    case core::ErrorCode::event_memory_full:
      return 503;
  }
  return 500;
}

ApiError to_api_error(const core::Error& error) {
  return ApiError(http_status_of(error.code()), std::string(core::to_string(error.code())),
                  error.what());
}

}  // namespace tau::gateway
