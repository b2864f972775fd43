// with_redis COMMAND [ARGS...]: runs the command with a fresh redis-server on a free loopback
// port and its URL in TAU_TEST_REDIS_URL, then stops the server. CTest runs the integration
// suite under it so every API test also runs against the Redis store.
#include <sys/wait.h>

#include <iostream>

#include "support/gateway_process.h"
#include "support/redis_server.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: with_redis COMMAND [ARGS...]\n";
    return 2;
  }
  tau::test::RedisServer redis;
  const pid_t child = tau::test::spawn_process(std::vector<std::string>(argv + 1, argv + argc),
                                               {{"TAU_TEST_REDIS_URL", redis.url()}});
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
