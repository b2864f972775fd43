#include "http/router.h"

namespace tau::http {

std::vector<std::string> split_template(std::string_view route_template) {
  std::vector<std::string> segments;
  if (!route_template.empty() && route_template.front() == '/')
    route_template.remove_prefix(1);
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = route_template.find('/', start);
    segments.emplace_back(route_template.substr(start, slash - start));
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  return segments;
}

bool match_segments(const std::vector<std::string>& template_segments,
                    const std::vector<std::string>& path_segments,
                    std::vector<std::string>& params) {
  if (template_segments.size() != path_segments.size())
    return false;
  params.clear();
  for (std::size_t i = 0; i < template_segments.size(); ++i) {
    const std::string& pattern = template_segments[i];
    const bool is_param = pattern.size() >= 2 && pattern.front() == '{' && pattern.back() == '}';
    if (is_param) {
      if (path_segments[i].empty())
        return false;
      params.push_back(path_segments[i]);
    } else if (pattern != path_segments[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace tau::http
