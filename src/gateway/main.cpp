#include <utility>
#include <variant>

#include "gateway/config.h"
#include "gateway/gateway.h"

using namespace tau;

int main(int argc, char** argv) {
  auto parsed = gateway::parse_config(argc, argv);
  // 0 after --help, 2 after a refused command line (already printed).
  if (auto* exit = std::get_if<gateway::ExitRequest>(&parsed))
    return exit->code;
  try {
    gateway::Gateway gateway(std::get<gateway::GatewayConfig>(std::move(parsed)));
    return gateway.run();
  } catch (const gateway::StartupError&) {
    return 1;  // the reason is logged: no state directory, an unreadable store, no socket
  }
}
