#include "gateway/request_context.h"

#include <stdexcept>

#include "gateway/json_codec.h"

namespace tau::gateway {

const boost::json::object& RequestContext::json_body() {
  if (!json_body_) {
    if (body_rule == RequestBody::absent)
      throw std::logic_error("this route takes no request body");
    json_body_ = parse_json_object(body, body_rule == RequestBody::optional);
  }
  return *json_body_;
}

}  // namespace tau::gateway
