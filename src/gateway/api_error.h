#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "core/errors.h"

namespace tau::gateway {

// An error answered to the client in the documented envelope.
class ApiError : public std::runtime_error {
 public:
  ApiError(unsigned status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  unsigned status() const noexcept { return status_; }
  const std::string& code() const noexcept { return code_; }
  // A header the error response carries besides the envelope (e.g. Allow, Retry-After).
  ApiError& with_header(std::string name, std::string value) {
    header_ = {std::move(name), std::move(value)};
    return *this;
  }
  const std::optional<std::pair<std::string, std::string>>& header() const noexcept {
    return header_;
  }

 private:
  unsigned status_;
  std::string code_;
  std::optional<std::pair<std::string, std::string>> header_;
};

// The one place where an error of the session core (or of the session launcher) gets its HTTP
// status: 400 for bad input, 404, 409, 502 for a worker that failed, 503 for a store that cannot
// be reached.
unsigned http_status_of(core::ErrorCode code);
// The answer to a core error: its status, its stable code and its message.
ApiError to_api_error(const core::Error& error);

}  // namespace tau::gateway
