#include "agent/agent_types.h"

#include <iterator>
#include <utility>

namespace tau::agent {

std::string_view to_string(AgentState state) {
  switch (state) {
    case AgentState::starting:
      return "starting";
    case AgentState::idle:
      return "idle";
    case AgentState::prompting:
      return "prompting";
    case AgentState::awaiting_permission:
      return "awaiting_permission";
    case AgentState::exited:
      return "exited";
  }
  return "unknown";
}

void Output::append(Output other) {
  lines_to_agent.insert(lines_to_agent.end(), std::make_move_iterator(other.lines_to_agent.begin()),
                        std::make_move_iterator(other.lines_to_agent.end()));
  events.insert(events.end(), std::make_move_iterator(other.events.begin()),
                std::make_move_iterator(other.events.end()));
}

}  // namespace tau::agent
