# tau-gateway: `make run` to start it, `make test` to check it.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
# ccache (used by the build when present) keys its cache on paths relative to this, so clones at
# different paths on one machine share the cache (which stays in ~/.cache/ccache, outside them).
export CCACHE_BASEDIR ?= $(CURDIR)

# What building and running need, from Debian's packages (`make deps`). The tests are built by
# `make build` too, so GoogleTest is here; ccache is used by the build when present.
DEBIAN_PACKAGES := cmake ninja-build g++ make pkg-config ccache \
	libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
	libcli11-dev libtomlplusplus-dev libspdlog-dev libgtest-dev libgmock-dev \
	libsqlite3-dev libssl-dev libgoogle-perftools-dev libyaml-cpp-dev libhiredis-dev

# What only the tests run (`make test-deps`, through `make test`, `test-asan` and `test-tsan`):
# Node.js and Chromium for the real-client tests (with the npm packages pinned in tests/clients;
# the real agents of tests/agents pinned there),
# promtool (prometheus) for the /metrics check, redis-server and redis-cli for the Redis tests.
TEST_PACKAGES := nodejs chromium prometheus redis-server redis-tools

# What only the benchmarks run (`make bench`, `bench-append`): wrk, nginx, redis-benchmark.
BENCH_PACKAGES := wrk nginx-light redis-server redis-tools

.PHONY: deps test-deps bench-deps configure build run test test-asan test-tsan bench bench-sse \
	bench-append fuzz format format-check lint clean

deps:
	@scripts/install-deps.sh $(DEBIAN_PACKAGES)

test-deps: deps
	@scripts/install-deps.sh $(TEST_PACKAGES)
	@scripts/install-node-deps.sh tests/clients
	@scripts/install-node-deps.sh tests/agents --platform-binaries

bench-deps: deps
	@scripts/install-deps.sh $(BENCH_PACKAGES)

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DTAU_WERROR=ON >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: deps build
	@scripts/run.sh $(BUILD_DIR)/tau-gateway

test: test-deps build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# The whole suite against sanitizer builds, each in its own build dir. Every report fails the
# run: UBSan does not recover, ASan's leak check runs at every exit, TSan halts on a race.
# -O1: instrumented code need not be fast, and it compiles much sooner than -O3. Warnings are
# the normal build's job (-Werror there): g++ 12 warns falsely about instrumented coroutines.
# The benchmarks' load generators (TAU_BENCH) are not built there: no test uses them.
SANITIZER_CONFIG := -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-O1 -DTAU_WERROR=OFF -DTAU_TCMALLOC=OFF \
	-DTAU_BENCH=OFF

test-asan: test-deps
	@cmake -S . -B build-asan $(SANITIZER_CONFIG) -DTAU_SANITIZE=address >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir build-asan --output-on-failure -j $(JOBS)

test-tsan: test-deps
	@cmake -S . -B build-tsan $(SANITIZER_CONFIG) -DTAU_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --test-dir build-tsan --output-on-failure -j $(JOBS)

# libFuzzer targets (fuzz/) built with clang-14 in build-fuzz/, each run FUZZ_SECONDS (default 30).
fuzz: deps
	@scripts/run-fuzz.sh $(FUZZ_SECONDS)

# The benchmarks behind docs/benchmarks.md (not part of `make test`; about 20 minutes): the read
# path against nginx and OpenCode (pinned in bench/opencode/) and its thread scaling, the append
# path per store, per session count and against Redis XADD, a 1,000-event replay, and 1-3
# gateways sharing one Redis (append rate, cross-gateway delivery latency). Each
# script replaces its own section of docs/benchmarks.md. Run it on an otherwise idle machine.
bench: bench-deps build
	@scripts/install-node-deps.sh bench/opencode --platform-binaries
	@bench/run-rest.sh $(BUILD_DIR)
	@bench/run-append.sh $(BUILD_DIR)
	@bench/run-append-wrk.sh $(BUILD_DIR)
	@bench/run-replay.sh $(BUILD_DIR)
	@bench/run-redis.sh $(BUILD_DIR)

# SSE fan-out benchmark against Nchan (not part of `make test`); writes docs/benchmarks.md.
BENCH_SSE_PACKAGES := nginx-light libnginx-mod-nchan

bench-sse: deps build
	@scripts/install-deps.sh $(BENCH_SSE_PACKAGES)
	@bench/run-sse.sh $(BUILD_DIR)

# Append-path benchmark, per store (not part of `make test`); writes docs/benchmarks.md.
# Environment: STORES, BENCH_REPEATS, CLIENTS, DURATION_S, WRITE_DOCS=0, ... (see the script).
bench-append: bench-deps build
	@bench/run-append.sh $(BUILD_DIR)
	@bench/run-append-wrk.sh $(BUILD_DIR)

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

# The formatting gate: any tracked source `make format` would change fails it.
format-check:
	@scripts/install-deps.sh clang-format
	@git ls-files -z '*.cpp' '*.h' | xargs -0 clang-format --dry-run -Werror

# The lint gate CI runs first: formatting, then clang-tidy (.clang-tidy, every warning an error)
# over src/ with the build's compile_commands.json, which `configure` writes (scripts/lint.sh).
lint: format-check configure
	@scripts/install-deps.sh clang-tidy
	@JOBS=$(JOBS) scripts/lint.sh $(BUILD_DIR)

clean:
	@rm -rf $(BUILD_DIR)
