# Front door for the usual tasks; the build itself is CMake (+ Ninja).
#   make demo    the main job (scripts/demo): install what is missing, build,
#                start PostgreSQL, Redis and the real model servers, feed
#                10,000 reviews to a Redis stream, run two replicas (VADER
#                sentiment, wordllama embeddings), print a summary, labels
#                and a semantic search, stop what it started; non-zero if a
#                message is missing or doubled
#   make test    install, start servers, build, run every test, stop servers
#   make bench   benchmarks (print tables; never decide CI)
#   make k8s-check  the Helm chart, offline: helm lint, helm template into
#                kubeconform -strict, the rendered facts (scripts/k8s-check;
#                builds helm and kubeconform into .cache/k8s once)

BUILD ?= build

.PHONY: all build demo test bench k8s-check format format-check clean

all: build

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(BUILD)

demo:
	scripts/demo

test:
	scripts/test

bench:
	scripts/bench

k8s-check:
	scripts/k8s-check

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-*
