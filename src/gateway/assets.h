#pragma once

#include <string_view>

// Files built into the binary (cmake/embed_files.cmake), so the gateway serves its API
// description and its dashboard with nothing to install beside it and no network at run time.
namespace tau::assets {
extern const std::string_view openapi_json;  // docs/openapi.yaml, converted to JSON at build time
extern const std::string_view dashboard_html;
extern const std::string_view dashboard_js;
extern const std::string_view dashboard_css;
}  // namespace tau::assets
